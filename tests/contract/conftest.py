"""Fixtures: one inferd server for the session, and /infer as the reference for every vector.

Set INFERD_URL to test a server that is already running (scripts/contract-test.sh does, with
the same --model-alias list as MODEL_ALIASES); otherwise one is spawned from INFERD_BIN
(default target/debug/inferd) on INFERD_MODEL (default models/all-MiniLM-L6-v2) on a free port.

tiktoken (LangChain's `OpenAIEmbeddings` tokenizes with it) runs offline: its cl100k_base file
is the copy the `tiktoken-rs` crate carries, put in TIKTOKEN_CACHE_DIR under the name tiktoken
gives it (the sha1 of its download URL) before anything imports tiktoken.
"""

import glob
import hashlib
import inspect
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import httpx
import numpy as np
import pytest

from batch_support import free_port, new_secret

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Library default model names (LangChain's is text-embedding-ada-002) and the hub id.
MODEL_ALIASES = "text-embedding-ada-002,text-embedding-3-small,sentence-transformers/all-MiniLM-L6-v2"


def _offline_tiktoken():
    """Points tiktoken at a cache holding cl100k_base from the cargo registry's tiktoken-rs."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    cargo = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(f"{cargo}/registry/src/*/tiktoken-rs-*/assets/cl100k_base.tiktoken"))
    if not found:
        raise RuntimeError("no cl100k_base.tiktoken under the cargo registry: build inferd first")
    import tiktoken_ext.openai_public as public  # the URL only; loading the encoding comes later

    url = re.search(r'"(\S+/cl100k_base\.tiktoken)"', inspect.getsource(public.cl100k_base)).group(1)
    cache = tempfile.mkdtemp(prefix="inferd-tiktoken-")
    shutil.copy(found[-1], os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache


_offline_tiktoken()


def _spawn():
    model = os.environ.get("INFERD_MODEL", str(ROOT / "models/all-MiniLM-L6-v2"))
    # The Batch API needs a state dir, and its webhook test a receiver and a secret.
    state = tempfile.mkdtemp(prefix="inferd-contract-")
    secret = pathlib.Path(state) / "webhook.secret"
    secret.write_text(os.environ.setdefault("INFERD_WEBHOOK_SECRET", new_secret()))
    port = os.environ.setdefault("INFERD_WEBHOOK_PORT", str(free_port()))
    batch = ["--state-dir", state, "--admin-listen", "127.0.0.1:0",
             "--webhook-url", f"http://127.0.0.1:{port}/hooks", "--webhook-secret-file", str(secret)]
    proc, addr = spawn_inferd(["--model", model, "--grpc-listen", "off", "--model-alias", MODEL_ALIASES, *batch])
    return proc, "http://" + addr


def spawn_inferd(args):
    """`inferd serve` on 127.0.0.1:0 with `args` (INFERD_BIN's binary); (process, host:port) once
    it logs its `listening` address."""
    binary = os.environ.get("INFERD_BIN", str(ROOT / "target/debug/inferd"))
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--log-format", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    for line in proc.stdout:
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "listening":
            return proc, fields["addr"]
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError("inferd did not report a listening address")


def _wait_ready(url):
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"inferd at {url} not ready after 120 s")


@pytest.fixture(scope="session")
def url():
    external = os.environ.get("INFERD_URL")
    if external:
        _wait_ready(external)
        yield external.rstrip("/")
        return
    proc, url = _spawn()
    try:
        _wait_ready(url)
        yield url
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def info(url):
    return httpx.get(url + "/info").json()


@pytest.fixture(scope="session")
def model(info):
    return info["model"]


@pytest.fixture(scope="session")
def infer(url):
    """The reference: /infer's vectors for `texts` as a float32 matrix."""

    def run(texts):
        r = httpx.post(url + "/infer", json={"inputs": list(texts)}, timeout=60)
        assert r.status_code == 200, r.text
        return np.asarray(r.json()["embeddings"], dtype=np.float32)

    return run


def assert_same(got, want):
    got = np.asarray(got, dtype=np.float32)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
