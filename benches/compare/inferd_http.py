"""The inferd side of the harness: start `inferd serve` on 127.0.0.1, wait for /readyz, drive it
with examples/loadgen/, read its RSS and CPU from /proc, compare its embeddings with the
reference over HTTP, and stop it with SIGTERM."""
import json
import os
import pathlib
import resource
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from common import OUT, ROOT, busy_cpu_s, log, proc_cpu_s, proc_mem_mb


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


class Server:
    """`inferd serve`; a subclass starts another HTTP server (infinity_http.InfinityServer)."""

    name = "inferd"
    ready_path = "/readyz"
    info_path = "/info"
    embed_path = "/infer"
    loadgen_args = ()

    def __init__(self, args, model, port, binary=None):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        cmd = self.command(args, pathlib.Path(model), port, binary)
        OUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUT / f"{self.name}.log"
        self.logf = open(self.log_path, "w")
        log(f"starting: {' '.join(cmd)} (log: {self.log_path.relative_to(ROOT)})")
        env = self.environ(args)
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.cmd = cmd

    def command(self, args, model, port, binary):
        self.bin = pathlib.Path(binary or args.inferd_bin)
        cmd = [str(self.bin), "serve", "--model", str(model), "--listen", f"127.0.0.1:{port}"]
        return cmd + shlex.split(args.inferd_args)

    def environ(self, args):
        return dict(os.environ)

    def embed(self, texts):
        status, body = http(self.base + "/infer", {"inputs": texts})
        if status != 200:
            raise SystemExit(f"inferd /infer HTTP {status}: {body[:300]!r}")
        return json.loads(body)["embeddings"]

    def wait_ready(self, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-3000:]
                raise SystemExit(f"{self.name} exited with {self.proc.returncode} before ready:\n{tail}")
            try:
                status, _ = http(self.base + self.ready_path, timeout=2)
                if status == 200:
                    log(f"{self.name} ready after {time.time() - t0:.1f}s")
                    return time.time() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def info(self):
        try:
            status, body = http(self.base + self.info_path, timeout=5)
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


def run_loadgen(loadgen, url, texts, concurrency, duration, warmup, extra=()):
    """One loadgen run's JSON result; `extra` are more loadgen flags (e.g. `--grpc unary`)."""
    cmd = [
        str(loadgen),
        "--url", url,
        "--texts", str(texts),
        "--concurrency", str(concurrency),
        "--duration", str(duration),
        "--warmup", str(warmup),
        "--max-seconds", str(int(duration * 3 + warmup + 30)),
        *extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + warmup + 120)
    if p.returncode != 0:
        raise SystemExit(f"loadgen failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_server(args, model, plan, system="inferd", binary=None, server=Server):
    """Rows for `system` (`inferd`; `base`: the same measurement of another binary; `infinity`
    with server=InfinityServer)."""
    port = free_port(args.port)
    srv = server(args, model, port, binary)
    rows = []
    try:
        ready_s = srv.wait_ready(args.ready_timeout)
        info = srv.info()
        hwm0, rss0 = srv.mem()
        log(f"{system} idle RSS {rss0:.0f} MB")
        for cfg in plan:
            cpu0, child0, t0 = srv.cpu(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
            all0 = busy_cpu_s()
            lg = run_loadgen(args.loadgen_bin, srv.base + srv.embed_path, cfg["texts"], cfg["concurrency"], cfg["duration"], cfg["warmup"], srv.loadgen_args)
            hwm, rss = srv.mem()
            wall = time.time() - t0
            child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
            server_cpu = srv.cpu() - cpu0 if cpu0 is not None else None
            others = busy_cpu_s() - all0 - client_cpu - (server_cpu or 0)
            row = {
                "system": system,
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
                # cores used by every other process meanwhile: > ~0.2 means the row was disturbed
                "others_cores": round(max(0.0, others) / wall, 2),
                "loadgen": lg,
            }
            if lg["errors"]:
                log(f"{system} {cfg['set']} c{cfg['concurrency']}: {lg['errors']} errors, e.g. {lg.get('first_error')}")
            log(
                f"{system} {cfg['set']} c{cfg['concurrency']}: {lg['rps']:.1f} texts/s p50 {lg['p50_ms']:.2f} ms "
                f"p99 {lg['p99_ms']:.2f} ms peak RSS {hwm:.0f} MB (server {row['server_cores']} cores, "
                f"loadgen {row['client_cores']}, others {row['others_cores']} cores busy)"
            )
            rows.append(row)
    finally:
        srv.stop()
    return rows, {"cmd": srv.cmd, "info": info if rows else None}


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb)


def check_server(args, model, reference, threshold, system="inferd", server=Server):
    rows = [json.loads(l) for l in pathlib.Path(reference).read_text().splitlines() if l.strip()]
    port = free_port(args.port)
    srv = server(args, model, port)
    try:
        srv.wait_ready(args.ready_timeout)
        single = []
        for r in rows:
            single.append(cosine(srv.embed([r["text"]])[0], r["embedding"]))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["text"]), reverse=True)
        batched = [None] * len(rows)
        for s in range(0, len(order), 32):
            idx = order[s : s + 32]
            for i, e in zip(idx, srv.embed([rows[i]["text"] for i in idx])):
                batched[i] = cosine(e, rows[i]["embedding"])
    finally:
        srv.stop()
    worst = min(range(len(rows)), key=lambda i: min(single[i], batched[i]))
    return {
        "system": system,
        "texts": len(rows),
        "min_cos_single": min(single),
        "mean_cos_single": sum(single) / len(single),
        "min_cos_batch32": min(batched),
        "mean_cos_batch32": sum(batched) / len(batched),
        "worst_text": rows[worst]["text"][:80],
        "pass": min(min(single), min(batched)) >= threshold,
    }

