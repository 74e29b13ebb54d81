"""RAG frameworks with their default settings against inferd: vectors must match
sentence-transformers (tests/fixtures/reference.jsonl, cosine >= 0.999) on texts of every length.

LangChain's `OpenAIEmbeddings()` sends tiktoken cl100k_base token arrays under the model name
`text-embedding-ada-002` (served here as an alias); Chroma's `OpenAIEmbeddingFunction` and
LlamaIndex's `OpenAIEmbedding` send text under OpenAI model names; `huggingface_hub.InferenceClient`
posts its task shapes to `POST /`. The OpenAPI document is validated as client generators read it.
"""

import httpx
import numpy as np
import pytest
from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding
from openapi_spec_validator import validate

from recipe_support import TAIL, cosines, over_long, ref  # noqa: F401 (fixtures)


def test_langchain_openai_embeddings_with_defaults_match_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embeddings = OpenAIEmbeddings(base_url=url + "/v1", api_key="unused")  # every default
    assert embeddings.model == "text-embedding-ada-002" and embeddings.check_embedding_ctx_length
    worst = cosines(embeddings.embed_documents(texts), want).min()
    assert worst >= 0.999, worst
    assert cosines([embeddings.embed_query(texts[0])], want[:1])[0] >= 0.999
    # Over-long chunks (a RAG chunker's default size) are cut as sentence-transformers cuts them.
    longer = [texts[i] + TAIL for i in over_long]
    worst = cosines(embeddings.embed_documents(longer), want[over_long]).min()
    assert worst >= 0.999, worst


def test_chroma_openai_embedding_function_matches_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embed = OpenAIEmbeddingFunction(api_key="unused", api_base=url + "/v1")  # model ada-002
    assert cosines(embed(texts), want).min() >= 0.999
    longer = [texts[i] + TAIL for i in over_long]
    assert cosines(embed(longer), want[over_long]).min() >= 0.999


def test_llamaindex_openai_embedding_matches_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embed = OpenAIEmbedding(model="text-embedding-3-small", api_base=url + "/v1", api_key="unused")
    assert cosines(embed.get_text_embedding_batch(texts), want).min() >= 0.999
    assert cosines([embed.get_query_embedding(texts[0])], want[:1])[0] >= 0.999
    longer = [texts[i] + TAIL for i in over_long]
    assert cosines(embed.get_text_embedding_batch(longer), want[over_long]).min() >= 0.999


def test_huggingface_feature_extraction_on_post_root_matches_sentence_transformers(url, ref, over_long):
    texts, want = ref
    client = InferenceClient(base_url=url)
    got = np.concatenate([client.feature_extraction(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    assert cosines(got, want).min() >= 0.999
    longer = [texts[i] + TAIL for i in over_long]
    assert cosines(client.feature_extraction(longer), want[over_long]).min() >= 0.999


def test_huggingface_sentence_similarity_matches_sentence_transformers(url, ref):
    texts, want = ref
    client = InferenceClient(base_url=url)
    scores = client.sentence_similarity(texts[0], other_sentences=texts[1:9])
    np.testing.assert_allclose(scores, want[1:9] @ want[0], atol=2e-3)


def test_huggingface_text_classification_is_a_clear_4xx(url):
    client = InferenceClient(base_url=url)
    with pytest.raises(HfHubHTTPError) as err:
        client.text_classification("what a great movie")
    assert err.value.response.status_code == 400
    assert "feature-extraction" in err.value.response.json()["error"]


def test_openapi_document_is_valid_and_generator_friendly(url):
    doc = httpx.get(url + "/openapi.json").json()
    validate(doc)  # raises on an invalid document (duplicate operationIds included)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert "post" in doc["paths"]["/"]
    assert {"bearer", "api_key"} <= set(doc["components"]["securitySchemes"])
    docs = httpx.get(url + "/", follow_redirects=True)
    assert docs.status_code == 200 and 'fetch("openapi.json")' in docs.text
