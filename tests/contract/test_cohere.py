"""The `cohere` SDK, unmodified, against inferd serving a tiny cross-encoder reranker.

`cohere.ClientV2(base_url=..., api_key=...).rerank(...)` (what LangChain's and LlamaIndex's
Cohere rerankers call) must return every document with its relevance score: the sigmoid of
transformers' logit for that (query, document) pair, from the model's reference.json. The
server is spawned here on INFERD_RERANKER (default target/tiny-models/bert-reranker, written by
scripts/tiny-models.sh), whatever model the rest of the suite uses.
"""

import json
import math
import os
import pathlib

import cohere
import httpx
import pytest

from conftest import ROOT, _wait_ready, spawn_inferd

RERANKER = pathlib.Path(os.environ.get("INFERD_RERANKER", ROOT / "target/tiny-models/bert-reranker"))


@pytest.fixture(scope="module")
def reranker():
    if not (RERANKER / "reference.json").exists():
        pytest.fail(f"no tiny reranker in {RERANKER}: run scripts/tiny-models.sh")
    proc, addr = spawn_inferd(
        ["--model", str(RERANKER), "--device", "cpu", "--dtype", "f32", "--max-client-batch", "16",
         "--grpc-listen", "off"])
    try:
        url = "http://" + addr
        _wait_ready(url)
        yield url, json.loads((RERANKER / "reference.json").read_text())
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def client(reranker):
    url, _ = reranker
    return cohere.ClientV2(base_url=url, api_key="unused")


def groups(reference):
    by_query = {}
    for pair in reference["pairs"]:
        by_query.setdefault(pair["query"], []).append(pair)
    return by_query


def test_client_v2_rerank_scores_every_document(client, reranker):
    url, reference = reranker
    model = httpx.get(url + "/info").json()["model"]
    for query, pairs in groups(reference).items():
        docs = [p["text"] for p in pairs]
        r = client.rerank(model=model, query=query, documents=docs)
        assert sorted(x.index for x in r.results) == list(range(len(docs)))
        scores = [x.relevance_score for x in r.results]
        assert scores == sorted(scores, reverse=True)
        for x in r.results:
            want = 1 / (1 + math.exp(-pairs[x.index]["logits"][0]))
            assert abs(x.relevance_score - want) <= 2e-3, (x, want)
        top = client.rerank(model=model, query=query, documents=docs, top_n=2)
        assert [x.index for x in top.results] == [x.index for x in r.results[:2]]
        assert r.meta.api_version.version == "2"


def test_client_v2_rerank_errors_are_sdk_exceptions(client, reranker):
    url, _ = reranker
    model = httpx.get(url + "/info").json()["model"]
    with pytest.raises(cohere.UnprocessableEntityError) as err:
        client.rerank(model=model, query="q", documents=[])
    assert "documents" in str(err.value.body)
    with pytest.raises(cohere.UnprocessableEntityError):
        client.rerank(model=model, query="q", documents=["a", "b"], top_n=3)
    with pytest.raises(cohere.NotFoundError):
        client.rerank(model="no-such-model", query="q", documents=["a"])
