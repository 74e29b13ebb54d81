"""Owns the inferd processes and scratch space of the campaign.

`Server` spawns `inferd serve` on 127.0.0.1 port 0 (admin listener on port 0, gRPC off unless
asked), learns its addresses from the `listening` / `admin listening` JSON log lines, and is
killed when the campaign ends (`kill_all`, also on Ctrl-C). `Context` holds the options every
row reads (binary, model, scale) and a scratch directory removed at exit.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import requests

_children = []  # every process the campaign started, killed by kill_all
_mounts = []  # tmpfs mounts, unmounted by kill_all

ADMIN_TOKEN = "chaos-admin-token"
API_KEY = "chaos-api-key"


def kill_all():
    """Kills every child still running and unmounts every tmpfs; safe to call twice."""
    for proc in _children:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for path in _mounts:
        subprocess.run(["umount", "-l", path], capture_output=True)
    _mounts.clear()


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` on `path`; returns None or the reason it could not."""
    os.makedirs(path, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return out.stderr.strip() or f"mount exited {out.returncode}"
    _mounts.append(path)
    return None


def track(proc):
    """Registers a child process (any, not only servers) for kill_all."""
    _children.append(proc)
    return proc


class Context:
    """Options shared by every row, and the campaign's scratch directory."""

    def __init__(self, binary, model, scale):
        self.bin = os.path.abspath(binary)
        self.model = os.path.abspath(model)
        self.scale = scale  # "quick", "default" or "full"
        self.tmp = tempfile.mkdtemp(prefix="inferd-chaos-")

    def pick(self, quick, default, full=None):
        """The count for this scale."""
        return {"quick": quick, "default": default, "full": full or default}[self.scale]

    def dir(self, name):
        """A fresh directory under the scratch dir."""
        return tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)

    def key_file(self, name="keys", text=f"chaos:{API_KEY}\n"):
        path = os.path.join(self.dir(name), "keys")
        with open(path, "w") as f:
            f.write(text)
        return path

    def admin_token_file(self):
        return self.key_file("tokens", f"ops:{ADMIN_TOKEN}\n")

    def cleanup(self):
        kill_all()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Server:
    """One `inferd serve` child; `args` come after the campaign's own flags."""

    def __init__(self, ctx, args=(), model=None, ready=True, scheme="http"):
        cmd = [ctx.bin, "serve", "--model", model or ctx.model, "--listen", "127.0.0.1:0",
               "--grpc-listen", "off", "--admin-listen", "127.0.0.1:0", "--log-format", "json",
               *args]
        self.proc = track(subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, errors="replace", start_new_session=True))
        self.scheme = scheme
        self.lines = []
        self.addrs = {}
        self._seen = threading.Condition()
        threading.Thread(target=self._read_logs, daemon=True).start()
        if ready:
            self.wait_ready()

    def _read_logs(self):
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line)
                try:
                    fields = json.loads(line).get("fields", {})
                except ValueError:
                    fields = {}
                if fields.get("message") in ("listening", "admin listening"):
                    self.addrs.setdefault(fields["message"], fields["addr"])
                self._seen.notify_all()
        with self._seen:
            self.addrs["exited"] = True
            self._seen.notify_all()

    def _addr(self, message, timeout=60):
        with self._seen:
            self._seen.wait_for(lambda: message in self.addrs or "exited" in self.addrs, timeout)
            if message not in self.addrs:
                raise RuntimeError(f"inferd logged no `{message}` line:\n{self.logs()[-3000:]}")
            return self.addrs[message]

    @property
    def addr(self):
        return self._addr("listening")

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    def url(self, path=""):
        return f"{self.scheme}://{self.addr}{path}"

    def admin_url(self, path=""):
        return f"{self.scheme}://{self._addr('admin listening')}{path}"

    def wait_ready(self, timeout=120, **kw):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(self.url("/readyz"), timeout=2, **kw).status_code == 200:
                    return
            except (requests.RequestException, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"inferd not ready:\n{self.logs()[-3000:]}")

    def admin(self, path, body=None):
        """An admin API call (POST with a body, else GET) with the campaign's token; (status,
        JSON body or None)."""
        r = requests.request("POST" if body is not None else "GET",
                             self.admin_url(path), json=body, timeout=120,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        return r.status_code, json_or_none(r)

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def logs(self):
        with self._seen:
            return "".join(self.lines)

    def kill(self):
        """SIGKILL, and waits for it."""
        self.proc.kill()
        self.proc.wait()

    def sigterm(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout):
        """The exit status, or None if still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=60):
        """SIGTERM, then the exit status (SIGKILL and None after `timeout`)."""
        self.sigterm()
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
        return code


def json_or_none(response):
    try:
        return response.json()
    except ValueError:
        return None
