#!/usr/bin/env bash
# The whole test suite: fetches the real model if absent, smoke-runs the criterion benches once,
# then runs every test (unit, black-box with a tiny random BERT, real-model parity against
# sentence-transformers' vectors). Extra arguments go to the test run, e.g. a name filter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-model.sh
cargo test --bench forward
cargo test --lib --tests "$@"
