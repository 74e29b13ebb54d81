"""`tritonclient` (http, binary tensors by default; and grpc), unmodified, against inferd serving
a tiny classifier (target/tiny-models/bert-classifier, or INFERD_CLASSIFIER): KServe v2 with
BYTES inputs `text` and `text_pair` gives FP32 `logits` equal to transformers' for the same
(query, text) pairs, from the model's reference.json.
"""

import json
import os
import pathlib
import socket

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

from conftest import ROOT, _wait_ready, spawn_inferd

CLASSIFIER = pathlib.Path(os.environ.get("INFERD_CLASSIFIER", ROOT / "target/tiny-models/bert-classifier"))
TOLERANCE = 2e-3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """(HTTP host:port, gRPC host:port, model name, reference) of a server on the classifier."""
    if not (CLASSIFIER / "reference.json").exists():
        pytest.fail(f"no tiny classifier in {CLASSIFIER}: run scripts/tiny-models.sh")
    grpc_addr = f"127.0.0.1:{free_port()}"
    proc, addr = spawn_inferd(
        ["--model", str(CLASSIFIER), "--device", "cpu", "--dtype", "f32", "--grpc-listen", grpc_addr])
    try:
        _wait_ready("http://" + addr)
        model = httpx.get(f"http://{addr}/info").json()["model"]
        yield addr, grpc_addr, model, json.loads((CLASSIFIER / "reference.json").read_text())
    finally:
        proc.kill()
        proc.wait()


def tensors(module, pairs):
    out = []
    for name, values in (("text", [p["query"] for p in pairs]), ("text_pair", [p["text"] for p in pairs])):
        tensor = module.InferInput(name, [len(values)], "BYTES")
        tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
        out.append(tensor)
    return out


def expected(reference):
    return np.array([p["logits"] for p in reference["pairs"]], dtype=np.float32)


def test_http_logits_match_transformers(served):
    addr, _, model, reference = served
    client = thttp.InferenceServerClient(addr)
    meta = client.get_model_metadata(model)
    assert [t["name"] for t in meta["inputs"]] == ["text", "text_pair"]
    assert meta["outputs"][0]["name"] == "logits"
    result = client.infer(model, tensors(thttp, reference["pairs"]), parameters={"truncate": True})
    logits = result.as_numpy("logits")
    assert logits.shape == (len(reference["pairs"]), len(reference["labels"]))
    assert np.abs(logits - expected(reference)).max() <= TOLERANCE


def test_grpc_logits_match_transformers(served):
    _, grpc_addr, model, reference = served
    client = tgrpc.InferenceServerClient(grpc_addr)
    result = client.infer(model, tensors(tgrpc, reference["pairs"]), parameters={"truncate": True})
    assert np.abs(result.as_numpy("logits") - expected(reference)).max() <= TOLERANCE
