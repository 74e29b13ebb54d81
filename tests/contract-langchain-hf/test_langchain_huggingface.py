"""LangChain's `HuggingFaceEndpointEmbeddings` pointed at inferd as at a TEI server: it posts
`{"inputs": [...]}` to the URL through `huggingface_hub.InferenceClient`, and its vectors must
match sentence-transformers on short and over-long texts."""

import asyncio

from langchain_huggingface import HuggingFaceEndpointEmbeddings

from recipe_support import TAIL, assert_matches, cosines, over_long, ref  # noqa: F401 (fixtures)


def test_huggingface_endpoint_embeddings_match_sentence_transformers(url, ref, over_long):
    texts, want = ref
    embeddings = HuggingFaceEndpointEmbeddings(model=url)
    assert_matches(embeddings.embed_documents, texts, want, over_long)
    assert cosines([embeddings.embed_query(texts[0])], want[:1])[0] >= 0.999


def test_its_async_client_matches_too(url, ref, over_long):
    texts, want = ref
    embeddings = HuggingFaceEndpointEmbeddings(model=url)
    longer = [texts[i] + TAIL for i in over_long]

    async def both():  # one event loop: the async client keeps its session across calls
        return await embeddings.aembed_documents(texts[:16]), await embeddings.aembed_documents(longer)

    short, long = asyncio.run(both())
    assert cosines(short, want[:16]).min() >= 0.999
    assert cosines(long, want[over_long]).min() >= 0.999
