"""TLS with the real clients: Python's `requests` over HTTPS and grpcio over a secure channel
(health checking, and tritonclient's gRPC client with client certificates), against inferd
started here with `--tls-cert`, `--tls-key` and `--tls-client-ca` (mutual TLS). The CA and the
certificates are made at test time with `trustme`. A client without a certificate is refused on
both listeners.
"""

import os
import time

import grpc
import numpy as np
import pytest
import requests
import trustme
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from batch_support import free_port
from conftest import ROOT, spawn_inferd


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    ca, client_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = client_ca.issue_cert("inferd-client")
    files = {
        "ca": tmp / "ca.pem",
        "client_ca": tmp / "client-ca.pem",
        "cert": tmp / "server.pem",
        "key": tmp / "server.key",
        "client_cert": tmp / "client.pem",
        "client_key": tmp / "client.key",
    }
    ca.cert_pem.write_to_path(files["ca"])
    client_ca.cert_pem.write_to_path(files["client_ca"])
    server.private_key_pem.write_to_path(files["key"])
    with open(files["cert"], "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    client.private_key_pem.write_to_path(files["client_key"])
    with open(files["client_cert"], "wb") as f:
        for blob in client.cert_chain_pems:
            f.write(blob.bytes())
    return files


@pytest.fixture(scope="module")
def server(pki):
    model = os.environ.get("INFERD_MODEL", str(ROOT / "models/all-MiniLM-L6-v2"))
    grpc_addr = f"127.0.0.1:{free_port()}"
    proc, addr = spawn_inferd(
        ["--model", model, "--grpc-listen", grpc_addr, "--tls-cert", str(pki["cert"]),
         "--tls-key", str(pki["key"]), "--tls-client-ca", str(pki["client_ca"])])
    try:
        port = addr.rsplit(":", 1)[1]
        url = f"https://localhost:{port}"
        deadline = time.time() + 180
        while True:
            try:
                if _get(url + "/readyz", pki).status_code == 200:
                    break
            except requests.exceptions.ConnectionError:
                pass
            assert time.time() < deadline, "inferd never became ready over TLS"
            time.sleep(0.2)
        yield url, grpc_addr.replace("127.0.0.1", "localhost")
    finally:
        proc.kill()
        proc.wait()


def _get(url, pki, **kw):
    return requests.get(url, verify=str(pki["ca"]), cert=(str(pki["client_cert"]), str(pki["client_key"])),
                        timeout=30, **kw)


def test_requests_over_mutual_tls(server, pki):
    url, _ = server
    cert = (str(pki["client_cert"]), str(pki["client_key"]))
    r = requests.post(url + "/infer", json={"inputs": ["hello world"]}, verify=str(pki["ca"]), cert=cert,
                      timeout=60)
    assert r.status_code == 200, r.text
    vector = r.json()["embeddings"][0]
    assert len(vector) == 384
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/readyz", verify=str(pki["ca"]), timeout=30)  # no client certificate
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/readyz", timeout=30)  # the server's CA not trusted
    assert _get(url + "/readyz", pki).status_code == 200


def _credentials(pki, with_client_cert=True):
    kw = {}
    if with_client_cert:
        kw = {"private_key": pki["client_key"].read_bytes(), "certificate_chain": pki["client_cert"].read_bytes()}
    return grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes(), **kw)


def test_grpc_secure_channel_health_and_kserve_infer(server, pki):
    url, addr = server
    model = _get(url + "/info", pki).json()["model"]
    with grpc.secure_channel(addr, _credentials(pki)) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

    client = tg.InferenceServerClient(
        addr, ssl=True, root_certificates=str(pki["ca"]), private_key=str(pki["client_key"]),
        certificate_chain=str(pki["client_cert"]))
    text = tg.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"hello world", b"another text"], dtype=np.object_))
    vectors = client.infer(model, [text]).as_numpy("embedding")
    assert vectors.shape == (2, 384)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3), norms

    with grpc.secure_channel(addr, _credentials(pki, with_client_cert=False)) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
