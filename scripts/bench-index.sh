#!/usr/bin/env bash
# Builds an index of the real catalog (63,436 Debian packages) with the release binary and
# the real model, and reports build throughput; then runs the search bench on its vectors.
#
#   scripts/bench-index.sh [catalog.jsonl.gz] [out-dir]
#
# Needs scripts/fetch-model.sh (models/all-MiniLM-L6-v2) and ../shared/data/catalog.jsonl.gz
# (or a catalog path). Set SKIP_SEARCH_BENCH=1 to only build.
set -euo pipefail
cd "$(dirname "$0")/.."
catalog=${1:-../shared/data/catalog.jsonl.gz}
out=${2:-target/bench-index/catalog}
cargo build --release --bin inferd
mkdir -p "$(dirname "$out")"
/usr/bin/time -v target/release/inferd index build \
    --model models/all-MiniLM-L6-v2 --catalog "$catalog" --out "$out" 2> >(grep -E "Maximum resident|Elapsed" >&2)
du -sh "$out"
if [ -z "${SKIP_SEARCH_BENCH:-}" ]; then
    INFERD_BENCH_INDEX="$out" cargo bench --bench index
fi
