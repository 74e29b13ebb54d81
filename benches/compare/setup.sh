#!/usr/bin/env bash
# Creates .venv-bench/ at the repository root with the peers the comparison harness measures
# (sentence-transformers on torch, ONNX Runtime) at the versions the harness was tested with.
# Idempotent: re-running only installs what is missing. Needs python3 >= 3.10 with venv.
#
#   benches/compare/setup.sh            # create/update the venv
#   benches/compare/setup.sh --infinity # also .venv-infinity/ (the Infinity server, system `infinity`)
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

# Infinity (infinity-emb) pins numpy<2, sentence-transformers<4 and so transformers 4.x: it gets
# its own venv, only when asked. 0.0.78 is the newest release; these are the versions pip
# resolved for it on Python 3.11 (torch the same as the bench venv's).
[ "${1:-}" = "--infinity" ] || exit 0
IVENV="${VENV_INFINITY:-$ROOT/.venv-infinity}"
IPINS=(
  "infinity-emb[server,torch,optimum]==0.0.78"
  "torch==2.15.0"
  "sentence-transformers==3.4.1"
  "transformers==4.57.6"
  "optimum==2.1.0"
  "optimum-onnx==0.1.0"
  "onnxruntime==1.32.0"
  "numpy==1.26.4"
  "fastapi==0.165.0"
  "uvicorn==0.32.1"
)
[ -x "$IVENV/bin/python" ] || "$PYTHON" -m venv "$IVENV"
ISTAMP="$IVENV/.pins"
IWANT="$(printf '%s\n' "${IPINS[@]}")"
if [ -f "$ISTAMP" ] && [ "$(cat "$ISTAMP")" = "$IWANT" ]; then
  echo "setup: $IVENV is up to date" >&2
else
  "$IVENV/bin/python" -m pip install --disable-pip-version-check -q "${IPINS[@]}" >&2
  printf '%s\n' "$IWANT" > "$ISTAMP"
fi
"$IVENV/bin/python" -c 'import importlib.metadata as m; print("setup: infinity-emb", m.version("infinity-emb"), "torch", m.version("torch"))' >&2
