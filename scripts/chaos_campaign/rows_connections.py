"""Owns the connection rows: slowloris, an endless chunked body, idle keep-alives and 20,000
idle sockets against `--max-connections` (10), the SIGTERM lame-duck drain and a shutdown-grace
overrun (11), and TLS / mutual TLS with certificates made by `trustme` (15)."""

import http.client
import json
import multiprocessing
import resource
import select
import socket
import struct
import threading
import time

import requests
import trustme

from . import report
from .rows_durability import admin_ok, lifecycle_server, two_version_manifest
from .server import Server

TIMEOUT_S = 1.0  # the short header/body/idle timeouts row 10 runs with
SLACK_S = 2.0  # how much later than its timeout a connection may be closed


def closed_after(sock, feed=None, every=0.1, limit=15.0):
    """Seconds until the server closes `sock` (sending `feed` every `every` s meanwhile) and
    what it sent; (None, data) when still open after `limit`."""
    started, data = time.time(), b""
    sock.setblocking(False)
    while time.time() - started < limit:
        if feed:
            try:
                sock.send(feed)
            except OSError:
                return time.time() - started, data
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return time.time() - started, data
            if not chunk:
                return time.time() - started, data
            data += chunk
    return None, data


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock


def slowloris(port):
    sock = connect(port)
    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
    seconds, _ = closed_after(sock, feed=b"X-Slow: 1\r\n", every=0.3)
    sock.close()
    return seconds


def endless_body(port):
    sock = connect(port)
    sock.sendall(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    seconds, data = closed_after(sock, feed=b"1\r\n \r\n")
    sock.close()
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "no answer"
    return seconds, status


def idle_keepalive(port):
    sock = connect(port)
    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.recv(65536)  # the answer (blocking, the connect timeout): idle from here
    seconds, _ = closed_after(sock)
    sock.close()
    return seconds


def within(seconds):
    return seconds is not None and seconds <= TIMEOUT_S + SLACK_S


def fmt(seconds):
    return "open after 15 s" if seconds is None else f"closed after {seconds:.1f} s"


def hold_idle_sockets(port, count, pipe):
    """In a helper process: `count` non-blocking connects that never send a byte, held until
    the campaign says so (or goes away)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
    except OSError:  # out of descriptors or ports: hold what is open, the figure says how many
        socks.pop()
    pipe.send(len(socks))
    try:
        pipe.recv()
    except EOFError:
        pass


class IdleSockets:
    """`count` idle sockets, spread over helper processes so that none needs more than 10,000
    descriptors or its RLIMIT_NOFILE (20,000 on the development machine, where it cannot be
    raised)."""

    def __init__(self, port, count):
        self.helpers, self.opened = [], 0
        per_process = min(10000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64)
        for start in range(0, count, per_process):
            ours, theirs = multiprocessing.Pipe()
            proc = multiprocessing.Process(target=hold_idle_sockets, daemon=True, args=(
                port, min(per_process, count - start), theirs))
            proc.start()
            self.helpers.append((proc, ours))
        for _, pipe in self.helpers:
            self.opened += pipe.recv()

    def close(self):
        for proc, pipe in self.helpers:
            pipe.send("close")
            proc.join(30)


def fresh_request(port, method, path, body=None):
    """One request on a new connection; the status, or the error's name."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as err:
        return type(err).__name__
    finally:
        conn.close()


def served_within(port, seconds):
    """Seconds until an /infer on a fresh connection answers 200, retried; None if never."""
    started = time.time()
    while time.time() - started < seconds:
        if fresh_request(port, "POST", "/infer", json.dumps({"inputs": "hello"})) == 200:
            return time.time() - started
        time.sleep(0.5)
    return None


def idle_flood(ctx, count, limit):
    server = Server(ctx, ["--max-connections", str(limit)])
    idle = IdleSockets(server.port, count)
    time.sleep(2)
    readyz = fresh_request(server.port, "GET", "/readyz")
    retry = ctx.pick(quick=15, default=30)
    infer_after = served_within(server.port, retry)
    idle.close()
    time.sleep(1)
    recovered = fresh_request(server.port, "GET", "/readyz")
    server.kill()
    served = (f"served after {infer_after:.1f} s" if infer_after is not None
              else f"not served in {retry} s")
    figure = (f"{idle.opened:,} idle sockets vs --max-connections {limit}: fresh /readyz → "
              f"{readyz}, /infer {served}, /readyz after closing them → {recovered}")
    return figure, readyz == 200 and infer_after is not None and recovered == 200


def connections(ctx, args):
    """slow, endless and idle connections, and 20,000 idle sockets"""
    t = f"{TIMEOUT_S:g}s"
    server = Server(ctx, ["--header-read-timeout", t, "--body-read-timeout", t,
                          "--idle-timeout", t])
    loris, (body_s, body_status), idle = (slowloris(server.port), endless_body(server.port),
                                          idle_keepalive(server.port))
    server.kill()
    flood, flood_ok = idle_flood(ctx, 20000, 256)
    figure = (f"timeouts {t}: slowloris {fmt(loris)}; endless chunked body → {body_status}, "
              f"{fmt(body_s)}; idle keep-alive {fmt(idle)}; {flood}")
    ok = within(loris) and within(body_s) and body_status == "408" and within(idle) and flood_ok
    return report.check(10, "slowloris, endless body, idle keep-alive, 20k idle sockets",
                        figure, ok,
                        "each closed within timeout + 2 s, body → 408; fresh /readyz 200, "
                        "/infer served, /readyz 200 after")


def probe_during_drain(server, drain_s):
    """After SIGTERM: (/readyz answers seen, /infer statuses) until the process exits."""
    readyz, infers = [], []
    started = time.time()
    server.sigterm()
    while server.proc.poll() is None and time.time() - started < drain_s + 30:
        try:
            r = requests.get(server.url("/readyz"), timeout=2)
            readyz.append((time.time() - started, r.status_code, r.json().get("code")))
            if time.time() - started < drain_s - 0.3:
                infers.append(requests.post(server.url("/infer"), json={"inputs": "drain"},
                                            timeout=10).status_code)
        except requests.RequestException:
            break
        time.sleep(0.1)
    return readyz, infers


def grace_overrun(ctx):
    """SIGTERM with in-flight work longer than --shutdown-grace; (exit status, seconds)."""
    manifests, state, tokens = two_version_manifest(ctx), ctx.dir("state"), ctx.admin_token_file()
    server = lifecycle_server(ctx, manifests, state, tokens,
                              ["--shutdown-grace", "1s", "--drain-delay", "0s"])
    admin_ok(server, "/admin/load", {"model": "minilm@v2", "faults": {"batch_delay_ms": 5000}})

    def slow_request():
        try:
            requests.post(server.url("/infer"), json={"inputs": "slow", "model": "minilm@v2"},
                          timeout=30)
        except requests.RequestException:
            pass

    threading.Thread(target=slow_request, daemon=True).start()
    time.sleep(0.5)
    started = time.time()
    code = server.stop(timeout=30)
    return code, time.time() - started


def drain(ctx, args):
    """lame-duck drain on SIGTERM, and a grace overrun"""
    drain_s = 2.0
    server = Server(ctx, ["--drain-delay", f"{drain_s:g}s", "--shutdown-grace", "5s"])
    readyz, infers = probe_during_drain(server, drain_s)
    code = server.wait_exit(30)
    if code is None:
        server.kill()
    draining = [t for t, status, c in readyz if status == 503 and c == "shutting_down"]
    first = draining[0] if draining else None
    later = [(status, c) for t, status, c in readyz if first is not None and t >= first]
    span = draining[-1] if draining else 0.0
    overrun_code, overrun_s = grace_overrun(ctx)
    figure = (f"/readyz 503 shutting_down from {first if first is None else round(first, 1)} s "
              f"to {span:.1f} s after SIGTERM (--drain-delay {drain_s:g}s; "
              f"{len(later) - len(draining)} other answers after the first), /infer meanwhile "
              f"{sum(s == 200 for s in infers)} of {len(infers)} → 200, exit {code}; "
              f"5 s batch vs --shutdown-grace 1s: exit {overrun_code} after {overrun_s:.1f} s")
    ok = (first is not None and first < 0.5 and len(later) == len(draining)
          and span >= drain_s - 0.5 and infers and all(s == 200 for s in infers)
          and code == 0 and overrun_code not in (0, None))
    return report.check(11, "SIGTERM lame-duck drain, grace overrun", figure, ok,
                        "/readyz 503 through the drain, /infer 200 meanwhile, exit 0; "
                        "overrun exits non-zero")


def tls_files(ctx):
    """CA, server certificate for 127.0.0.1 and a client certificate; their paths."""
    work, ca = ctx.dir("tls"), trustme.CA()
    server_cert, client_cert = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("client")
    paths = {name: f"{work}/{name}.pem" for name in ("ca", "cert", "key", "client")}
    ca.cert_pem.write_to_path(paths["ca"])
    server_cert.cert_chain_pems[0].write_to_path(paths["cert"])
    server_cert.private_key_pem.write_to_path(paths["key"])
    client_cert.private_key_and_cert_chain_pem.write_to_path(paths["client"])
    return paths


def attempt(url, **kw):
    """The status of a GET, or the error's name."""
    try:
        return requests.get(url, timeout=5, **kw).status_code
    except requests.RequestException as err:
        return type(err).__name__


def tls(ctx, args):
    """TLS and mutual TLS"""
    p = tls_files(ctx)
    tls_args = ["--tls-cert", p["cert"], "--tls-key", p["key"]]
    server = Server(ctx, tls_args, ready=False, scheme="https")
    server.wait_ready(verify=p["ca"])
    plain = attempt(f"http://{server.addr}/readyz")
    https = attempt(server.url("/readyz"), verify=p["ca"])
    server.kill()
    server = Server(ctx, tls_args + ["--tls-client-ca", p["ca"]], ready=False, scheme="https")
    server.wait_ready(verify=p["ca"], cert=p["client"])
    no_cert = attempt(server.url("/readyz"), verify=p["ca"])
    with_cert = attempt(server.url("/readyz"), verify=p["ca"], cert=p["client"])
    server.kill()
    figure = (f"plain HTTP to TLS → {plain}; HTTPS → {https}; mTLS without client cert → "
              f"{no_cert}; with one → {with_cert}")
    ok = plain != 200 and https == 200 and no_cert != 200 and with_cert == 200
    return report.check(15, "TLS and mutual TLS", figure, ok,
                        "plain HTTP fails, HTTPS 200, no client cert fails, with one 200")
