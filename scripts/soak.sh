#!/usr/bin/env bash
# Memory soak: drives a local inferd with /readyz and /infer requests on loopback, never
# scraping /metrics, and prints its resident memory (VmRSS) as the requests go by.
#
#   scripts/soak.sh                      # 300k requests, 1 in 10 an /infer, 4 clients
#   REQUESTS=1000000 scripts/soak.sh     # the issue's bound: RSS within +20 MB after warm-up
#   BURST=1 REQUESTS=0 scripts/soak.sh   # only the burst: 8 concurrent ~1.9 MB /tokenize bodies
#
# Settings (environment): BIN (default target/release/inferd, else target/debug/inferd),
# MODEL (models/all-MiniLM-L6-v2), REQUESTS (300000), INFER_EVERY (10: one request in N is an
# /infer), CLIENTS (4), WARMUP (20000 requests before the baseline sample), PORT (18473),
# EXTRA (more serve flags), BURST (1: after the soak, 8 concurrent ~1.9 MB /tokenize requests,
# then the peak RSS and the RSS 10 s later: does the allocator give a burst back?). Needs python3 (standard library only). Not a test: a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-}
if [[ -z $BIN ]]; then
  BIN=target/release/inferd
  [[ -x $BIN ]] || BIN=target/debug/inferd
fi
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
PORT=${PORT:-18473}
[[ -x $BIN ]] || { echo "no inferd binary at $BIN: cargo build first" >&2; exit 1; }
[[ -e $MODEL ]] || { echo "no model at $MODEL: run scripts/fetch-model.sh" >&2; exit 1; }

LOG=$(mktemp)
# shellcheck disable=SC2086
"$BIN" serve --model "$MODEL" --listen "127.0.0.1:$PORT" ${EXTRA:-} >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.2
done

echo "binary $BIN, model $MODEL, pid $PID"
PID=$PID PORT=$PORT REQUESTS=${REQUESTS:-300000} INFER_EVERY=${INFER_EVERY:-10} \
  CLIENTS=${CLIENTS:-4} WARMUP=${WARMUP:-20000} BURST=${BURST:-0} python3 - <<'PY'
import http.client, json, os, threading, time

pid, port = int(os.environ["PID"]), int(os.environ["PORT"])
total, every = int(os.environ["REQUESTS"]), int(os.environ["INFER_EVERY"])
clients, warmup = int(os.environ["CLIENTS"]), int(os.environ["WARMUP"])
burst = os.environ["BURST"] == "1"
done, failed, lock = [0], [0], threading.Lock()

def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")

def client(c):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    n = c
    while True:
        with lock:
            if done[0] >= total:
                return
            done[0] += 1
        n += clients
        if n % every == 0:
            body = json.dumps({"inputs": f"soak request {n} about memory"})
            conn.request("POST", "/infer", body, {"content-type": "application/json"})
        else:
            conn.request("GET", "/readyz")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            with lock:
                failed[0] += 1

threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
start = time.time()
print(f"{'requests':>10} {'RSS MB':>8} {'req/s':>8}")
print(f"{0:>10} {rss_mb():>8.1f} {'':>8}")
for t in threads:
    t.start()
baseline, samples, next_report = None, [], 0
while any(t.is_alive() for t in threads):
    time.sleep(1)
    n = done[0]
    if baseline is None and n >= warmup:
        baseline = (n, rss_mb())
    if n >= next_report:
        print(f"{n:>10} {rss_mb():>8.1f} {n / (time.time() - start):>8.0f}", flush=True)
        next_report = n + total // 10
for t in threads:
    t.join()
end = rss_mb()
print(f"{done[0]:>10} {end:>8.1f} {done[0] / (time.time() - start):>8.0f}")
if baseline:
    print(f"RSS after {baseline[0]} warm-up requests: {baseline[1]:.1f} MB; after {done[0]}: "
          f"{end:.1f} MB; growth {end - baseline[1]:+.1f} MB; non-200 answers: {failed[0]}")

def tokenize_big(text):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/tokenize", json.dumps({"inputs": text}),
                 {"content-type": "application/json"})
    conn.getresponse().read()

if burst:
    text = ("memory " * 280000)[:1_900_000]
    before, peak = rss_mb(), 0.0
    workers = [threading.Thread(target=tokenize_big, args=(text,)) for _ in range(8)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        peak = max(peak, rss_mb())
        time.sleep(0.05)
    time.sleep(10)
    print(f"burst of 8 x 1.9 MB /tokenize: RSS {before:.1f} MB before, {peak:.1f} MB peak, "
          f"{rss_mb():.1f} MB 10 s later")
PY
