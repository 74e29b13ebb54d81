"""The real client packages, unmodified, against inferd: their vectors must equal /infer's."""

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException
from huggingface_hub import InferenceClient

from conftest import assert_same

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings map text to vectors."]


# ---- OpenAI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_openai_default_encoding_is_base64_and_decodes(oai, model, infer):
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    r = oai.embeddings.create(model=model, input=TEXTS)
    assert r.object == "list" and r.model == model
    assert [d.index for d in r.data] == [0, 1]
    assert_same([d.embedding for d in r.data], infer(TEXTS))
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens


def test_openai_float_single_string(oai, model, infer):
    r = oai.embeddings.create(model=model, input=TEXTS[0], encoding_format="float", user="u1")
    assert_same([r.data[0].embedding], infer(TEXTS[:1]))


def test_openai_token_ids_are_tiktoken_ids(oai, model, infer):
    # OpenAI's token arrays are cl100k_base ids; inferd decodes them and embeds the text.
    import tiktoken

    ids = [tiktoken.get_encoding("cl100k_base").encode(t) for t in TEXTS]
    r = oai.embeddings.create(model=model, input=ids, encoding_format="float")
    assert_same([d.embedding for d in r.data], infer(TEXTS))


def test_openai_dimensions_cut_and_renormalise_larger_is_422(oai, model, info):
    full = oai.embeddings.create(model=model, input="a", dimensions=info["dimensions"])
    assert len(full.data[0].embedding) == info["dimensions"]
    half = info["dimensions"] // 2
    cut = np.asarray(oai.embeddings.create(model=model, input="a", dimensions=half).data[0].embedding)
    assert len(cut) == half and abs(np.linalg.norm(cut) - 1) < 1e-5
    want = np.asarray(full.data[0].embedding[:half])
    assert np.dot(cut, want / np.linalg.norm(want)) > 0.99999
    with pytest.raises(openai.UnprocessableEntityError) as err:
        oai.embeddings.create(model=model, input="a", dimensions=info["dimensions"] + 1)
    assert err.value.code == "invalid_input"
    assert err.value.param == "dimensions"


def test_openai_unknown_model_is_404(oai):
    with pytest.raises(openai.NotFoundError) as err:
        oai.embeddings.create(model="no-such-model", input="a")
    assert err.value.code == "model_not_found"


def test_openai_models(oai, model):
    assert model in [m.id for m in oai.models.list()]
    assert oai.models.retrieve(model).id == model


# ---- Hugging Face (TEI) ---------------------------------------------------------------------


def test_huggingface_feature_extraction(url, infer):
    client = InferenceClient(model=url)
    got = client.feature_extraction(TEXTS[0])
    assert_same(np.asarray(got).reshape(1, -1), infer(TEXTS[:1]))


def test_huggingface_feature_extraction_batch_and_truncation(url, infer):
    client = InferenceClient(model=url)
    got = client.feature_extraction(TEXTS, normalize=True, truncate=True, truncation_direction="Left")
    assert_same(got, infer(TEXTS))


def test_tei_rerank_and_info(url, info):
    r = httpx.post(url + "/rerank", json={"query": TEXTS[0], "texts": [TEXTS[1], TEXTS[0]]})
    assert r.status_code == 200, r.text
    ranks = r.json()
    assert ranks[0]["index"] == 1 and ranks[0]["score"] > ranks[1]["score"]
    assert info["model_id"] == info["model"] and info["max_input_length"] > 0


# ---- KServe v2 (Triton client) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tclient(url):
    return triton.InferenceServerClient(url=url.removeprefix("http://"))


def test_triton_health_and_metadata(tclient, model, info):
    assert tclient.is_server_live() and tclient.is_server_ready()
    assert tclient.is_model_ready(model)
    meta = tclient.get_model_metadata(model)
    assert meta["inputs"][0]["datatype"] == "BYTES"
    assert meta["outputs"][0]["shape"] == [-1, info["dimensions"]]
    assert tclient.get_server_metadata()["name"] == "inferd"


@pytest.mark.parametrize("binary", [True, False])
def test_triton_infer(tclient, model, infer, binary):
    data = np.array([t.encode() for t in TEXTS], dtype=np.object_)
    tensor = triton.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(data, binary_data=binary)
    output = triton.InferRequestedOutput("embedding", binary_data=binary)
    result = tclient.infer(model, inputs=[tensor], outputs=[output])
    assert_same(result.as_numpy("embedding"), infer(TEXTS))


def test_triton_infer_default_outputs(tclient, model, infer):
    data = np.array([t.encode() for t in TEXTS], dtype=np.object_)
    tensor = triton.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(data)
    result = tclient.infer(model, inputs=[tensor])
    assert_same(result.as_numpy("embedding"), infer(TEXTS))


def test_triton_error_is_raised_with_message(tclient):
    with pytest.raises(InferenceServerException) as err:
        tclient.get_model_metadata("no-such-model")
    assert "no-such-model" in str(err.value)
