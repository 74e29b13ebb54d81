"""gRPC with the real client packages: `tei-client`'s GrpcClient (TEI's tei.v1 stubs),
`grpcio-health-checking` and `grpcio-reflection`, against the server scripts/contract-test.sh
starts with `--grpc-listen` (INFERD_GRPC_ADDR). Vectors are compared with HTTP /embed's.
"""

import os

import grpc
import httpx
import numpy as np
import pytest
from tei_client import ModelType
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ADDR = os.environ.get("INFERD_GRPC_ADDR")
pytestmark = pytest.mark.skipif(not ADDR, reason="INFERD_GRPC_ADDR not set (no gRPC listener)")

TEXTS = ["the quick brown fox", "a completely different sentence about rivers"]


@pytest.fixture(scope="module")
def client():
    from tei_client import GrpcClient

    return GrpcClient(ADDR)


def test_embed_matches_http_embed(client, url):
    got = np.array(client.embed(TEXTS, normalize=True, truncate=True))
    want = np.array(httpx.post(f"{url}/embed", json={"inputs": TEXTS}, timeout=60).json())
    # Sharp: the two texts' vectors differ, so a swapped or wrong answer fails the bound.
    assert np.abs(want[0] - want[1]).max() > 1e-2
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5


def test_tokenize_decode_and_info(client, url):
    result = client.tokenize(TEXTS[0], add_special_tokens=True)
    ids = (result[0] if isinstance(result, list) else result).get_ids()
    http = httpx.post(f"{url}/tokenize", json={"inputs": TEXTS[0]}, timeout=60).json()
    assert ids == [t["id"] for t in http[0]]
    text = client.decode(ids, skip_special_tokens=True)
    assert text == httpx.post(f"{url}/decode", json={"ids": ids}, timeout=60).json()[0]
    info = client.info()
    assert info.server_model_type == ModelType.Embedding
    assert info.server_model_id
    assert info.max_input_length > 0


def test_health_serving_and_reflection_lists_services():
    channel = grpc.insecure_channel(ADDR)
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    for wanted in ["tei.v1.Embed", "tei.v1.Tokenize", "tei.v1.Info", "grpc.health.v1.Health"]:
        assert wanted in services, services


def test_errors_have_grpc_codes():
    from tei_client.stubs import tei_pb2, tei_pb2_grpc

    channel = grpc.insecure_channel(ADDR)
    with pytest.raises(grpc.RpcError) as empty:
        tei_pb2_grpc.EmbedStub(channel).Embed(tei_pb2.EmbedRequest(inputs=""))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as wrong_kind:
        tei_pb2_grpc.RerankStub(channel).Rerank(
            tei_pb2.RerankRequest(query="q", texts=["a"], truncate=True)
        )
    assert wrong_kind.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# ---- KServe v2 over gRPC, with tritonclient[grpc] -----------------------------------------


@pytest.fixture(scope="module")
def tgrpc():
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(ADDR)


def test_triton_grpc_health_and_metadata(tgrpc, model, info):
    assert tgrpc.is_server_live() and tgrpc.is_server_ready()
    assert tgrpc.is_model_ready(model)
    meta = tgrpc.get_model_metadata(model)
    assert meta.name == model
    assert [(t.name, t.datatype) for t in meta.inputs] == [("text", "BYTES")]
    assert list(meta.outputs[0].shape) == [-1, info["dimensions"]]
    assert tgrpc.get_server_metadata().name == "inferd"


def test_triton_grpc_infer_matches_sentence_transformers(tgrpc, model):
    import tritonclient.grpc as tg
    from batch_support import reference

    texts, want = reference(16)
    data = np.array([t.encode() for t in texts], dtype=np.object_)
    tensor = tg.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(data)
    result = tgrpc.infer(model, [tensor], outputs=[tg.InferRequestedOutput("embedding")])
    got = result.as_numpy("embedding")
    assert got.shape == want.shape
    cosine = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    # Sharp: the reference texts differ (their vectors are far apart), so a shifted row fails.
    assert (want[0] @ want[1]) < 0.9
    assert cosine.min() >= 0.999, cosine


def test_triton_grpc_errors_are_raised_with_their_status(tgrpc, model):
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as unknown:
        tgrpc.get_model_metadata("no-such-model")
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    tensor = tg.InferInput("text", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(InferenceServerException) as wrong:
        tgrpc.infer(model, [tensor])
    assert wrong.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "BYTES" in wrong.value.message()
