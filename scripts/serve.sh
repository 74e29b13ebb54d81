#!/usr/bin/env bash
# Runs inferd on the default model, fetching the model first if it is absent.
# Extra arguments go to `inferd serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/fetch-model.sh
exec cargo run --release --bin inferd -- serve "$@"
