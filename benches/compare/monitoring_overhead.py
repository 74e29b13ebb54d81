"""What tracing and drift monitoring cost: the same release `inferd serve`, started alternately
with both off (`--drift-window 0`, no collector) and both on (`--drift-window 1000`,
`--otlp-endpoint` to a real OTLP/gRPC receiver on loopback, `--trace-sample-ratio 1`: every
request traced and exported), driven by examples/loadgen with short texts at each concurrency.
`--rounds N` repeats the pair, rotating which goes first; the table shows medians over rounds,
and the ratio is the median of per-round ratios measured seconds apart. The receiver
(tests/traces/receiver.py, in `.venv-otlp`: `scripts/test.sh` makes it) runs on the same
machine, so its CPU counts against "on".

    cargo build --release --bin inferd --example loadgen
    python3 benches/compare/monitoring_overhead.py [--rounds 3] [--duration 10] [--concurrency 32]
"""
import argparse
import json
import subprocess
import sys

from common import OUT, ROOT, SETS, busy_report, log, print_ratio_table
from inferd_http import Server, free_port, run_loadgen


def start_receiver(python):
    proc = subprocess.Popen([python, str(ROOT / "tests" / "traces" / "receiver.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if line[:1] != ["listening"]:
        raise SystemExit(f"the OTLP receiver did not start: {line}")
    # Its span lines are not needed: read and drop them so the pipe never fills.
    subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
    return proc, int(line[1])


def measure(args, flags, concurrency):
    args.inferd_args = f"--grpc-listen off {flags} {args.extra_args}"
    srv = Server(args, args.model, free_port(args.port))
    try:
        srv.wait_ready(args.ready_timeout)
        out = run_loadgen(args.loadgen_bin, srv.base + "/infer", SETS[args.set], concurrency,
                          args.duration, args.warmup)
    finally:
        srv.stop()
    if out["errors"]:
        raise SystemExit(f"loadgen saw {out['errors']} errors: {out['first_error']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--set", default="short", choices=sorted(SETS))
    ap.add_argument("--concurrency", default="32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--port", type=int, default=18455)
    ap.add_argument("--extra-args", default="", help="more flags for both configurations")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--otlp-python", default=str(ROOT / ".venv-otlp" / "bin" / "python"))
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--loadgen-bin", default=str(ROOT / "target" / "release" / "examples" / "loadgen"))
    ap.add_argument("--out", default=str(OUT / "monitoring_overhead.json"))
    args = ap.parse_args()

    busy = busy_report()
    log(f"machine before the run: {busy}")
    receiver, otlp_port = start_receiver(args.otlp_python)
    configs = {
        "off": "--drift-window 0",
        "on": f"--drift-window 1000 --otlp-endpoint http://127.0.0.1:{otlp_port} --trace-sample-ratio 1",
    }
    names = list(configs)
    levels = [int(x) for x in args.concurrency.split(",")]
    runs = {(n, c): [] for n in names for c in levels}
    try:
        for r in range(args.rounds):
            for c in levels:
                for n in names[r % 2:] + names[:r % 2]:
                    out = measure(args, configs[n], c)
                    runs[(n, c)].append(out)
                    log(f"round {r + 1} {n} c={c}: {out['rps']} texts/s, p50 {out['p50_ms']} ms")
    finally:
        receiver.stdin.close()
        receiver.wait(timeout=10)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({f"{n}/{c}": v for (n, c), v in runs.items()}, f, indent=2)
    print(f"machine before the run: {busy}")
    print_ratio_table(runs, names, levels, "off", "tracing + drift", digits=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
