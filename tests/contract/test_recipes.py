"""More RAG framework recipes against inferd, vectors compared with sentence-transformers
(tests/fixtures/reference.jsonl, cosine >= 0.999) on short and over-long texts.

LlamaIndex's `TextEmbeddingsInference` posts to TEI's `/embed`; Haystack's `OpenAITextEmbedder` /
`OpenAIDocumentEmbedder` send text under an OpenAI model name, and its Hugging Face API embedders
(`huggingface-api-haystack`) call `feature_extraction` on the TEI-style server. A client generated
by `openapi-python-client` from the live `/openapi.json` calls `/infer`.
"""

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # before haystack is imported

import subprocess
import sys

import httpx
from haystack import Document
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret
from haystack_integrations.components.embedders.huggingface_api import (
    HuggingFaceAPIDocumentEmbedder,
    HuggingFaceAPITextEmbedder,
)
from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

from recipe_support import assert_matches, cosines, over_long, ref  # noqa: F401 (fixtures)


def haystack_documents(embedder):
    embedder.warm_up()
    return lambda texts: [d.embedding for d in embedder.run([Document(content=t) for t in texts])["documents"]]


def haystack_texts(embedder):
    embedder.warm_up()
    return lambda texts: [embedder.run(t)["embedding"] for t in texts]


def test_llamaindex_text_embeddings_inference_matches_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embed = TextEmbeddingsInference(model_name="sentence-transformers/all-MiniLM-L6-v2", base_url=url)
    assert_matches(embed.get_text_embedding_batch, texts, want, over_long)
    assert cosines([embed.get_query_embedding(texts[0])], want[:1])[0] >= 0.999


def openai_kwargs(url):
    return {"api_base_url": url + "/v1", "api_key": Secret.from_token("unused"), "model": "text-embedding-3-small"}


def test_haystack_openai_embedders_match_sentence_transformers(url, ref, over_long):
    texts, want = ref
    assert_matches(haystack_documents(OpenAIDocumentEmbedder(**openai_kwargs(url))), texts, want, over_long)
    assert_matches(haystack_texts(OpenAITextEmbedder(**openai_kwargs(url))), texts, want, over_long, few=8)


def tei_kwargs(url):
    return {"api_type": "text_embeddings_inference", "api_params": {"url": url}}


def test_haystack_tei_embedders_match_sentence_transformers(url, ref, over_long):
    texts, want = ref
    assert_matches(haystack_documents(HuggingFaceAPIDocumentEmbedder(**tei_kwargs(url))), texts, want, over_long)
    assert_matches(haystack_texts(HuggingFaceAPITextEmbedder(**tei_kwargs(url))), texts, want, over_long, few=8)


def generated_client(url, tmp_path):
    """Generates a client from the live /openapi.json and imports it. The generator's only warning
    (GET /v1/files/{file_id}/content answers application/jsonl, which it skips) spares /infer."""
    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(url + "/openapi.json").content)
    out = tmp_path / "inferd_client"
    gen = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
           "--output-path", str(out), "--meta", "none"]
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")  # its ruff
    run = subprocess.run(gen, capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": path})
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert not [l for l in log.splitlines() if "WARNING" in l and "/infer" in l], log
    sys.path.insert(0, str(tmp_path))
    import inferd_client
    from inferd_client.api.inferd import infer
    from inferd_client.models import InferRequest

    return inferd_client.Client(base_url=url), infer, InferRequest


def test_openapi_python_client_calls_infer(url, ref, tmp_path):
    texts, want = ref
    client, infer, InferRequest = generated_client(url, tmp_path)
    answer = infer.sync(client=client, body=InferRequest(inputs=texts[:4]))
    assert cosines(answer.embeddings, want[:4]).min() >= 0.999
