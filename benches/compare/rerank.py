#!/usr/bin/env python3
"""Reranker (cross-encoder) row of the comparison harness: pairs/s of inferd's TEI `POST /rerank`
over HTTP against sentence-transformers' `CrossEncoder.predict` in-process (f32 and bf16), same
pairs, same run (issue #16).

    benches/compare/rerank.py --rounds 3     # what the README shows (~9 min on 2 cores)
    benches/compare/rerank.py --quick        # smoke run (~3 min)
    benches/compare/rerank.py --no-build --inferd-bin PATH

This file owns: the reranker checkpoint (`make-model`: all-MiniLM-L6-v2's encoder loaded as a
1-label `BertForSequenceClassification`, the same shape as cross-encoder/ms-marco-MiniLM-L-6-v2,
its new classifier initialised under `torch.manual_seed(0)`, saved to
target/compare/reranker-minilm/), the request set, an HTTP client for `/rerank` (examples/loadgen
only speaks `/infer`), the CrossEncoder peer (`peer`, one process per row and system, measured by
peers.run_config) and the score check (`check-peer`). Server start/stop, RSS and CPU come from
inferd_http.py, the build, model fetch and peer environment from run.py, /proc and machine facts
from common.py.

Request k: query = line -(k+1) of benches/data/short.txt, texts = the k-th run of 32 lines of the
row's document file (short.txt ~12 tokens, long.txt 160-250 tokens). Rows: short/1 and long/1
(one client, one request at a time; the peer predicts one request's 32 pairs per call) and
short/4 (four concurrent clients, the server batches across requests; the peer predicts four
requests' 128 pairs per call, batch_size 32, its batched best). Max length 512 tokens (the
model's limit) on both sides: no pair reaches it, so nothing is truncated. Scores are raw logits
(`raw_scores: true`; the peer with an identity activation).
"""
import copy
import datetime
import http.client
import itertools
import json
import os
import pathlib
import sys
import threading
import time

from common import (DEFAULT_MODEL, DISTURBED, OUT, ROOT, SETS, busy_cpu_s, busy_report, git_rev,
                    is_busy, log, machine_info, versions, wait_idle)

SYSTEMS = ["inferd", "inferd-bf16", "st", "st-bf16"]
NAMES = {"inferd": "inferd (HTTP), `--dtype auto`", "inferd-bf16": "inferd (HTTP), `--dtype bf16`",
         "st": "CrossEncoder f32", "st-bf16": "CrossEncoder bf16"}
DTYPE = {"inferd": "auto", "inferd-bf16": "bf16"}
PEERS = {"st": "ST", "st-bf16": "ST bf16"}
RERANKER = OUT / "reranker-minilm"
DOCS = 32  # texts per request


def requests_for(set_):
    """[(query, [32 texts])] covering the document file once."""
    queries = SETS["short"].read_text().splitlines()
    docs = [t for t in SETS[set_].read_text().splitlines() if t.strip()]
    return [(queries[-(k + 1)], docs[k * DOCS:(k + 1) * DOCS]) for k in range(len(docs) // DOCS)]


# ---------------------------------------------------------------------------------------------
# subprocesses with torch: make-model, peer, check-peer


def cmd_make_model(src, out):
    import shutil

    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(0)
    m = BertForSequenceClassification.from_pretrained(str(src), num_labels=1)
    m.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(tmp)
    # MiniLM's tokenizer.json pads and truncates to 128 (training settings); both sides set their own.
    tj = tmp / "tokenizer.json"
    t = json.loads(tj.read_text())
    t["truncation"] = t["padding"] = None
    tj.write_text(json.dumps(t, ensure_ascii=False))
    tmp.rename(out)


class CrossEncoderPeer:
    """sentence-transformers' CrossEncoder at full strength: torch threads = cores, f32 or the
    model loaded in bfloat16 (`model_kwargs={"torch_dtype": torch.bfloat16}`: oneDNN bf16)."""

    def __init__(self, model_dir, threads, bf16, max_length):
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        from sentence_transformers import CrossEncoder

        kw = {"model_kwargs": {"torch_dtype": torch.bfloat16}} if bf16 else {}
        self.ce = CrossEncoder(str(model_dir), max_length=max_length, device="cpu",
                               activation_fn=torch.nn.Identity(), **kw)
        if bf16:
            print(f"CrossEncoder bf16: mkldnn bf16 supported {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, "
                  f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
                  f"weights {next(self.ce.parameters()).dtype}", file=sys.stderr, flush=True)

    def embed(self, units):  # peers.run_config's interface: one unit = one call's pairs
        return self.ce.predict([p for u in units for p in u], batch_size=32, show_progress_bar=False)


def cmd_peer(a):
    from peers import proc_mem_mb, run_config

    t0 = time.time()
    peer = CrossEncoderPeer(a["model"], a["threads"], a["system"] == "st-bf16", a["max_length"])
    peer.embed([[("warm", "up")]])
    load_s = time.time() - t0
    cfg = a["cfg"]
    reqs = [[(q, d) for d in docs] for q, docs in requests_for(cfg["set"])]
    c = cfg["clients"]
    units = [sum(reqs[i:i + c], []) for i in range(0, len(reqs), c)]  # c requests per call
    r = run_config(peer, units, 1, cfg["duration"], cfg["warmup"], 10**9)
    per_unit = DOCS * c  # every unit has this many pairs; run_config counts units as "texts"
    hwm, rss = proc_mem_mb()
    r.update(system=a["system"], set=cfg["set"], clients=c, pairs_per_s=r.pop("texts_per_s") * per_unit,
             pairs=r.pop("texts") * per_unit, peak_rss_mb=hwm, rss_mb=rss, load_s=load_s, threads=a["threads"])
    print(json.dumps(r), flush=True)


def cmd_check_peer(a):
    import numpy as np

    out = {}
    for name, bf16 in (("st", False), ("st-bf16", True)):
        peer = CrossEncoderPeer(a["model"], a["threads"], bf16, a["max_length"])
        out[name] = [float(x) for x in peer.embed([[tuple(p) for p in a["pairs"]]])]
    tok = peer.ce.tokenizer
    lens = [len(tok(q, d)["input_ids"]) for q, d in a["pairs"]]
    out["max_tokens"] = int(np.max(lens))
    print(json.dumps(out), flush=True)


def torch_subprocess(sub, payload, threads):
    import subprocess

    from run import peer_env

    p = subprocess.run([sys.executable, __file__, sub], input=json.dumps(payload), capture_output=True,
                       text=True, env=peer_env(threads))
    for line in p.stderr.splitlines():
        if line.startswith("CrossEncoder"):
            log(line)
    if p.returncode != 0:
        raise SystemExit(f"rerank.py {sub} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


# ---------------------------------------------------------------------------------------------
# inferd over HTTP


def rerank_body(query, texts):
    return json.dumps({"query": query, "texts": texts, "raw_scores": True, "truncate": True}).encode()


def post_rerank(conn, body):
    conn.request("POST", "/rerank", body, {"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def drive(port, bodies, clients, seconds):
    """`clients` closed-loop clients (one keep-alive connection each) taking the next body in turn
    until `seconds` pass (each sends at least one); latencies (ms) of 200 answers that score every
    text, and the errors."""
    counter, lat, errors = itertools.count(), [], []
    deadline = time.perf_counter() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        first = True
        while first or time.perf_counter() < deadline:
            first = False
            t0 = time.perf_counter()
            status, data = post_rerank(conn, bodies[next(counter) % len(bodies)])
            ms = (time.perf_counter() - t0) * 1000.0
            if status == 200 and len(json.loads(data)) == DOCS:
                lat.append(ms)
            else:
                errors.append(f"HTTP {status}: {data[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors


def inferd_server(args, system, reranker):
    from inferd_http import Server, free_port

    a = copy.copy(args)
    a.inferd_args = f"--grpc-listen off --drain-delay 0s --dtype {DTYPE[system]} {args.inferd_args}"
    srv = Server(a, reranker, free_port(args.port))
    ready_s = srv.wait_ready(args.ready_timeout)
    info = srv.info() or {}
    if info.get("kind") != "reranker" or info.get("max_seq_length") != args.max_length:
        srv.stop()
        raise SystemExit(f"inferd serves {reranker} as {info.get('kind')} with max_seq_length "
                         f"{info.get('max_seq_length')}; want a reranker at {args.max_length}")
    return srv, ready_s, info


def bench_inferd(args, system, reranker, cfg):
    import numpy as np

    bodies = [rerank_body(q, d) for q, d in requests_for(cfg["set"])]
    srv, ready_s, info = inferd_server(args, system, reranker)
    port = srv.port
    try:
        drive(port, bodies, cfg["clients"], cfg["warmup"])
        cpu0, own0, all0, t0 = srv.cpu(), time.process_time(), busy_cpu_s(), time.perf_counter()
        lat, errors = drive(port, bodies, cfg["clients"], cfg["duration"])
        wall = time.perf_counter() - t0
        server, client = srv.cpu() - cpu0, time.process_time() - own0
        others = busy_cpu_s() - all0 - server - client
        hwm, rss = srv.mem()
    finally:
        srv.stop()
    if errors:
        log(f"{system}: {len(errors)} errors, e.g. {errors[0]}")
    return {
        "system": system, "set": cfg["set"], "clients": cfg["clients"],
        "pairs_per_s": len(lat) * DOCS / wall, "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(np.mean(lat)), "calls": len(lat),
        "pairs": len(lat) * DOCS, "errors": len(errors), "seconds": wall, "peak_rss_mb": hwm, "rss_mb": rss,
        "ready_s": ready_s, "dtype": info.get("dtype"), "cpu_isa": info.get("cpu_isa"),
        "server_cores": round(server / wall, 2), "client_cores": round(client / wall, 2),
        "others_cores": round(max(0.0, others) / wall, 2),
    }


def check(args, reranker, systems):
    """inferd's raw scores (f32 and bf16 servers) against CrossEncoder's f32 logits on the first
    four requests of each document set (256 pairs)."""
    reqs = requests_for("short")[:4] + requests_for("long")[:4]
    pairs = [(q, d) for q, docs in reqs for d in docs]
    ref = torch_subprocess("check-peer", {"model": str(reranker), "threads": args.threads,
                                          "max_length": args.max_length, "pairs": pairs}, args.threads)
    scores, dtypes = {"st": ref["st"], "st-bf16": ref["st-bf16"]}, {}
    for system in [s for s in DTYPE if s in systems] or ["inferd"]:
        srv, _, info = inferd_server(args, system, reranker)
        dtypes[system] = info.get("dtype")
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
        got = []
        try:
            for q, docs in reqs:
                status, data = post_rerank(conn, rerank_body(q, docs))
                if status != 200:
                    raise SystemExit(f"inferd /rerank HTTP {status}: {data[:300]!r}")
                by = {x["index"]: x["score"] for x in json.loads(data)}
                got += [by[i] for i in range(len(docs))]
        finally:
            conn.close()
            srv.stop()
        scores[system] = got
    f32 = ref["st"]
    out = {"pairs": len(pairs), "inferd_dtypes": dtypes, "max_tokens": ref["max_tokens"],
           "max_abs_logit": max(abs(x) for x in f32)}
    for s, v in scores.items():
        if s != "st":
            out[f"max_abs_diff_{s}_vs_st"] = max(abs(x - y) for x, y in zip(v, f32))
    log(f"check: {json.dumps(out)}")
    return out


# ---------------------------------------------------------------------------------------------


def combine(rows):
    """Medians over rounds per (system, set, clients); per-round ratios of each inferd system
    to each peer (rounds pair up by number)."""
    from report import median

    groups = {}
    for r in rows:
        groups.setdefault((r["system"], r["set"], r["clients"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        row = dict(rs[-1])
        for f in ("pairs_per_s", "p50_ms", "p99_ms"):
            row[f] = median([r[f] for r in rs])
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
        row["others_cores"] = max(r["others_cores"] for r in rs)
        row["errors"] = sum(r.get("errors", 0) for r in rs)
        row["rounds_pairs_per_s"], row["n_rounds"] = [r["pairs_per_s"] for r in rs], len(rs)
        row["round_ratios"] = {}
        for p in PEERS if key[0] in DTYPE else ():
            peer = {r["round"]: r for r in groups.get((p, key[1], key[2]), [])}
            rat = [r["pairs_per_s"] / peer[r["round"]]["pairs_per_s"] for r in rs if r["round"] in peer]
            if rat:
                row["round_ratios"][p] = rat
        out[key] = row
    return out


def table(combined, plan):
    from report import fmt, median

    peers = [p for p in PEERS if any(k[0] == p for k in combined)]
    lines = ["| system | docs | clients | rounds | pairs/s | p50 ms | p99 ms | peak RSS MB |" + "".join(f" ÷ {PEERS[p]} |" for p in peers),
             "|---|---|---|--:|--:|--:|--:|--:|" + "--:|" * len(peers)]
    for cfg in plan:
        for s in SYSTEMS:
            r = combined.get((s, cfg["set"], cfg["clients"]))
            if not r:
                continue
            mark = (f" ({r['errors']} errors)" if r.get("errors") else "") + (" †" if r["others_cores"] > DISTURBED else "")
            line = (f"| {NAMES[s]} | {cfg['set']} | {cfg['clients']} | {r['n_rounds']} | {fmt(r['pairs_per_s'])}{mark} | "
                    f"{fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | {fmt(r['peak_rss_mb'], 0)} |")
            for p in peers:
                rat = r["round_ratios"].get(p)
                line += f" {median(rat):.2f}× ({min(rat):.2f}–{max(rat):.2f}) |" if rat and len(rat) > 1 else (
                    f" {rat[0]:.2f}× |" if rat else " |")
            lines.append(line)
    return "\n".join(lines)


def idle_table(rows, plan):
    """The table over the rounds in which other processes used <= DISTURBED cores (a ratio
    only over rounds where both systems were undisturbed)."""
    return table(combine([r for r in rows if r["others_cores"] <= DISTURBED]), plan)


def venv_python(args):
    """Re-run under the bench venv (benches/compare/setup.sh makes it on first use, as run.sh
    does) when this Python has no sentence-transformers."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("sentence_transformers"):
        return
    venv = pathlib.Path(os.environ.get("VENV_BENCH", ROOT / ".venv-bench"))
    if not (venv / ".pins").exists():
        subprocess.run([str(ROOT / "benches" / "compare" / "setup.sh")], check=True)
    os.execv(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), __file__, *sys.argv[1:]])


def main():
    import argparse

    from run import ensure_built, ensure_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="encoder the reranker is built from")
    ap.add_argument("--reranker", default=str(RERANKER), help="cross-encoder directory (built when missing)")
    ap.add_argument("--only", default=",".join(SYSTEMS), help=f"comma list of {','.join(SYSTEMS)}")
    ap.add_argument("--rows", default="short/1,long/1,short/4", help="docs/clients, docs short or long")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s per row")
    ap.add_argument("--duration", type=float, help="seconds measured per row (default 6, quick 2)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per row (default 2, quick 0.5)")
    ap.add_argument("--max-length", type=int, default=512, help="tokens per pair, both systems")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    ap.add_argument("--port", type=int, default=18434)
    ap.add_argument("--inferd-args", default="", help="extra flags for `inferd serve`")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S", help="wait up to S seconds for a machine idle for 30 s")
    ap.add_argument("--no-build", action="store_true", help="don't run cargo build")
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--out", default=str(OUT / "rerank.json"))
    ap.add_argument("--idle-from", nargs="+", metavar="JSON", help="measure nothing: the idle-rounds table of earlier runs")
    args = ap.parse_args()
    if args.idle_from:  # rounds of several runs on a shared machine, paired within each run
        rows = [dict(r, round=(i, r["round"])) for i, f in enumerate(args.idle_from)
                for r in json.loads(pathlib.Path(f).read_text())["per_round"]]
        plan = [{"set": s, "clients": c} for s, c in dict.fromkeys((r["set"], r["clients"]) for r in rows)]
        return print(idle_table(rows, plan))
    venv_python(args)

    systems = [s for s in SYSTEMS if s in args.only.split(",")]
    duration = args.duration or (2.0 if args.quick else 6.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    plan = [{"set": r.split("/")[0], "clients": int(r.split("/")[1]), "duration": duration, "warmup": warmup}
            for r in args.rows.split(",")]
    reranker = pathlib.Path(args.reranker).resolve()
    if not (reranker / "model.safetensors").exists():
        ensure_model(pathlib.Path(args.model).resolve())
        log(f"building {reranker} from {args.model} (BertForSequenceClassification, 1 label, seed 0)")
        torch_subprocess("make-model", {"src": str(pathlib.Path(args.model).resolve()), "out": str(reranker)}, args.threads)
    if any(s in DTYPE for s in systems):
        ensure_built(args, ["inferd"])
        if not pathlib.Path(args.inferd_bin).exists():
            raise SystemExit(f"{args.inferd_bin} missing: cargo build --release --bin inferd")
    busy = wait_idle(args.wait_idle, settle=30 if args.wait_idle else 0)
    if is_busy(busy):
        log(f"WARNING: machine busy ({busy}): numbers will be low and noisy; not for publishing")
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "git": git_rev(), "reranker": str(reranker), "max_length": args.max_length,
            "docs_per_request": DOCS, "duration_s": duration, "warmup_s": warmup, "peer_threads": args.threads,
            "versions": versions(), "quick": args.quick, "rounds": args.rounds, "busy_before": busy}
    t_start = time.time()
    meta["check"] = check(args, reranker, systems)
    rows = []
    for rnd in range(args.rounds):
        for cfg in plan:
            k = rnd % len(systems)
            for s in systems[k:] + systems[:k]:  # every system back to back, the order rotating
                load1 = round(os.getloadavg()[0], 2)
                if s in DTYPE:
                    r = bench_inferd(args, s, reranker, cfg)
                else:
                    r = torch_subprocess("peer", {"system": s, "model": str(reranker), "threads": args.threads,
                                                  "max_length": args.max_length, "cfg": cfg}, args.threads)
                r.update(round=rnd + 1, load1=load1)
                log(f"round {rnd + 1} {s} {cfg['set']}/{cfg['clients']}: {r['pairs_per_s']:.1f} pairs/s, "
                    f"p50 {r['p50_ms']:.1f} ms (others {r['others_cores']} cores, load {load1})")
                rows.append(r)
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    meta["busy_after"] = busy_report()
    loads = [r["load1"] for r in rows]
    combined = combine(rows)
    m, c = meta["machine"], meta["check"]
    header = (f"{meta['date'][:10]} · {m.get('cpu', '?')}, {m['cores']} cores ({', '.join(m.get('simd', []))}) · "
              f"inferd {meta['git'] or '?'} · {duration:g} s per row{' (quick)' if args.quick else ''} · "
              f"{args.rounds} round(s) · load average {min(loads):.2f}–{max(loads):.2f} · "
              f"{busy['cpu_busy_pct']}% CPU busy at start" + (" (MACHINE BUSY: not for publishing)" if is_busy(busy) else ""))
    check_line = (f"Scores vs CrossEncoder f32 logits, {c['pairs']} pairs (longest {c['max_tokens']} tokens, "
                  f"max |logit| {c['max_abs_logit']:.3f}): max abs diff " +
                  ", ".join(f"{NAMES[k[13:-6]]}{' = ' + c['inferd_dtypes'][k[13:-6]] if k[13:-6] in DTYPE else ''} "
                            f"{v:.2e}" for k, v in c.items() if k.startswith("max_abs_diff_")))
    md = table(combined, plan)
    if any(r["others_cores"] > DISTURBED for r in combined.values()):
        check_line += f"\n\n† = other processes used > {DISTURBED} cores in at least one round of that row."
    if any(r["others_cores"] > DISTURBED for r in rows):
        md += f"\n\nRounds in which other processes used <= {DISTURBED} cores only:\n\n{idle_table(rows, plan)}"
    print(f"\n{header}\n\n{md}\n\n{check_line}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": list(combined.values()), "per_round": rows}, indent=1))
    out.with_suffix(".md").write_text(f"{header}\n\n{md}\n\n{check_line}\n")
    log(f"wrote {out} in {meta['elapsed_s']:.0f}s")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in ("make-model", "peer", "check-peer"):
        a = json.load(sys.stdin)  # from torch_subprocess
        if sys.argv[1] == "make-model":
            cmd_make_model(pathlib.Path(a["src"]), pathlib.Path(a["out"]))
        else:
            {"peer": cmd_peer, "check-peer": cmd_check_peer}[sys.argv[1]](a)
    else:
        main()
