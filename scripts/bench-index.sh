#!/usr/bin/env bash
# Builds an index of the real catalog (63,436 Debian packages) with the release binary and
# the real model, and reports build throughput; then runs the search bench on its vectors:
# exact f32, the quantized graph (build, restart, RSS/item, p50/p99, recall) and, with
# INFERD_BENCH_PG=1, the same vectors in PostgreSQL + pgvector (a local server from the pgserver
# wheel in .venv-pg, as the tests use).
#
#   scripts/bench-index.sh [catalog.jsonl.gz] [out-dir]
#
# Needs scripts/fetch-model.sh (models/all-MiniLM-L6-v2) and ../shared/data/catalog.jsonl.gz
# (or a catalog path). SKIP_BUILD=1 reuses an index in out-dir; SKIP_SEARCH_BENCH=1 only builds;
# INFERD_BENCH_1M=1 adds the 1M clustered set (long). Other switches: benches/index.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
catalog=${1:-../shared/data/catalog.jsonl.gz}
out=${2:-target/bench-index/catalog}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --bin inferd
  mkdir -p "$(dirname "$out")"
  /usr/bin/time -v target/release/inferd index build \
      --model models/all-MiniLM-L6-v2 --catalog "$catalog" --out "$out" 2> >(grep -E "Maximum resident|Elapsed" >&2)
  du -sh "$out"
fi
[ -n "${SKIP_SEARCH_BENCH:-}" ] && exit 0

if [ -n "${INFERD_BENCH_PG:-}" ]; then
  [ -x .venv-pg/bin/python ] || python3 -m venv .venv-pg
  .venv-pg/bin/pip install -q --disable-pip-version-check -r tests/pgvector/requirements.txt
  bin=$(echo .venv-pg/lib/python3*/site-packages/pgserver/pginstall/bin)
  pgdata=$(mktemp -d)
  run=()
  if [ "$(id -u)" = 0 ]; then   # PostgreSQL refuses to run as root
    id inferd-pg >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin inferd-pg
    chown inferd-pg "$pgdata"
    run=(runuser -u inferd-pg --)
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${run[@]}" "$bin/initdb" -D "$pgdata/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$pgdata/data" -l "$pgdata/data/log" -w \
      -o "-h 127.0.0.1 -p $port -k $pgdata/data -c shared_buffers=512MB" start >/dev/null
  trap '"${run[@]}" "$bin/pg_ctl" -D "$pgdata/data" -m fast stop >/dev/null; rm -rf "$pgdata"' EXIT
  export INFERD_BENCH_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
fi
INFERD_BENCH_INDEX="$out" cargo bench --bench index
