"""The Batch API with the real `openai` SDK, unmodified: files.create → batches.create → poll →
files.content, vectors against sentence-transformers, and the webhook verified by the PyPI
`standardwebhooks` package and by the SDK's own `webhooks.unwrap`."""

import json
import os

import openai
import pytest
from standardwebhooks.webhooks import Webhook

from batch_support import Receiver, by_custom_id, cosines, reference, request_lines, wait_batch


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def hooks():
    port = os.environ.get("INFERD_WEBHOOK_PORT")
    if not port:
        pytest.fail("INFERD_WEBHOOK_PORT and INFERD_WEBHOOK_SECRET must name the server's webhook")
    receiver = Receiver(int(port))
    yield receiver
    receiver.close()


def test_openai_sdk_batch_end_to_end_matches_sentence_transformers(oai, model, hooks):
    texts, want = reference()
    data = request_lines(model, texts)
    f = oai.files.create(file=("references.jsonl", data), purpose="batch")
    assert (f.object, f.purpose, f.bytes, f.status) == ("file", "batch", len(data), "processed")
    assert oai.files.retrieve(f.id).filename == "references.jsonl"
    assert oai.files.content(f.id).content == data

    created = oai.batches.create(
        input_file_id=f.id,
        endpoint="/v1/embeddings",
        completion_window="24h",
        metadata={"suite": "contract"},
    )
    assert created.status == "validating" and created.metadata == {"suite": "contract"}
    b = wait_batch(oai, created.id)
    assert b.status == "completed", b
    counts = b.request_counts
    assert counts.total == len(texts) and counts.completed + counts.failed == len(texts)
    assert b.model.startswith(model + "@")
    assert b.usage.input_tokens > len(texts) and b.usage.output_tokens == 0
    assert created.id in [x.id for x in oai.batches.list(limit=100).data]

    # Every line answers, the few reference texts over the model's 256 tokens included: they are
    # cut to the limit (--auto-truncate), as sentence-transformers cuts them.
    answers = by_custom_id(oai, b.output_file_id)
    assert counts.failed == 0 and len(answers) == counts.completed == len(texts)
    assert all(a["response"]["status_code"] == 200 and a["error"] is None for a in answers.values())
    worst = cosines(answers, "ref", want, ids=list(range(len(texts)))).min()
    assert worst >= 0.999, worst
    assert b.error_file_id is None

    # The webhook: signed per Standard Webhooks; the SDK unwraps it into its own event type.
    secret = os.environ["INFERD_WEBHOOK_SECRET"]
    deliveries = hooks.for_batch(b.id)
    assert len({h["webhook-id"] for h, _ in deliveries}) == 1
    headers, body = deliveries[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "batch.completed" and event["data"]["id"] == b.id
    unwrapped = oai.webhooks.unwrap(body, headers, secret=secret)
    assert unwrapped.type == "batch.completed" and unwrapped.data.id == b.id
    assert unwrapped.id == headers["webhook-id"]
    with pytest.raises(Exception):
        Webhook(secret).verify(body.replace(b"completed", b"cancelled"), headers)

    # A finished batch cannot be cancelled; files can be deleted once no batch needs them.
    with pytest.raises(openai.ConflictError):
        oai.batches.cancel(b.id)
    assert oai.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(f.id)


def test_openai_sdk_sees_bad_lines_in_the_error_file(oai, model):
    good = request_lines(model, ["a good line"], prefix="good")
    bad = json.dumps({"custom_id": "bad", "method": "POST", "url": "/v1/embeddings",
                      "body": {"model": model, "input": ""}}) + "\n"
    f = oai.files.create(file=("mixed.jsonl", good + bad.encode()), purpose="batch")
    b = wait_batch(oai, oai.batches.create(input_file_id=f.id, endpoint="/v1/embeddings",
                                           completion_window="24h").id)
    assert b.status == "completed" and b.request_counts.failed == 1
    errors = by_custom_id(oai, b.error_file_id)
    assert errors["bad"]["response"]["status_code"] == 422
    assert errors["bad"]["response"]["body"]["error"]["code"] == "invalid_input"


def test_openai_sdk_errors_are_openai_errors(oai):
    with pytest.raises(openai.UnprocessableEntityError):
        oai.files.create(file=("x.jsonl", b"not json\n"), purpose="batch")
    with pytest.raises(openai.UnprocessableEntityError):
        oai.files.create(file=("x.jsonl", b'{"custom_id": "a"}\n'), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_missing")
    with pytest.raises(openai.UnprocessableEntityError):
        oai.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h")
