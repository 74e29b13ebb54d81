"""Helpers of the Batch API contract tests: request lines, a webhook receiver, polling."""

import base64
import json
import os
import pathlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def reference(n=None):
    """(text, sentence-transformers vector) pairs of tests/fixtures/reference.jsonl."""
    rows = [json.loads(l) for l in (ROOT / "tests/fixtures/reference.jsonl").read_text().splitlines()]
    rows = rows[:n] if n else rows
    return [r["text"] for r in rows], np.asarray([r["embedding"] for r in rows], dtype=np.float32)


def request_lines(model, texts, prefix="ref"):
    lines = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": model, "input": text, "encoding_format": "float"},
        }
        for i, text in enumerate(texts)
    ]
    return "".join(json.dumps(l) + "\n" for l in lines).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


class Receiver:
    """Records every webhook delivery (headers and raw body) and answers 200."""

    def __init__(self, port):
        self.deliveries = []
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    owner.deliveries.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_batch(self, batch_id, timeout=60):
        """Deliveries whose event names `batch_id`; waits for at least one."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [(h, b) for h, b in list(self.deliveries) if json.loads(b)["data"]["id"] == batch_id]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no webhook for {batch_id}: {self.deliveries!r}")

    def close(self):
        self.server.shutdown()


def wait_batch(oai, batch_id, until=lambda b: b.status in TERMINAL, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = oai.batches.retrieve(batch_id)
        if until(b):
            return b
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} stuck: {oai.batches.retrieve(batch_id)}")


def done(b):
    return b.request_counts.completed + b.request_counts.failed


def by_custom_id(oai, *file_ids):
    """Output/error lines keyed by custom_id; fails on a custom_id answered twice."""
    answers = {}
    for file_id in file_ids:
        if file_id is None:
            continue
        for line in oai.files.content(file_id).text.splitlines():
            row = json.loads(line)
            assert row["custom_id"] not in answers, f"{row['custom_id']} answered twice"
            answers[row["custom_id"]] = row
    return answers


def cosines(answers, prefix, want, ids=None):
    """Cosine of each answer `{prefix}-{i}` (i in `ids`, default all) with its row of `want`."""
    ids = range(len(want)) if ids is None else ids
    got = np.asarray(
        [answers[f"{prefix}-{i}"]["response"]["body"]["data"][0]["embedding"] for i in ids],
        dtype=np.float32,
    )
    return np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
