"""What the recipe tests share: the sentence-transformers reference, the over-long texts, and
the cosine bar (>= 0.999) every recipe's vectors must clear on both."""

import httpx
import numpy as np
import pytest

from batch_support import reference

# Words appended to texts already over the model's 256 tokens: cut off, like sentence-transformers.
TAIL = " and then some more words that the model never sees" * 20


@pytest.fixture(scope="module")
def ref():
    return reference()


@pytest.fixture(scope="module")
def over_long(url, ref):
    """Indices of reference texts over the model's token limit (sentence-transformers cut them)."""
    texts, _ = ref
    limit = httpx.get(url + "/info").json()["max_input_length"]
    counts = httpx.post(url + "/tokenize", json={"inputs": texts}, timeout=60).json()
    long = [i for i, tokens in enumerate(counts) if len(tokens) > limit]
    assert long, "the reference set has texts over the model's limit"
    return long


def cosines(got, want):
    got = np.asarray(got, dtype=np.float32)
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return np.sum(got * want, axis=1)


def assert_matches(embed, texts, want, over_long, few=None):
    """`embed(list of texts)` matches the reference on the texts (the first `few`), and over-long
    ones are cut as sentence-transformers cuts them."""
    worst = cosines(embed(texts[:few]), want[:few]).min()
    assert worst >= 0.999, worst
    longer = [texts[i] + TAIL for i in over_long]
    worst = cosines(embed(longer), want[over_long]).min()
    assert worst >= 0.999, worst
