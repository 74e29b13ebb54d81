#!/usr/bin/env bash
# The whole test suite: fetches the real model if absent, smoke-runs the criterion benches once,
# then runs every test of the workspace (unit, black-box with a tiny random BERT, the client
# crate against a fault-injecting server and a real inferd, real-model parity against
# sentence-transformers' vectors). Extra arguments go to the test run, e.g. a name filter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-model.sh
# --workspace on both runs: the same package set resolves the same features, so one build serves both.
cargo test --workspace --bench forward
cargo test --workspace --lib --tests "$@"
