#!/usr/bin/env bash
# The whole test suite: fetches the real model if absent, then runs every test (unit, black-box
# with a tiny random BERT, and real-model parity against sentence-transformers' vectors).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-model.sh
cargo test --all-targets "$@"
