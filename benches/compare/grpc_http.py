"""gRPC against HTTP on the same server, same texts, same run: one release `inferd serve` with
`--grpc-listen`, driven by examples/loadgen in three transports — HTTP `POST /infer`, gRPC unary
`tei.v1.Embed/Embed`, and gRPC `EmbedStream` (one long stream per client, one text in flight
per stream) — at each concurrency. `--rounds N` repeats the plan, rotating which transport goes
first; the table shows medians over rounds and each gRPC ratio is the median of per-round
ratios to HTTP measured seconds apart. Stdlib only (plus the release binaries):

    cargo build --release --bin inferd --example loadgen
    python3 benches/compare/grpc_http.py [--rounds 3] [--duration 10] [--concurrency 1,32]
"""
import argparse
import json
import sys

from common import OUT, ROOT, SETS, busy_report, log, print_ratio_table
from inferd_http import Server, free_port, run_loadgen

TRANSPORTS = ["http", "grpc-unary", "grpc-stream"]


def loadgen(args, url, transport, concurrency):
    extra = [] if transport == "http" else ["--grpc", transport.removeprefix("grpc-")]
    out = run_loadgen(args.loadgen_bin, url, SETS[args.set], concurrency, args.duration, args.warmup, extra)
    if out["errors"]:
        raise SystemExit(f"loadgen ({transport}) saw {out['errors']} errors: {out['first_error']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--set", default="short", choices=sorted(SETS))
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--port", type=int, default=18433)
    ap.add_argument("--inferd-args", default="")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--loadgen-bin", default=str(ROOT / "target" / "release" / "examples" / "loadgen"))
    ap.add_argument("--out", default=str(OUT / "grpc_http.json"))
    args = ap.parse_args()

    busy = busy_report()
    log(f"machine before the run: {busy}")
    grpc_port = free_port(args.port + 1)
    args.inferd_args = f"--grpc-listen 127.0.0.1:{grpc_port} {args.inferd_args}"
    srv = Server(args, args.model, free_port(args.port))
    urls = {"http": srv.base + "/infer", "grpc-unary": f"http://127.0.0.1:{grpc_port}",
            "grpc-stream": f"http://127.0.0.1:{grpc_port}"}
    levels = [int(x) for x in args.concurrency.split(",")]
    runs = {(t, c): [] for t in TRANSPORTS for c in levels}
    try:
        srv.wait_ready(args.ready_timeout)
        for r in range(args.rounds):
            for c in levels:
                order = TRANSPORTS[r % 3:] + TRANSPORTS[:r % 3]
                for t in order:
                    out = loadgen(args, urls[t], t, c)
                    runs[(t, c)].append(out)
                    log(f"round {r + 1} {t} c={c}: {out['rps']} texts/s, p50 {out['p50_ms']} ms")
    finally:
        srv.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({f"{t}/{c}": v for (t, c), v in runs.items()}, f, indent=2)
    print(f"machine before the run: {busy}")
    print_ratio_table(runs, TRANSPORTS, levels, "http", "transport", digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
