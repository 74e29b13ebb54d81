#!/usr/bin/env bash
# Writes the tiny random models of every architecture, and sentence-transformers' reference
# vectors for them, into target/tiny-models/ (or $1) for tests/architectures/. Creates
# .venv-tiny/ with the pins in tests/architectures/requirements.txt on first use (~3 min with a
# cold pip cache: torch pulls its CUDA wheels). Idempotent: skips the work when the models
# were written by this script with the same pins.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/tiny-models}"
venv="${VENV_TINY:-$root/.venv-tiny}"
pins="$root/tests/architectures/requirements.txt"

"$root/scripts/fetch-model.sh"   # the MiniLM tokenizer every tiny model uses
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$pins" "$venv/.pins"; then
  started=$(date +%s)
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$pins"
  cp "$pins" "$venv/.pins"
  echo "tiny-models: venv installed in $(( $(date +%s) - started )) s" >&2
fi
stamp="$(cat "$pins" "$root/scripts/tiny-models.py" | sha256sum | cut -d' ' -f1)"
if [ -f "$out/versions.json" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "tiny-models: up to date in $out" >&2
  exit 0
fi
"$venv/bin/python" "$root/scripts/tiny-models.py" "$out" 2> >(grep -v -e 'it/s]' -e 'Warning' >&2)
echo "$stamp" > "$out/.stamp"
