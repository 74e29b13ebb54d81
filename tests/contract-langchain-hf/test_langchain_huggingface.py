"""LangChain's `HuggingFaceEndpointEmbeddings` pointed at inferd as at a TEI server: it posts
`{"inputs": [...]}` to the URL through `huggingface_hub.InferenceClient`, and its vectors must
match sentence-transformers on short and over-long texts."""

import asyncio

from langchain_huggingface import HuggingFaceEndpointEmbeddings

from recipe_support import assert_matches, cosines, over_long, ref  # noqa: F401 (fixtures)


def test_huggingface_endpoint_embeddings_match_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embeddings = HuggingFaceEndpointEmbeddings(model=url)
    assert_matches(embeddings.embed_documents, texts, want, over_long)
    assert cosines([embeddings.embed_query(texts[0])], want[:1])[0] >= 0.999


def test_its_async_client_matches_too(url, ref, over_long):
    texts, want = ref
    embeddings = HuggingFaceEndpointEmbeddings(model=url)
    loop = asyncio.new_event_loop()  # one loop: the async client keeps its session across calls
    try:
        assert_matches(lambda batch: loop.run_until_complete(embeddings.aembed_documents(batch)),
                       texts, want, over_long, few=16)
    finally:
        loop.close()
