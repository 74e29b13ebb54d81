"""Interactive latency while a Batch API job runs: the cost a batch puts on `/infer` callers.

Starts one release `inferd serve` with the Batch API on (a fresh `--state-dir`), measures
closed-loop `/infer` latency with examples/loadgen/ on an idle server, then uploads a batch of
embedding requests (`/v1/files` + `/v1/batches`), and while that batch is `in_progress` measures
the same load again. Prints one table row per concurrency: p50/p99 idle, p50/p99 under the batch,
the p99 ratio, and the batch items finished meanwhile (proof that it ran throughout). Stdlib
only (plus the release binaries):

    cargo build --release --bin inferd --example loadgen
    python3 benches/compare/batch_priority.py [--lines 20000] [--duration 20] [--concurrency 1,4]
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid

from common import OUT, ROOT, SETS, busy_cpu_s, log
from inferd_http import Server, free_port, http, run_loadgen


def multipart_file(base, name, payload):
    """POST /v1/files (purpose=batch) with a hand-built multipart body; returns the file id."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + payload
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    req = urllib.request.Request(
        base + "/v1/files",
        data=b"".join(parts),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["id"]


def batch_lines(texts, n, per_request):
    """`n` JSONL request lines, each embedding `per_request` texts of the set, cycling."""
    out = []
    for i in range(n):
        chunk = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
        line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings",
                "body": {"model": "bench", "input": chunk}}
        out.append(json.dumps(line))
    return ("\n".join(out) + "\n").encode()


def batch_status(base, batch_id):
    status, body = http(f"{base}/v1/batches/{batch_id}", timeout=10)
    if status != 200:
        raise SystemExit(f"GET /v1/batches/{batch_id}: HTTP {status} {body[:200]!r}")
    doc = json.loads(body)
    return doc["status"], doc["request_counts"]["completed"]


def measure(args, srv, concurrency):
    cpu0 = busy_cpu_s()
    lg = run_loadgen(args.loadgen_bin, srv.base + "/infer", SETS[args.set], concurrency,
                     args.duration, args.warmup)
    lg["machine_cores"] = (busy_cpu_s() - cpu0) / (args.duration + args.warmup)
    if lg.get("errors"):
        raise SystemExit(f"loadgen saw {lg['errors']} errors")
    return lg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--set", default="short", choices=sorted(SETS))
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--lines", type=int, default=20000, help="batch request lines")
    ap.add_argument("--per-request", type=int, default=8, help="texts per batch line")
    ap.add_argument("--port", type=int, default=18432)
    ap.add_argument("--inferd-args", default="")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--loadgen-bin", default=str(ROOT / "target" / "release" / "examples" / "loadgen"))
    ap.add_argument("--out", default=str(OUT / "batch_priority.json"))
    args = ap.parse_args()

    state = tempfile.mkdtemp(prefix="inferd-bench-state-")
    args.inferd_args = f"--state-dir {state} --model-name bench {args.inferd_args}"
    texts = [t for t in SETS[args.set].read_text().splitlines() if t.strip()]
    srv = Server(args, args.model, free_port(args.port))
    rows = []
    try:
        srv.wait_ready(args.ready_timeout)
        for c in [int(x) for x in args.concurrency.split(",")]:
            idle = measure(args, srv, c)
            file_id = multipart_file(srv.base, "bench.jsonl", batch_lines(texts, args.lines, args.per_request))
            status, body = http(srv.base + "/v1/batches", {
                "input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"})
            if status != 200:
                raise SystemExit(f"POST /v1/batches: HTTP {status} {body[:300]!r}")
            batch_id = json.loads(body)["id"]
            while batch_status(srv.base, batch_id)[0] != "in_progress":
                time.sleep(0.2)
            _, done0 = batch_status(srv.base, batch_id)
            busy = measure(args, srv, c)
            state_after, done1 = batch_status(srv.base, batch_id)
            if state_after != "in_progress":
                log(f"warning: the batch finished ({state_after}) during the measurement; raise --lines")
            http(f"{srv.base}/v1/batches/{batch_id}/cancel", {})
            row = {"concurrency": c, "idle": idle, "under_batch": busy,
                   "batch_lines_done_meanwhile": done1 - done0, "batch_still_running": state_after == "in_progress",
                   "p99_ratio": busy["p99_ms"] / idle["p99_ms"], "p50_ratio": busy["p50_ms"] / idle["p50_ms"]}
            rows.append(row)
            log(json.dumps(row))
            while batch_status(srv.base, batch_id)[0] not in ("cancelled", "completed", "failed", "expired"):
                time.sleep(0.5)
    finally:
        srv.stop()
        shutil.rmtree(state, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    print("| concurrency | idle p50 / p99 ms | under a batch p50 / p99 ms | p99 ratio | batch lines done meanwhile |")
    print("|---|---|---|---|---|")
    for r in rows:
        i, b = r["idle"], r["under_batch"]
        print(f"| {r['concurrency']} | {i['p50_ms']:.2f} / {i['p99_ms']:.2f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} "
              f"| {r['p99_ratio']:.2f}× | {r['batch_lines_done_meanwhile']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
