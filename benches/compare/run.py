"""Comparison harness: inferd over HTTP vs sentence-transformers and ONNX Runtime in-process.

One command (see benches/compare/README.md):

    benches/compare/run.sh              # full run, ~5-8 minutes on 2 cores
    benches/compare/run.sh --quick      # smoke run, ~1-2 minutes
    benches/compare/run.sh --check      # embeddings of each system vs shared/reference (cosine)
    benches/compare/run.sh --only inferd,ort

For each text set (benches/data/short.txt ~12 tokens, benches/data/long.txt ~195 tokens) and each
concurrency (1 and 32):
  * inferd: `target/release/inferd serve` on 127.0.0.1, driven by `examples/loadgen.rs`, one
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
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "benches" / "compare"
OUT = ROOT / "target" / "compare"
SETS = {"short": ROOT / "benches" / "data" / "short.txt", "long": ROOT / "benches" / "data" / "long.txt"}
SYSTEMS = ["inferd", "st", "ort"]
NAMES = {"inferd": "inferd (HTTP)", "st": "sentence-transformers", "ort": "ONNX Runtime"}
DEFAULT_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"
REFERENCE = ROOT.parent / "shared" / "reference" / "visible.jsonl"


def log(msg):
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_mem_mb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    vals[k] = int(v.split()[0]) / 1024.0
    except FileNotFoundError:
        pass
    return vals.get("VmHWM"), vals.get("VmRSS")


def proc_cpu_s(pid):
    """user+system CPU seconds of a process."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def busy_report():
    """1-minute load average and other compilers running: the numbers are only fair on an idle box."""
    load1 = os.getloadavg()[0]
    rustc = 0
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("rustc", "cc1", "cc1plus", "ld", "cargo"):
                    rustc += 1
            except OSError:
                pass
    return {"load1": round(load1, 2), "compilers_running": rustc}


def machine_info():
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        for line in cpuinfo.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
                break
        mem = pathlib.Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["mem_gib"] = round(int(mem) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
        if rev.returncode == 0:
            return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return None


def free_port(preferred):
    for port in (preferred, 0):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free port on 127.0.0.1")


def http(url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------------------------------------
# inferd


class Server:
    def __init__(self, args, model, port):
        self.bin = pathlib.Path(args.inferd_bin)
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        cmd = [str(self.bin), "serve", "--model", str(model), "--listen", f"127.0.0.1:{port}"]
        cmd += shlex.split(args.inferd_args)
        OUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUT / "inferd.log"
        self.logf = open(self.log_path, "w")
        log(f"starting: {' '.join(cmd)} (log: {self.log_path.relative_to(ROOT)})")
        env = dict(os.environ)
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.cmd = cmd

    def wait_ready(self, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-3000:]
                raise SystemExit(f"inferd exited with {self.proc.returncode} before ready:\n{tail}")
            try:
                status, _ = http(self.base + "/readyz", timeout=2)
                if status == 200:
                    log(f"inferd ready after {time.time() - t0:.1f}s")
                    return time.time() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"inferd not ready within {timeout}s; see {self.log_path}")

    def info(self):
        try:
            status, body = http(self.base + "/info", timeout=5)
            return json.loads(body) if status == 200 else None
        except (OSError, ValueError):
            return None

    def mem(self):
        return proc_mem_mb(self.proc.pid)

    def cpu(self):
        return proc_cpu_s(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def run_loadgen(loadgen, url, texts, concurrency, duration, warmup):
    cmd = [
        str(loadgen),
        "--url", url,
        "--texts", str(texts),
        "--concurrency", str(concurrency),
        "--duration", str(duration),
        "--warmup", str(warmup),
        "--max-seconds", str(int(duration * 3 + warmup + 30)),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + warmup + 120)
    if p.returncode != 0:
        raise SystemExit(f"loadgen failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_inferd(args, model, plan):
    port = free_port(args.port)
    srv = Server(args, model, port)
    rows = []
    try:
        ready_s = srv.wait_ready(args.ready_timeout)
        info = srv.info()
        hwm0, rss0 = srv.mem()
        log(f"inferd idle RSS {rss0:.0f} MB")
        for cfg in plan:
            cpu0, child0, t0 = srv.cpu(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
            lg = run_loadgen(args.loadgen_bin, srv.base + "/infer", cfg["texts"], cfg["concurrency"], cfg["duration"], cfg["warmup"])
            hwm, rss = srv.mem()
            wall = time.time() - t0
            child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
            server_cpu = srv.cpu() - cpu0 if cpu0 is not None else None
            row = {
                "system": "inferd",
                "set": cfg["set"],
                "concurrency": cfg["concurrency"],
                "texts_per_s": lg["rps"],
                "p50_ms": lg["p50_ms"],
                "p99_ms": lg["p99_ms"],
                "mean_ms": lg.get("mean_ms"),
                "calls": lg["requests"],
                "texts": lg["ok"],
                "errors": lg["errors"],
                "seconds": lg["seconds"],
                "peak_rss_mb": hwm,
                "rss_mb": rss,
                "idle_rss_mb": rss0,
                "ready_s": ready_s,
                # CPU used during this configuration (warm-up included), in cores
                "server_cores": round(server_cpu / wall, 2) if server_cpu is not None else None,
                "client_cores": round(client_cpu / wall, 2),
                "loadgen": lg,
            }
            if lg["errors"]:
                log(f"inferd {cfg['set']} c{cfg['concurrency']}: {lg['errors']} errors, e.g. {lg.get('first_error')}")
            log(
                f"inferd {cfg['set']} c{cfg['concurrency']}: {lg['rps']:.1f} texts/s p50 {lg['p50_ms']:.2f} ms "
                f"p99 {lg['p99_ms']:.2f} ms peak RSS {hwm:.0f} MB (server {row['server_cores']} cores, "
                f"loadgen {row['client_cores']} cores busy)"
            )
            rows.append(row)
    finally:
        srv.stop()
    return rows, {"cmd": srv.cmd, "info": info if rows else None}


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
    cmd = [sys.executable, str(HERE / "peers.py"), "export", "--model", str(model), "--out", str(OUT / "onnx")]
    if force:
        cmd.append("--force")
    p = subprocess.run(cmd, capture_output=True, text=True, env=peer_env(threads))
    if p.returncode != 0:
        raise SystemExit(f"ONNX export failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    log(f"ONNX model {res['onnx']} ({'cached' if res['cached'] else 'exported'}); fused ops: {res['fused']['fused_ops']}")
    return res


def bench_peer(system, model, onnx, threads, plan):
    cmd = peer_cmd("bench", system, model, onnx, threads, ["--plan", json.dumps(plan)])
    rows = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=peer_env(threads)) as p:
        stderr_lines = []

        def drain():
            for line in p.stderr:
                stderr_lines.append(line)
                if line.startswith(("sentence-transformers", "onnxruntime")):
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


# ---------------------------------------------------------------------------------------------
# check


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb)


def check_inferd(args, model, reference, threshold):
    rows = [json.loads(l) for l in pathlib.Path(reference).read_text().splitlines() if l.strip()]
    port = free_port(args.port)
    srv = Server(args, model, port)
    try:
        srv.wait_ready(args.ready_timeout)
        single = []
        for r in rows:
            status, body = http(srv.base + "/infer", {"inputs": r["text"]})
            if status != 200:
                raise SystemExit(f"inferd /infer HTTP {status}: {body[:300]!r}")
            single.append(cosine(json.loads(body)["embeddings"][0], r["embedding"]))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["text"]), reverse=True)
        batched = [None] * len(rows)
        for s in range(0, len(order), 32):
            idx = order[s : s + 32]
            status, body = http(srv.base + "/infer", {"inputs": [rows[i]["text"] for i in idx]})
            if status != 200:
                raise SystemExit(f"inferd /infer (batch) HTTP {status}: {body[:300]!r}")
            for i, e in zip(idx, json.loads(body)["embeddings"]):
                batched[i] = cosine(e, rows[i]["embedding"])
    finally:
        srv.stop()
    worst = min(range(len(rows)), key=lambda i: min(single[i], batched[i]))
    return {
        "system": "inferd",
        "texts": len(rows),
        "min_cos_single": min(single),
        "mean_cos_single": sum(single) / len(single),
        "min_cos_batch32": min(batched),
        "mean_cos_batch32": sum(batched) / len(batched),
        "worst_text": rows[worst]["text"][:80],
        "pass": min(min(single), min(batched)) >= threshold,
    }


def run_check(args, model, systems):
    reference = pathlib.Path(args.reference)
    if not reference.exists():
        raise SystemExit(f"reference embeddings not found: {reference}")
    results = []
    onnx = export_onnx(model, args.threads)["onnx"] if "ort" in systems else None
    for s in systems:
        if s == "inferd":
            r = check_inferd(args, model, reference, args.threshold)
        else:
            extra = ["--reference", str(reference), "--threshold", str(args.threshold)]
            p = subprocess.run(peer_cmd("check", s, model, onnx, args.threads, extra), capture_output=True, text=True, env=peer_env(args.threads))
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
# report


def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def table(results, systems):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    peers = [s for s in ("st", "ort") if s in systems]
    head = "| system | texts | clients | texts/s | p50 ms | p99 ms | peak RSS MB |"
    sep = "|---|---|---|--:|--:|--:|--:|"
    for p in peers:
        head += f" inferd ÷ {'ST' if p == 'st' else 'ORT'} |"
        sep += "--:|"
    lines = [head, sep]
    keys = sorted({(r["set"], r["concurrency"]) for r in results}, key=lambda k: (list(SETS).index(k[0]), k[1]))
    for set_, c in keys:
        for s in SYSTEMS:
            r = by.get((s, set_, c))
            if not r:
                continue
            line = (
                f"| {NAMES[s]} | {set_} | {c} | {fmt(r['texts_per_s'])}"
                f"{' (' + str(r['errors']) + ' errors)' if r.get('errors') else ''} | {fmt(r['p50_ms'], 2)} | "
                f"{fmt(r['p99_ms'], 2)} | {fmt(r['peak_rss_mb'], 0)} |"
            )
            for p in peers:
                base = by.get((p, set_, c))
                if s == "inferd" and base and r["texts_per_s"] and base["texts_per_s"]:
                    line += f" {r['texts_per_s'] / base['texts_per_s']:.2f}× |"
                else:
                    line += " |"
            lines.append(line)
    return "\n".join(lines)


def ratios(results):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    out = []
    for (s, set_, c), r in by.items():
        if s != "inferd":
            continue
        for p in ("st", "ort"):
            b = by.get((p, set_, c))
            if b and b["texts_per_s"] and r["texts_per_s"]:
                out.append(
                    {
                        "set": set_,
                        "concurrency": c,
                        "peer": p,
                        "throughput_ratio": r["texts_per_s"] / b["texts_per_s"],
                        "p50_ratio": b["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None,
                        "rss_ratio": r["peak_rss_mb"] / b["peak_rss_mb"] if b["peak_rss_mb"] else None,
                    }
                )
    return out


def versions():
    out = {}
    try:
        from importlib.metadata import version

        for m in ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx", "tokenizers", "numpy"):
            try:
                out[m] = version(m)
            except Exception:
                pass
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------------------------------------


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
    ap.add_argument("--only", default="inferd,st,ort", help="comma list of inferd,st,ort")
    ap.add_argument("--sets", default="short,long")
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 s per measurement")
    ap.add_argument("--duration", type=float, help="seconds measured per configuration (default 15, quick 3)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per configuration (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / ORT intra-op threads")
    ap.add_argument("--port", type=int, default=18431)
    ap.add_argument("--inferd-args", default="", help="extra flags for `inferd serve`, e.g. '--threads 2'")
    ap.add_argument("--ready-timeout", type=float, default=180)
    ap.add_argument("--no-build", action="store_true", help="don't run cargo build")
    ap.add_argument("--inferd-bin", default=str(ROOT / "target" / "release" / "inferd"))
    ap.add_argument("--loadgen-bin", default=str(ROOT / "target" / "release" / "examples" / "loadgen"))
    ap.add_argument("--check", action="store_true", help="only compare embeddings with the reference")
    ap.add_argument("--reference", default=str(REFERENCE))
    ap.add_argument("--threshold", type=float, default=0.999)
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
    busy = busy_report()
    if busy["load1"] > 0.7 or busy["compilers_running"]:
        log(
            f"WARNING: machine busy (load {busy['load1']}, {busy['compilers_running']} compiler processes): "
            "numbers will be low and noisy; run on an idle machine for the README table"
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
    if "inferd" in systems:
        rows, meta["inferd"] = bench_inferd(args, model, plan)
        results += rows
    if "ort" in systems:
        meta["onnx"] = export_onnx(model, args.threads, args.reexport)
    for s in ("st", "ort"):
        if s in systems:
            results += bench_peer(s, model, meta.get("onnx", {}).get("onnx"), args.threads, plan)
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    meta["busy_after"] = busy_report()

    md = table(results, systems)
    m = meta["machine"]
    header = (
        f"{meta['date'][:10]} · {m.get('cpu', '?')}, {m['cores']} cores ({', '.join(m.get('simd', []))}), "
        f"{m.get('mem_gib', '?')} GiB · inferd {meta['git'] or '?'} · "
        f"{meta['duration_s']:g} s per row{' (quick)' if args.quick else ''}"
    )
    if busy["load1"] > 0.7 or busy["compilers_running"]:
        header += f" · MACHINE BUSY at start (load {busy['load1']}): not for publishing"
    notes = (
        "clients = concurrent HTTP clients (inferd, one text per request) or texts per call for the "
        "in-process peers (32 = length-sorted batches of 32); p50/p99 per request or per call; peak "
        "RSS = VmHWM of the process so far (rows run top to bottom per system); ratios are texts/s."
    )
    print()
    print(header)
    print()
    print(md)
    print()
    print(notes)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results, "ratios": ratios(results)}, indent=1))
    (out.parent / "results.md").write_text(header + "\n\n" + md + "\n\n" + notes + "\n")
    log(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {meta['elapsed_s']:.0f}s")


if __name__ == "__main__":
    main()
