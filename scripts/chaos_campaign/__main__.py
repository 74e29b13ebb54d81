"""Owns the command line of `scripts/chaos`: options, which rows run, the order, the final
table, the JSON file and the exit status. Children are killed and scratch dirs removed on
every exit, Ctrl-C and SIGTERM included."""

import argparse
import datetime
import os
import resource
import signal
import sys
import time

from . import report, rows_connections, rows_durability, rows_input, rows_load
from .server import Context

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROWS = {
    1: rows_input.fuzz,
    2: rows_load.soak,
    3: rows_durability.kill_during_writes,
    4: rows_durability.disk_full,
    5: rows_durability.wal_flipped_byte,
    6: rows_durability.audit_torn_line,
    7: rows_input.control_char_label,
    8: rows_load.queue_admission,
    9: rows_input.tokenize_amplification,
    10: rows_connections.connections,
    11: rows_connections.drain,
    12: rows_input.auth,
    13: rows_load.lifecycle_under_load,
    14: rows_load.panic_isolation,
    15: rows_connections.tls,
}


def default_bin():
    """The newer of target/release/inferd and target/debug/inferd (a stale build is no test)."""
    builds = [os.path.join(ROOT, f"target/{p}/inferd") for p in ("release", "debug")]
    built = [b for b in builds if os.path.exists(b)]
    return max(built, key=os.path.getmtime) if built else builds[1]


def parse_args():
    rows = "\n".join(f"  {n:>2}  {f.__doc__}" for n, f in ROWS.items())
    p = argparse.ArgumentParser(
        prog="scripts/chaos", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs issue #22's fault and bad-input campaign against spawned inferd "
                    "servers (127.0.0.1 only) and prints one PASS/FAIL row per probe.",
        epilog=f"rows:\n{rows}\n\nexit status: 1 when a row fails, 0 otherwise")
    p.add_argument("--bin", default=default_bin(), help="inferd binary")
    p.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"),
                   help="model directory")
    p.add_argument("--only", help="comma-separated row numbers, e.g. 1,5,10")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="small counts (about 4 min)")
    scale.add_argument("--full", action="store_true",
                       help="the original campaign's counts (1M soak requests, 15,500 bodies)")
    p.add_argument("--fuzz-bodies", type=int, help="row 1: bodies to send (default 5,000)")
    p.add_argument("--soak-requests", type=int, help="row 2: requests (default 200,000)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p.parse_args()


def selected(only):
    if not only:
        return sorted(ROWS)
    numbers = [int(n) for n in only.split(",") if n.strip()]
    unknown = [n for n in numbers if n not in ROWS]
    if unknown:
        sys.exit(f"no such row: {unknown} (rows are 1 to {max(ROWS)})")
    return numbers


def raise_nofile():
    """Room for row 10's 20,000 idle sockets: root may raise the hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 24000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_row(number, ctx, args):
    started = time.time()
    try:
        row = ROWS[number](ctx, args)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a probe that broke is a FAIL, with what broke
        row = report.Row(number, ROWS[number].__doc__.split("\n")[0].strip(),
                         f"error: {type(err).__name__}: {str(err)[:300]}", False)
    row.seconds = time.time() - started
    print(report.line(row), flush=True)
    return row


def main():
    args = parse_args()
    for path, what in ((args.bin, "binary"), (args.model, "model")):
        if not os.path.exists(path):
            sys.exit(f"no {what} at {path}")
    scale = "quick" if args.quick else "full" if args.full else "default"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_nofile()
    ctx = Context(args.bin, args.model, scale)
    started, rows = time.time(), []
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"chaos campaign: {ctx.bin} ({scale}), model {ctx.model}", flush=True)
    try:
        for number in selected(args.only):
            rows.append(run_row(number, ctx, args))
    except KeyboardInterrupt:
        print("interrupted: killing the servers", file=sys.stderr)
        return 130
    finally:
        ctx.cleanup()
    wall = time.time() - started
    print(f"\n{report.markdown(rows)}\n\nwall time {wall:.0f} s; "
          f"{sum(r.ok is False for r in rows)} FAIL, {sum(r.ok is None for r in rows)} SKIP")
    if args.json:
        report.write_json(args.json, rows, {
            "date": date, "binary": ctx.bin, "model": ctx.model, "scale": scale, "wall_seconds": round(wall)})
    return 1 if any(r.ok is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
