"""Owns the bad-input rows: fuzzed bodies and URLs against every route (1), an admin version
label with a control character (7), the `/tokenize` amplification burst (9) and API keys and
the rate limit (12)."""

import http.client
import json
import random
import subprocess
import threading
import time

import requests

from . import report
from .server import API_KEY, Server

FIELDS = ["inputs", "input", "text", "texts", "query", "model", "normalize", "truncate", "k",
          "item_id", "history", "filter", "exclude", "dimensions", "prompt_name", "weight",
          "sample_rate", "version", "force", "metadata", "encoding_format", "raw_scores",
          "return_text", "top_n", "documents", "parameters", "index", "ef_search", "limit"]
VALUES = ["hello", "", "all-MiniLM-L6-v2", "all-MiniLM-L6-v2@nope", "x" * 3000, "\u0000\n\t",
          "\ud7ff\U0001f600", 0, -1, 1, 7, 2 ** 31, 2 ** 64, 10 ** 30, -(10 ** 30), 1e308, -0.0,
          0.5, True, False, None, [], {}, ["hello", "world"], ["hello", True], [1, 2, 3],
          [[1, 2]], [""], {"a": 1}, {"section": ["s", 1]}, [{"id": "seed-1", "weight": -1}],
          {"inputs": {"inputs": {"inputs": []}}}]
PATH_VALUES = ["seed-1", "x", "%ff", "%", "%00", "a%2fb", "all-MiniLM-L6-v2", "catalog",
               "..", "y" * 300, "%e2%82"]
RAW_BODIES = [b"", b"{", b"[1,2", b'{"inputs":', b"null", b"42", b'"str"', b"[]",
              b'["hello", true]', b'{"inputs": "\xff\xfe"}', b"\xff\xfe\xfd", b"1e99999",
              b'{"inputs": "a", "inputs": 5}', b'{"k": 123456789012345678901234567890}',
              b'{"dimensions": 18446744073709551616}', b"[" * 5000 + b"]" * 5000,
              b'{"inputs": ["a"], "unknown": 1}', b"\x00" * 64, b"{}"]
EXTRA_URLS = [("GET", "/items/%ff"), ("GET", "/items/seed-1?index=a&index=b"),
              ("GET", "/items/%"), ("PUT", "/items/%ff"), ("DELETE", "/items/seed-1?index=")]
ADMIN_EXTRA = [("GET", "/admin/events?limit=abc"), ("GET", "/admin/events?limit=-1"),
               ("GET", "/admin/events?limit=1&limit=2"), ("DELETE", "/admin/status"),
               ("GET", "/admin/load"), ("PATCH", "/admin/promote"), ("GET", "/admin/%ff")]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def index_server(ctx, extra=()):
    """A server with a 3-item index `catalog`, API keys, an admin token and a state dir."""
    return Server(ctx, ["--index", f"catalog={build_index(ctx)}", "--api-key-file",
                        ctx.key_file(), "--admin-token-file", ctx.admin_token_file(),
                        "--state-dir", ctx.dir("state"), *extra])


def build_index(ctx, name="index"):
    """`inferd index build` of a 3-item catalog into a fresh directory; returns it."""
    work = ctx.dir(name)
    catalog = f"{work}/catalog.jsonl"
    with open(catalog, "w") as f:
        for i in range(3):
            item = {"id": f"seed-{i}", "text": f"seed item {i}", "section": "s"}
            f.write(json.dumps(item) + "\n")
    out = f"{work}/index"
    subprocess.run([ctx.bin, "index", "build", "--model", ctx.model, "--catalog", catalog,
                    "--out", out], check=True, capture_output=True)
    return out


def routes(url, headers=None):
    """(method, path template) of every operation in an OpenAPI document."""
    doc = requests.get(url, headers=headers, timeout=30).json()
    return [(m.upper(), path) for path, ops in doc["paths"].items() for m in ops
            if m.upper() in METHODS]


def fuzz_path(rng, template):
    parts = template.split("/")
    return "/".join(rng.choice(PATH_VALUES) if p.startswith("{") else p for p in parts)


def fuzz_body(rng):
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(RAW_BODIES)
    if kind < 0.4:
        return json.dumps([rng.choice(VALUES) for _ in range(rng.randint(1, 3))]).encode()
    body = {f: rng.choice(VALUES) for f in rng.sample(FIELDS, rng.randint(1, 4))}
    return json.dumps(body).encode()


class Prober:
    """Sends requests over one keep-alive connection and tallies the answers."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None
        self.sent = self.server_errors = self.non_json = self.dropped = 0
        self.examples = []

    def send(self, method, path, body, headers, route):
        self.sent += 1
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                self.tally(method, route, r.status, r.read())
                if r.getheader("connection", "").lower() == "close":
                    self.reset()
                return
            except (http.client.HTTPException, OSError):
                self.reset()
        self.dropped += 1

    def reset(self):
        if self.conn:
            self.conn.close()
        self.conn = None

    def tally(self, method, route, status, data):
        if status >= 500:
            self.server_errors += 1
            self.note(f"{status} {method} {route}", "")
        if status >= 400 and not is_json_error(data):
            self.non_json += 1
            self.note(f"non-JSON {status} {method} {route}",
                      f": {data[:60].decode('utf-8', 'replace')!r}")

    def note(self, what, detail):
        """Keeps the first answer of up to 3 distinct kinds of failure."""
        if len(self.examples) < 3 and not any(e.startswith(what) for e in self.examples):
            self.examples.append(what + detail)


def is_json_error(data):
    """A JSON object with an `error` or `message` (inferd's `{"error", "code"}`, or a dialect's
    own shape: KServe's `{"error"}`, OpenAI's `{"error": {...}}`, Cohere's `{"message"}`)."""
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return isinstance(body, dict) and ("error" in body or "message" in body)


def fuzz(ctx, args):
    """fuzzed bodies and URLs against every route"""
    total = args.fuzz_bodies or ctx.pick(quick=1000, default=5000, full=15500)
    server = index_server(ctx)
    admin_auth = {"Authorization": "Bearer chaos-admin-token"}
    serving = routes(server.url("/openapi.json"))
    admin = routes(server.admin_url("/admin/openapi.json"), admin_auth)
    rng = random.Random(22)
    api, adm = (Prober(*a.rsplit(":", 1)) for a in (server.addr, server.admin_url()[7:]))
    for i in range(total):
        on_admin = i % 4 == 3
        prober, table, extra = (adm, admin, ADMIN_EXTRA) if on_admin else (api, serving, EXTRA_URLS)
        headers = dict(admin_auth) if on_admin else {"Authorization": f"Bearer {API_KEY}"}
        if rng.random() < 0.9:
            headers["Content-Type"] = "application/json"
        if rng.random() < 0.1:
            method, path = rng.choice(extra)
            template = path
        else:
            method, template = rng.choice(table)
            method = method if rng.random() < 0.85 else rng.choice(METHODS)
            path = fuzz_path(rng, template)
        prober.send(method, path, fuzz_body(rng) if method != "GET" else None, headers, template)
    sent = api.sent + adm.sent
    errors, non_json = api.server_errors + adm.server_errors, api.non_json + adm.non_json
    dropped = api.dropped + adm.dropped
    figure = (f"{report.count(errors, sent, '→ 5xx')}, {non_json:,} non-JSON error bodies, "
              f"{dropped:,} unanswered ({len(serving)} serving + {len(admin)} admin operations)")
    examples = api.examples + adm.examples
    if examples:
        figure += "; e.g. " + "; ".join(examples[:3])
    server.kill()
    return report.check(1, "fuzzed bodies/URLs on every route", figure,
                        errors == 0 and non_json == 0 and dropped == 0,
                        "0 5xx, 0 non-JSON error bodies, 0 unanswered")


def control_char_label(ctx, args):
    """admin version label with a control character"""
    server = Server(ctx, ["--admin-token-file", ctx.admin_token_file(),
                          "--state-dir", ctx.dir("state")])
    results = []
    for label in ("v\n2", "v\u00002", "v 2\r"):
        code, body = server.admin("/admin/load", {"model": "all-MiniLM-L6-v2",
                                                  "version": label, "source": ctx.model})
        results.append((label, code, (body or {}).get("code")))
    _, events = server.admin("/admin/events?limit=100")
    leaked = "v\n2" in json.dumps(events)
    server.kill()
    figure = ", ".join(f"{l!r} → {c} {k}" for l, c, k in results)
    figure += "; recorded in audit log" if leaked else "; none recorded"
    return report.check(7, "admin load with a control char in the version label", figure,
                        all(400 <= c < 500 for _, c, _ in results) and not leaked,
                        "every label 4xx, none recorded")


def tokenize_amplification(ctx, args):
    """/tokenize amplification: ~2 MB bodies"""
    server = Server(ctx)
    text = ("memory " * 300000)[:2_000_000]
    body = json.dumps({"inputs": text})
    answers, lock = [], threading.Lock()

    def one():
        r = requests.post(server.url("/tokenize"), data=body, timeout=300,
                          headers={"Content-Type": "application/json"})
        with lock:
            answers.append((r.status_code, (report_code(r)), len(r.content)))

    before, peak = server.rss_mb(), 0.0
    workers = [threading.Thread(target=one) for _ in range(8)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        peak = max(peak, server.rss_mb())
        time.sleep(0.05)
    time.sleep(ctx.pick(quick=5, default=10))
    after = server.rss_mb()
    server.kill()
    refused = sum(s == 413 and c == "response_too_large" for s, c, _ in answers)
    largest = max(n for _, _, n in answers)
    figure = (f"{refused} of 8 → 413 response_too_large (largest answer {largest:,} B); "
              f"RSS {before:.0f} / peak {peak:.0f} / {after:.0f} MB after")
    return report.check(9, "8 concurrent 2 MB /tokenize bodies", figure,
                        refused == 8 and after - before < 50,
                        "8 × 413 response_too_large, RSS after within +50 MB of before")


def report_code(response):
    try:
        return response.json().get("code")
    except ValueError:
        return None


def auth(ctx, args):
    """API keys and the per-key rate limit"""
    server = Server(ctx, ["--api-key-file", ctx.key_file(), "--rate-limit", "5",
                          "--rate-limit-burst", "5"])
    body = {"inputs": "hello"}

    def infer(key):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(server.url("/infer"), json=body, headers=headers, timeout=60)

    none, wrong, right = infer(None), infer("not-the-key"), infer(API_KEY)
    burst = [infer(API_KEY) for _ in range(20)]
    limited = [r for r in burst if r.status_code == 429]
    retry_after = all(r.headers.get("retry-after") and report_code(r) == "rate_limited"
                      for r in limited)
    server.kill()
    figure = (f"no key → {none.status_code}, wrong key → {wrong.status_code}, key → "
              f"{right.status_code}; {len(limited)} of 20 burst requests → 429"
              f"{' with Retry-After' if limited and retry_after else ''} (--rate-limit 5)")
    ok = (none.status_code == 401 and wrong.status_code == 401 and right.status_code == 200
          and limited and retry_after)
    return report.check(12, "API keys and --rate-limit", figure, ok,
                        "401, 401, 200, and 429s with Retry-After")
