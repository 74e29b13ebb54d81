"""Owns the durability rows: SIGKILL during item writes (3), a full disk under writes (4), a
flipped byte in the middle of the write-ahead log (5) and a torn audit log line plus replay of
the rollback history (6). Every row counts acknowledged writes against what a restart shows."""

import glob
import hashlib
import os
import random
import shutil
import struct
import threading

import requests

from . import report
from .rows_input import build_index
from .server import API_KEY, Server, mount_tmpfs

AUTH = {"Authorization": f"Bearer {API_KEY}"}


class Items:
    """Item writes to one index and what they must look like after a restart:
    id → n (acknowledged with metadata n) or None (refused: must be absent)."""

    def __init__(self):
        self.expected = {}
        self.lock = threading.Lock()

    def put(self, server, item_id, n):
        """PUT /items/{id}; the status (None when the connection broke)."""
        body = {"text": f"item {item_id}", "metadata": {"n": n, "pad": "x" * 300}}
        try:
            r = requests.put(server.url(f"/items/{item_id}"), json=body, headers=AUTH,
                             timeout=30)
        except requests.RequestException:
            return None
        with self.lock:
            if r.status_code in (200, 201):
                self.expected[item_id] = n
            elif r.status_code == 503 and r.json().get("code") == "storage_unavailable":
                self.expected.setdefault(item_id, None)
        return r.status_code

    def put_all(self, server, prefix, count):
        codes = [self.put(server, f"{prefix}-{i}", i) for i in range(count)]
        if any(c not in (200, 201) for c in codes):
            raise RuntimeError(f"writes {prefix}-* refused on a disk with room: {codes}")

    def lost_and_applied(self, server):
        """(acknowledged writes missing, refused writes present) on `server`."""
        lost = applied = 0
        for item_id, n in self.expected.items():
            r = requests.get(server.url(f"/items/{item_id}"), headers=AUTH, timeout=30)
            if n is None:
                applied += r.status_code != 404
            elif r.status_code != 200 or r.json()["metadata"]["n"] != n:
                lost += 1
        return lost, applied

    @property
    def acknowledged(self):
        return sum(n is not None for n in self.expected.values())

    @property
    def refused(self):
        return sum(n is None for n in self.expected.values())


def index_args(ctx, index, keys):
    return ["--index", f"catalog={index}", "--api-key-file", keys, "--drain-delay", "0s"]


def writer(server, items, prefix, stop):
    i = 0
    while not stop.is_set():
        if items.put(server, f"{prefix}-{i}", i) is None:
            return
        i += 1


def kill_during_writes(ctx, args):
    """kill -9 during item writes"""
    kills = ctx.pick(quick=3, default=10)
    index, keys, items = build_index(ctx), ctx.key_file(), Items()
    rng = random.Random(3)
    for k in range(kills):
        server = Server(ctx, index_args(ctx, index, keys))
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(server, items, f"k{k}w{w}", stop))
                   for w in range(2)]
        for t in threads:
            t.start()
        stop.wait(rng.uniform(0.5, 1.5))
        server.kill()
        stop.set()
        for t in threads:
            t.join()
    server = Server(ctx, index_args(ctx, index, keys))
    lost, _ = items.lost_and_applied(server)
    server.kill()
    figure = (f"{report.count(lost, items.acknowledged, 'acknowledged lost')} after "
              f"{kills} SIGKILLs mid-stream (2 writers)")
    return report.check(3, "kill -9 during PUT /items", figure,
                        lost == 0 and items.acknowledged > 0,
                        "0 acknowledged lost")


def fill(path):
    """Fills the filesystem of `path` to the last byte with one file; returns it."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        for chunk in (64 << 10, 4 << 10, 64, 1):
            try:
                while True:
                    f.write(b"\xab" * chunk)
            except OSError:
                pass
    return filler


def fill_until_refused(server, items, limit=200):
    """Writes until the full disk refuses one; how many were acknowledged on it first."""
    for i in range(limit):
        if items.put(server, f"full-{i}", i) == 503:
            return i
    raise RuntimeError(f"a full disk refused none of {limit} writes")


def disk_full(ctx, args):
    """disk full under item writes"""
    probe = "full 1 MB tmpfs under PUT /items, then kill -9 and SIGTERM"
    disk = os.path.join(ctx.dir("disk"), "mnt")
    why = mount_tmpfs(disk, "1m")
    if why:
        return report.skip(4, probe, f"cannot mount a tmpfs ({why}); run as root")
    index, keys, items = os.path.join(disk, "index"), ctx.key_file(), Items()
    shutil.copytree(build_index(ctx), index)
    server = Server(ctx, index_args(ctx, index, keys))
    items.put_all(server, "before", 5)
    filler = fill(disk)
    accepted_full = fill_until_refused(server, items)
    for i in range(5):  # a few more on the full disk: each must be refused or durable
        items.put(server, f"refused-{i}", i)
    live_lost, live_applied = items.lost_and_applied(server)
    os.remove(filler)
    items.put_all(server, "after", 5)
    server.kill()
    server = Server(ctx, index_args(ctx, index, keys))
    killed_lost, killed_applied = items.lost_and_applied(server)
    items.put_all(server, "restarted", 3)
    code = server.stop()
    server = Server(ctx, index_args(ctx, index, keys))
    term_lost, term_applied = items.lost_and_applied(server)
    server.kill()
    lost = max(live_lost, killed_lost, term_lost)
    applied = max(live_applied, killed_applied, term_applied)
    figure = (f"refused 503 storage_unavailable after {accepted_full} more on the full disk; "
              f"{report.count(lost, items.acknowledged, 'acknowledged lost')}, "
              f"{applied} of {items.refused} refused applied (live, after kill -9, after "
              f"SIGTERM: exit {code})")
    return report.check(4, probe, figure, lost == 0 and applied == 0 and code == 0,
                        "0 acknowledged lost, 0 refused applied, clean exit")


def record_starts(data):
    """Byte offsets where each `[len u32][crc u32][payload]` WAL record starts."""
    starts, at = [], 0
    while at + 8 <= len(data):
        starts.append(at)
        at += 8 + struct.unpack_from("<I", data, at)[0]
    return starts


def wal_flipped_byte(ctx, args):
    """flipped byte in the middle of the WAL"""
    index, keys, items = build_index(ctx), ctx.key_file(), Items()
    server = Server(ctx, index_args(ctx, index, keys))
    items.put_all(server, "w", 8)
    server.stop()
    (wal,) = glob.glob(os.path.join(index, "wal-*.log"))
    data = bytearray(open(wal, "rb").read())
    damaged = record_starts(data)[3]
    data[damaged + 20] ^= 0x01
    open(wal, "wb").write(data)
    refused = Server(ctx, index_args(ctx, index, keys), ready=False)
    code = refused.wait_exit(60)
    if code is None:
        refused.kill()
    logs = refused.logs()
    named = os.path.basename(wal) in logs and f"byte {damaged}" in logs
    untouched = open(wal, "rb").read() == data
    data[damaged + 20] ^= 0x01
    open(wal, "wb").write(data)
    server = Server(ctx, index_args(ctx, index, keys))
    lost, _ = items.lost_and_applied(server)
    server.kill()
    figure = (f"start {'refused (exit %s)' % code if code else 'NOT refused'}, "
              f"{'names' if named else 'does NOT name'} {os.path.basename(wal)} and byte "
              f"{damaged}, log {'left as found' if untouched else 'CHANGED'}; after repair "
              f"{report.count(lost, 8, 'lost')}")
    return report.check(5, "flipped byte mid-WAL", figure,
                        code not in (None, 0) and named and untouched and lost == 0,
                        "start refused naming file and byte, log unchanged, 0 lost after repair")


def two_version_manifest(ctx):
    """A manifest dir with `minilm.toml`: versions v1 and v2, both the campaign's model."""
    work = ctx.dir("manifest")
    sha = hashlib.sha256(open(os.path.join(ctx.model, "model.safetensors"), "rb").read())
    text = ('name = "minilm"\nversion = "v1"\n[model]\ndimensions = 384\nmax_seq_length = 256\n'
            'pooling = "mean"\nnormalize = true\n')
    for label in ("v1", "v2"):
        os.symlink(ctx.model, os.path.join(work, label))
        text += (f'\n[[versions]]\nversion = "{label}"\nlocal_dir = "{label}"\n'
                 f'[versions.sha256]\n"model.safetensors" = "{sha.hexdigest()}"\n')
    with open(os.path.join(work, "minilm.toml"), "w") as f:
        f.write(text)
    return work


def lifecycle_server(ctx, manifests, state, tokens, extra=()):
    return Server(ctx, ["--manifest-dir", manifests, "--state-dir", state,
                        "--admin-token-file", tokens, *extra],
                  model=os.path.join(manifests, "minilm.toml"))


def routes(server):
    """What routing the admin status shows: versions and roles, canary, shadow, history."""
    code, body = server.admin("/admin/status")
    s = body["models"][0]
    return {"versions": sorted((v["version"], v["role"]) for v in s["versions"]),
            "promoted": s["promoted"], "canary": s.get("canary"), "shadow": s.get("shadow"),
            "history": s.get("history")}


def admin_ok(server, path, body):
    code, answer = server.admin(path, body)
    if code != 200:
        raise RuntimeError(f"{path} {body}: {code} {answer}")


def audit_torn_line(ctx, args):
    """torn last line of the audit log"""
    manifests, state, tokens = two_version_manifest(ctx), ctx.dir("state"), ctx.admin_token_file()
    server = lifecycle_server(ctx, manifests, state, tokens)
    admin_ok(server, "/admin/load", {"model": "minilm@v2"})
    server.kill()
    with open(os.path.join(state, "lifecycle.jsonl"), "ab") as f:
        f.write(b'{"ts":"2026-11-30T10:00:00.000Z","actor":"ops","act')
    server = lifecycle_server(ctx, manifests, state, tokens)
    admin_ok(server, "/admin/canary", {"model": "minilm@v2", "weight": 0.3})
    server.kill()
    server = lifecycle_server(ctx, manifests, state, tokens)
    canary = routes(server)["canary"] or {}
    survived = canary.get("version") == "v2" and canary.get("weight") == 0.3
    for version in ("v2", "v1", "v2"):
        admin_ok(server, "/admin/promote", {"model": f"minilm@{version}", "force": True})
    live = routes(server)
    server.kill()
    server = lifecycle_server(ctx, manifests, state, tokens)
    replayed = routes(server)
    server.kill()
    same = replayed == live
    figure = (f"canary after the torn line {'survived' if survived else 'LOST'} a kill -9; "
              f"after promote v2, v1, v2: replay {'==' if same else '!='} live "
              f"(history {replayed['history']}"
              f"{'' if same else f' vs live {live}'})")
    return report.check(6, "torn audit-log line, then replay vs live", figure, survived and same,
                        "the canary survives; replay == live")
