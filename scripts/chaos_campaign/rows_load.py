"""Owns the rows under load: the unscraped soak and its RSS growth (2), queue admission with
sequential clients (8), the model lifecycle under live traffic (13) and per-batch panic
isolation through the documented `faults.panic_on` of `POST /admin/load` (14)."""

import http.client
import json
import random
import re
import shutil
import subprocess
import threading
import time

from . import report
from .rows_durability import admin_ok, lifecycle_server, routes, two_version_manifest
from .server import Server, track

INFER_BODY = json.dumps({"inputs": "soak request about memory"})
HEADERS = {"Content-Type": "application/json"}


def ab(url, requests, clients, body_file=None):
    """`ab -k` (apache2-utils): (answered, not answered or non-2xx)."""
    cmd = ["ab", "-k", "-q", "-l", "-n", str(requests), "-c", str(clients)]
    if body_file:
        cmd += ["-p", body_file, "-T", "application/json"]
    out = track(subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)).communicate()[0]
    done = re.search(r"Complete requests:\s+(\d+)", out)
    if not done:
        raise RuntimeError(f"ab failed: {out[-500:]}")
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    bad = sum(int(m.group(1)) for m in (failed, non2xx) if m)
    return int(done.group(1)), bad


def python_client(server, path, requests, clients, body=None):
    """The fallback without `ab`: `clients` keep-alive connections; (answered, non-200)."""
    left, tally, lock = [requests], [0, 0], threading.Lock()

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            conn.request("POST" if body else "GET", path, body, HEADERS if body else {})
            r = conn.getresponse()
            r.read()
            with lock:
                tally[0] += 1
                tally[1] += r.status != 200

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tuple(tally)


def mixed_round(server, requests, body_file):
    """`requests` requests, 1 in 10 an /infer, both kinds at once; (answered, failed)."""
    infers = max(1, requests // 10)
    results = []

    def readyz():
        if shutil.which("ab"):
            results.append(ab(server.url("/readyz"), requests - infers, 3))
        else:
            results.append(python_client(server, "/readyz", requests - infers, 3))

    t = threading.Thread(target=readyz)
    t.start()
    if shutil.which("ab"):
        results.append(ab(server.url("/infer"), infers, 2, body_file))
    else:
        results.append(python_client(server, "/infer", infers, 2, INFER_BODY))
    t.join()
    return sum(r[0] for r in results), sum(r[1] for r in results)


def soak(ctx, args):
    """unscraped soak: RSS growth"""
    total = args.soak_requests or ctx.pick(quick=30000, default=200000, full=1000000)
    warmup, rounds = min(20000, total // 5), 10
    body_file = f"{ctx.dir('soak')}/infer.json"
    with open(body_file, "w") as f:
        f.write(INFER_BODY)
    server = Server(ctx)
    done, failed = mixed_round(server, warmup, body_file)
    baseline, samples = server.rss_mb(), []
    for _ in range(rounds):
        n, bad = mixed_round(server, (total - warmup) // rounds, body_file)
        done, failed = done + n, failed + bad
        samples.append(server.rss_mb())
    server.kill()
    growth = samples[-1] - baseline
    client = "ab -k" if shutil.which("ab") else "Python client (no ab)"
    figure = (f"{done:,} requests (1 in 10 /infer, {client}), {failed} failed; RSS after "
              f"{warmup:,} warm-up {baseline:.1f} MB → end {samples[-1]:.1f} MB "
              f"({growth:+.1f} MB, max {max(samples):.1f})")
    return report.check(2, "soak without scraping /metrics", figure,
                        growth <= 20 and failed == 0,
                        "RSS growth ≤ +20 MB, 0 failed")


def sequential_clients(server, clients, each, texts=lambda c, i: f"client {c} request {i}",
                       model=None):
    """`clients` threads, each `each` sequential /infer (of `model`, else the default); the
    statuses."""
    statuses, lock = [], threading.Lock()

    def run(c):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for i in range(each):
            body = {"inputs": texts(c, i), **({"model": model} if model else {})}
            conn.request("POST", "/infer", json.dumps(body), HEADERS)
            r = conn.getresponse()
            r.read()
            with lock:
                statuses.append(r.status)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def queue_admission(ctx, args):
    """queue admission: sequential clients against a small queue"""
    server = Server(ctx, ["--max-queue-requests", "8"])
    statuses = sequential_clients(server, 8, 60)
    server.kill()
    refused = sum(s == 503 for s in statuses)
    other = sum(s not in (200, 503) for s in statuses)
    figure = f"{report.count(refused, len(statuses), '→ 503')}, {other} other non-200"
    return report.check(8, "8 clients × 60 sequential /infer, --max-queue-requests 8", figure,
                        refused == 0 and other == 0,
                        "0 refused")


class Traffic:
    """Background /infer clients with random route keys, until stopped; tallies outcomes."""

    def __init__(self, server, clients=4):
        self.server = server
        self.stop = threading.Event()
        self.ok, self.failed, self.versions = 0, [], {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(c,)) for c in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, c):
        rng = random.Random(c)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        while not self.stop.is_set():
            body = {"inputs": f"traffic {rng.random()}"}
            conn.request("POST", "/infer", json.dumps(body),
                         {**HEADERS, "x-inferd-route-key": f"user-{rng.randrange(1000)}"})
            r = conn.getresponse()
            r.read()
            with self.lock:
                if r.status == 200:
                    self.ok += 1
                    v = r.getheader("x-model-version")
                    self.versions[v] = self.versions.get(v, 0) + 1
                else:
                    self.failed.append(r.status)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.ok + len(self.failed)


def lifecycle_under_load(ctx, args):
    """load/shadow/canary/promote/rollback under load"""
    manifests, state, tokens = two_version_manifest(ctx), ctx.dir("state"), ctx.admin_token_file()
    server = lifecycle_server(ctx, manifests, state, tokens, ["--shadow-min-samples", "16"])
    pause = ctx.pick(quick=1.0, default=3.0)
    traffic = Traffic(server)
    steps = [("/admin/load", {"model": "minilm@v2"}),
             ("/admin/shadow", {"model": "minilm@v2", "sample_rate": 0.5}),
             ("/admin/canary", {"model": "minilm@v2", "weight": 0.3}),
             ("/admin/promote", {"model": "minilm@v2"}),
             ("/admin/rollback", {"model": "minilm"})]
    try:
        for path, body in steps:
            time.sleep(pause)
            admin_ok(server, path, body)
        time.sleep(pause)
    finally:
        total = traffic.finish()
    promoted = routes(server)["promoted"]
    server.kill()
    served = ", ".join(f"{v} {n}" for v, n in sorted(traffic.versions.items()))
    figure = (f"{report.count(len(traffic.failed), total, 'requests failed')} through load → "
              f"shadow → canary 0.3 → promote → rollback (served: {served}; promoted after: "
              f"{promoted})")
    return report.check(13, "lifecycle under 4-client /infer load", figure,
                        not traffic.failed and promoted == "v1" and len(traffic.versions) == 2,
                        "0 failed, both versions served, v1 promoted after rollback")


def panic_isolation(ctx, args):
    """per-batch panic isolation (admin load faults.panic_on)"""
    manifests, state, tokens = two_version_manifest(ctx), ctx.dir("state"), ctx.admin_token_file()
    server = lifecycle_server(ctx, manifests, state, tokens)
    admin_ok(server, "/admin/load", {"model": "minilm@v2", "faults": {"panic_on": "boom"}})
    traffic = Traffic(server, clients=2)  # the promoted v1, alongside the panics
    panics = ctx.pick(quick=10, default=40)
    boom = sequential_clients(server, 1, panics, lambda c, i: "boom", "minilm@v2")
    after = sequential_clients(server, 2, panics, lambda c, i: f"fine {c} {i}", "minilm@v2")
    total = traffic.finish()
    boom_v1 = sequential_clients(server, 1, 1, lambda c, i: "boom", "minilm@v1")
    alive = server.proc.poll() is None
    server.kill()
    figure = (f"v2: {sum(s == 500 for s in boom)} of {panics} 'boom' batches → 500, then "
              f"{sum(s == 200 for s in after)} of {len(after)} other texts → 200; v1 'boom' → "
              f"{boom_v1[0]}; promoted v1 "
              f"{report.count(len(traffic.failed), total, 'failed')} meanwhile; process "
              f"{'alive' if alive else 'DEAD'}")
    return report.check(14, "panic in a forward batch (faults.panic_on)", figure,
                        all(s == 500 for s in boom) and all(s == 200 for s in after)
                        and not traffic.failed and alive and boom_v1 == [200],
                        "boom 500, other texts 200, v1 unaffected, process alive")
