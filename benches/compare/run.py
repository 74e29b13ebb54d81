"""Comparison harness: inferd over HTTP vs sentence-transformers and ONNX Runtime in-process.

One command (see benches/compare/README.md):

    benches/compare/run.sh              # one round, ~6-8 minutes on an idle 2-core machine
    benches/compare/run.sh --rounds 3   # three rounds: medians, ratio = median of per-round ratios
    benches/compare/run.sh --quick      # smoke run, ~2 minutes
    benches/compare/run.sh --check      # embeddings of each system vs shared/reference (cosine)
    benches/compare/run.sh --only inferd,ort

For each text set (benches/data/short.txt ~12 tokens, benches/data/long.txt ~195 tokens) and each
concurrency (1 and 32):
  * inferd: `target/release/inferd serve` on 127.0.0.1, driven by `examples/loadgen/`, one
    text per request, N closed-loop clients; p50/p99 per request; RSS of the server process.
  * sentence-transformers and ONNX Runtime, in their own processes: concurrency 1 = one text per
    call, sequential; concurrency 32 = batches of 32 texts sorted by length; p50/p99 per call.
Prints a markdown table and writes target/compare/results.json (and results.md).
"""
import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

from common import (
    DEFAULT_MODEL, DISTURBED, HERE, OUT, REFERENCE, ROOT, SETS, SYSTEMS, NAMES,
    busy_report, git_rev, is_busy, log, machine_info, versions, wait_idle,
)
import infinity_http
from inferd_http import Server, bench_server, check_server
from report import combine, ratios, table


# ---------------------------------------------------------------------------------------------
# peers (each in its own process)


def peer_cmd(sub, system, model, onnx, threads, extra):
    cmd = [sys.executable, str(HERE / "peers.py"), sub, "--system", system, "--model", str(model), "--threads", str(threads)]
    if onnx:
        cmd += ["--onnx", str(onnx)]
    return cmd + extra


def peer_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def export_onnx(model, threads, force=False):
    # One cache folder per model directory, so MiniLM and MPNet exports do not evict each other.
    out = OUT / "onnx" / pathlib.Path(model).name
    cmd = [sys.executable, str(HERE / "peers.py"), "export", "--model", str(model), "--out", str(out)]
    if force:
        cmd.append("--force")
    p = subprocess.run(cmd, capture_output=True, text=True, env=peer_env(threads))
    if p.returncode != 0:
        raise SystemExit(f"ONNX export failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    log(f"ONNX model {res['onnx']} ({'cached' if res['cached'] else 'exported'}); fused ops: {res['fused']['fused_ops']}")
    return res


def onnx_for(system, exported):
    """ORT runs the fused graph; OpenVINO the plain export (it fuses by itself)."""
    return {"ort": exported.get("onnx"), "ov": exported.get("raw")}.get(system)


def bench_peer(system, model, onnx, threads, plan):
    cmd = peer_cmd("bench", system, model, onnx, threads, ["--plan", json.dumps(plan)])
    rows = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=peer_env(threads)) as p:
        stderr_lines = []

        def drain():
            for line in p.stderr:
                stderr_lines.append(line)
                if line.startswith(("sentence-transformers", "onnxruntime", "openvino")):
                    log(line.strip())

        import threading

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        for line in p.stdout:
            if line.startswith("{"):
                rows.append(json.loads(line))
        p.wait()
        t.join(timeout=5)
    if p.returncode != 0:
        raise SystemExit(f"{system} bench failed ({p.returncode}):\n{''.join(stderr_lines)[-3000:]}")
    return rows



def run_check(args, model, systems):
    reference = pathlib.Path(args.reference)
    if not reference.exists():
        raise SystemExit(f"reference embeddings not found: {reference}")
    results = []
    exported = export_onnx(model, args.threads) if {"ort", "ov"} & set(systems) else {}
    for s in systems:
        if s in ("inferd", "infinity"):
            r = check_server(args, model, reference, args.threshold, s, SERVERS[s])
        else:
            extra = ["--reference", str(reference), "--threshold", str(args.threshold)]
            p = subprocess.run(peer_cmd("check", s, model, onnx_for(s, exported), args.threads, extra), capture_output=True, text=True, env=peer_env(args.threads))
            if p.returncode != 0:
                raise SystemExit(f"{s} check failed:\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
        results.append(r)
    print(f"\nEmbeddings vs {reference.name} ({results[0]['texts']} texts), threshold cosine >= {args.threshold}\n")
    print("| system | min cos (1 text/call) | min cos (batches of 32) | mean cos | worst text | pass |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {NAMES[r['system']]} | {r['min_cos_single']:.7f} | {r['min_cos_batch32']:.7f} | "
            f"{r['mean_cos_single']:.7f} | {r['worst_text'][:40]!r} | {'yes' if r['pass'] else 'NO'} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "check.json").write_text(json.dumps(results, indent=1))
    return all(r["pass"] for r in results)



# ---------------------------------------------------------------------------------------------


SERVERS = {"inferd": Server, "infinity": infinity_http.InfinityServer}


def default_systems():
    """inferd,st,ort, and infinity when its venv exists (`setup.sh --infinity`)."""
    return "inferd,st,ort" + (",infinity" if infinity_http.available() else "")


def ensure_built(args, systems):
    default_bins = args.inferd_bin == str(ROOT / "target" / "release" / "inferd")
    if "inferd" not in systems or args.no_build or not default_bins:
        return
    cmd = ["cargo", "build", "--release", "--bin", "inferd", "--example", "loadgen"]
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit("cargo build failed")


def ensure_model(model):
    if (model / "config.json").exists():
        return
    fetch = ROOT / "scripts" / "fetch-model.sh"
    if model == DEFAULT_MODEL and fetch.exists():
        log(f"{model} missing; running scripts/fetch-model.sh")
        subprocess.run(["bash", str(fetch)], cwd=ROOT, check=True)
    if not (model / "config.json").exists():
        raise SystemExit(f"model directory {model} not found (run scripts/fetch-model.sh or pass --model DIR)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("INFERD_BENCH_MODEL", str(DEFAULT_MODEL)))
    ap.add_argument("--only", default=default_systems(), help="comma list of inferd,base,st,st-bf16,ort,ov,infinity (default: %(default)s; infinity only when .venv-infinity exists)")
    ap.add_argument("--baseline-bin", help="another inferd binary measured as system `base` (e.g. main's, for before/after)")
    ap.add_argument("--sets", default="short,long")
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 s per measurement")
    ap.add_argument("--duration", type=float, help="seconds measured per configuration (default 15, quick 3)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per configuration (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / ORT intra-op threads")
    ap.add_argument("--port", type=int, default=18431)
    ap.add_argument("--inferd-args", default="", help="extra flags for `inferd serve`, e.g. '--threads 2'")
    ap.add_argument("--infinity-args", default="", help="flags for `infinity_emb v2` replacing the harness' engine/dtype/batch flags (infinity_http.FLAGS)")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--no-build", action="store_true", help="don't run cargo build")
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--loadgen-bin", default=str(ROOT / "target" / "release" / "examples" / "loadgen"))
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole plan; report medians")
    ap.add_argument("--check", action="store_true", help="only compare embeddings with the reference")
    ap.add_argument("--reference", default=str(REFERENCE))
    ap.add_argument("--threshold", type=float, default=0.999)
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S", help="wait up to S seconds for an idle machine first")
    ap.add_argument("--reexport", action="store_true", help="re-export the ONNX model")
    ap.add_argument("--out", default=str(OUT / "results.json"))
    args = ap.parse_args()

    systems = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or not systems:
        raise SystemExit(f"--only takes a comma list of {','.join(SYSTEMS)}; got {args.only}")
    systems = [s for s in SYSTEMS if s in systems]
    model = pathlib.Path(args.model).resolve()
    ensure_model(model)
    ensure_built(args, systems)
    for s in systems:
        if s == "inferd":
            for b in (pathlib.Path(args.inferd_bin), pathlib.Path(args.loadgen_bin)):
                if not b.exists():
                    raise SystemExit(f"{b} missing: cargo build --release --bin inferd --example loadgen")
        if s == "infinity" and not infinity_http.available():
            raise SystemExit(f"system `infinity` needs {infinity_http.BIN}: run benches/compare/setup.sh --infinity")
        if s == "base" and not (args.baseline_bin and pathlib.Path(args.baseline_bin).exists()):
            raise SystemExit("system `base` needs --baseline-bin PATH (an inferd binary to compare with)")

    if args.check:
        ok = run_check(args, model, systems)
        sys.exit(0 if ok else 1)

    duration = args.duration or (3.0 if args.quick else 15.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    plan = [
        {"set": s, "texts": str(SETS[s]), "concurrency": int(c), "duration": duration, "warmup": warmup}
        for s in args.sets.split(",")
        for c in args.concurrency.split(",")
    ]
    t_start = time.time()
    results = []
    busy = wait_idle(args.wait_idle)
    if is_busy(busy):
        log(
            f"WARNING: machine busy ({busy['cpu_busy_pct']}% CPU in use by others, load {busy['load1']}, "
            f"{busy['compilers_running']} compiler processes): numbers will be low and noisy; torch in "
            "particular slows down many-fold when a core is taken. Run on an idle machine for the README."
        )
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_rev(),
        "model": str(model),
        "duration_s": duration,
        "warmup_s": warmup,
        "peer_threads": args.threads,
        "versions": versions(),
        "quick": args.quick,
        "busy_before": busy,
    }
    if {"ort", "ov"} & set(systems):
        meta["onnx"] = export_onnx(model, args.threads, args.reexport)
    # Row by row, every system back to back (the order rotating each round), so that the
    # machine's drift over minutes (large on shared VMs) falls on all systems alike.
    for rnd in range(args.rounds):
        for cfg in plan:
            k = rnd % len(systems)
            for s in systems[k:] + systems[:k]:
                if s == "inferd":
                    rows, meta["inferd"] = bench_server(args, model, [cfg])
                elif s == "base":
                    rows, meta["base"] = bench_server(args, model, [cfg], "base", args.baseline_bin)
                elif s == "infinity":
                    rows, meta["infinity"] = bench_server(args, model, [cfg], s, server=SERVERS[s])
                else:
                    rows = bench_peer(s, model, onnx_for(s, meta.get("onnx", {})), args.threads, [cfg])
                for r in rows:
                    r["round"] = rnd + 1
                results += rows
    meta["rounds"] = args.rounds
    per_round, results = results, combine(results)
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    meta["busy_after"] = busy_report()

    md = table(results, systems)
    m = meta["machine"]
    header = (
        f"{meta['date'][:10]} · {m.get('cpu', '?')}, {m['cores']} cores ({', '.join(m.get('simd', []))}), "
        f"{m.get('mem_gib', '?')} GiB · inferd {meta['git'] or '?'} · "
        f"{meta['duration_s']:g} s per row{' (quick)' if args.quick else ''} · {args.rounds} round(s)"
    )
    if is_busy(busy):
        header += f" · MACHINE BUSY at start ({busy['cpu_busy_pct']}% CPU used by others): not for publishing"
    notes = (
        "clients = concurrent HTTP clients (inferd, one text per request) or texts per call for the "
        "in-process peers (32 = length-sorted batches of 32); p50/p99 per request or per call; each "
        "row runs every system back to back, a fresh process each; peak RSS = VmHWM of that "
        "process (the largest over rounds); with several rounds, texts/s and latencies are medians "
        "over rounds and a ratio is the median of the per-round ratios, its range in brackets."
    )
    if any((r.get("others_cores") or 0) > DISTURBED for r in results):
        notes += f" † = other processes used > {DISTURBED} cores during that row: not a clean number."
    print()
    print(header)
    print()
    print(md)
    print()
    print(notes)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"meta": meta, "results": results, "per_round": per_round, "ratios": ratios(results)}, indent=1)
    )
    (out.parent / "results.md").write_text(header + "\n\n" + md + "\n\n" + notes + "\n")
    log(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {meta['elapsed_s']:.0f}s")


if __name__ == "__main__":
    main()
