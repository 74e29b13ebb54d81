#!/usr/bin/env bash
# One command for the comparison harness: inferd (HTTP) vs sentence-transformers vs ONNX Runtime.
# Creates the bench venv on first use (benches/compare/setup.sh), then runs run.py with it.
#   benches/compare/run.sh [--quick] [--check] [--only inferd,st,ort] [--help]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV_BENCH:-$ROOT/.venv-bench}"
if [ ! -f "$VENV/.pins" ]; then
  "$ROOT/benches/compare/setup.sh"
fi
cd "$ROOT"
exec "$VENV/bin/python" "$ROOT/benches/compare/run.py" "$@"
