#!/usr/bin/env bash
# Creates .venv-bench/ at the repository root with the peers the comparison harness measures
# (sentence-transformers on torch, ONNX Runtime) at the versions the harness was tested with.
# Idempotent: re-running only installs what is missing. Needs python3 >= 3.10 with venv.
#
#   benches/compare/setup.sh            # create/update the venv
#   PYTHON=python3.12 benches/compare/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV_BENCH:-$ROOT/.venv-bench}"
PYTHON="${PYTHON:-python3}"

# Tested together on CPU (Python 3.11). torch from the default package index pulls the CUDA
# runtime wheels as dependencies; that is fine, it runs on CPU.
PINS=(
  "torch==2.15.0"
  "sentence-transformers==6.2.0"
  "transformers==5.24.0"
  "tokenizers==0.23.3"
  "onnxruntime==1.32.0"
  "onnx==1.23.2"
  "numpy==2.4.6"
  "openvino==2026.4.1"
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "setup: '$PYTHON -m venv' failed; on Debian install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  fi
fi

STAMP="$VENV/.pins"
WANT="$(printf '%s\n' "${PINS[@]}")"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "setup: $VENV is up to date" >&2
else
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PINS[@]}" >&2
  printf '%s\n' "$WANT" > "$STAMP"
fi

"$VENV/bin/python" - <<'EOF' >&2
import importlib
for m in ["torch", "sentence_transformers", "transformers", "onnxruntime", "onnx", "openvino"]:
    print(f"setup: {m} {importlib.import_module(m).__version__}")
EOF
