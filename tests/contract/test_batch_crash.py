"""kill -9 in the middle of a batch, at several points, on the real model: after each restart on
the same state dir the batch resumes; in the end every custom_id is answered exactly once, the
vectors match sentence-transformers, and the webhook, verified by `standardwebhooks`, carries
one event id however often it was delivered."""

import json
import os
import subprocess
import time

import httpx
import openai
from standardwebhooks.webhooks import Webhook

from batch_support import (
    ROOT,
    Receiver,
    by_custom_id,
    cosines,
    done,
    free_port,
    new_secret,
    reference,
    request_lines,
    wait_batch,
)


class Server:
    """One inferd process on the real model, started and killed like a pod."""

    def __init__(self, args):
        self.args = args
        self.proc = None
        self.url = None

    def start(self):
        binary = os.environ.get("INFERD_BIN", str(ROOT / "target/debug/inferd"))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--grpc-listen", "off", *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            assert self.proc.poll() is None, "inferd exited"
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("inferd not ready")

    def kill_9(self):
        self.proc.kill()  # SIGKILL: no shutdown code runs
        self.proc.wait()


def test_kill_9_mid_batch_resumes_exactly_once(tmp_path):
    model_dir = os.environ.get("INFERD_MODEL", str(ROOT / "models/all-MiniLM-L6-v2"))
    secret = new_secret()
    (tmp_path / "secret").write_text(secret)
    hooks = Receiver(free_port())
    server = Server([
        "--model", model_dir, "--model-name", "minilm",
        "--state-dir", str(tmp_path / "state"), "--admin-listen", "127.0.0.1:0",
        "--batch-chunk-requests", "8", "--debug-batch-delay", "60ms",
        "--webhook-url", hooks.url, "--webhook-secret-file", str(tmp_path / "secret"),
    ])
    texts, want = reference(96)
    try:
        oai = server.start()
        f = oai.files.create(file=("crash.jsonl", request_lines("minilm", texts)), purpose="batch")
        batch_id = oai.batches.create(input_file_id=f.id, endpoint="/v1/embeddings",
                                      completion_window="24h").id
        progress = []
        for kill_after in (8, 40, 72):
            b = wait_batch(oai, batch_id, until=lambda b: done(b) >= kill_after or b.status == "completed")
            progress.append(done(b))
            server.kill_9()
            oai = server.start()
            assert done(oai.batches.retrieve(batch_id)) >= progress[-1], "progress went back"
        b = wait_batch(oai, batch_id)
        assert b.status == "completed", b
        assert b.request_counts.completed == len(texts) and b.request_counts.failed == 0
        answers = by_custom_id(oai, b.output_file_id, b.error_file_id)
        assert sorted(answers) == sorted(f"ref-{i}" for i in range(len(texts)))
        assert cosines(answers, "ref", want).min() >= 0.999
        assert oai.files.retrieve(f.id).bytes > 0, "the acknowledged upload survived every kill"

        deliveries = hooks.for_batch(batch_id)
        for headers, body in deliveries:
            event = Webhook(secret).verify(body, headers)
            assert event["type"] == "batch.completed"
            assert event["id"] == headers["webhook-id"]
        assert len({h["webhook-id"] for h, _ in deliveries}) == 1, deliveries
        assert progress[0] < len(texts), f"the first kill came after the end: {progress}"
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill_9()
        hooks.close()
