#!/usr/bin/env bash
# The whole test suite: fetches the real models if absent (all-MiniLM-L6-v2, all-mpnet-base-v2),
# writes the tiny random models of every architecture with transformers and their
# sentence-transformers reference vectors (scripts/tiny-models.sh, venv in .venv-tiny/),
# smoke-runs the criterion benches once, then runs every test of the workspace (unit, black-box
# with a tiny random BERT, every architecture against transformers, the client crate against a
# fault-injecting server and a real inferd, real-model parity against sentence-transformers'
# vectors, OpenTelemetry traces against a real OTLP receiver in .venv-otlp/), then the contract
# tests: the real openai, huggingface_hub, tritonclient, cohere and gRPC client packages and
# schemathesis against a spawned inferd (scripts/contract-test.sh, Python venv in
# .venv-contract/). Extra arguments go to the cargo test run, e.g. a name filter; with a filter
# the contract tests are skipped.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-model.sh --all
scripts/tiny-models.sh
# PostgreSQL 16 + pgvector for tests/pgvector: the binaries of the pinned PyPI pgserver wheel
# (about 60 MB, ~10 s to install), in .venv-pg/.
[ -x .venv-pg/bin/python ] || python3 -m venv .venv-pg
.venv-pg/bin/pip install -q --disable-pip-version-check -r tests/pgvector/requirements.txt
# A real OTLP/gRPC trace receiver for tests/traces (grpcio + opentelemetry-proto), in .venv-otlp/.
[ -x .venv-otlp/bin/python ] || python3 -m venv .venv-otlp
.venv-otlp/bin/pip install -q --disable-pip-version-check -r tests/traces/requirements.txt
# PostgreSQL refuses to run as root: as root (CI), the tests run it as this system user.
if [ "$(id -u)" -eq 0 ] && ! id inferd-pg >/dev/null 2>&1; then
  useradd --system -M -s /usr/sbin/nologin inferd-pg
fi
# --workspace on both runs: the same package set resolves the same features, so one build serves both.
cargo test --workspace --bench forward
cargo test --workspace --lib --tests "$@"
if [ "$#" -eq 0 ]; then
  # The binary the cargo run above just built for its black-box tests.
  scripts/contract-test.sh models/all-MiniLM-L6-v2 target/debug/inferd
fi
