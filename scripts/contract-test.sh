#!/usr/bin/env bash
# Contract tests: drives a spawned inferd with the real `openai`, `huggingface_hub`,
# `langchain-openai`, LlamaIndex, Haystack, `openapi-python-client` and `tritonclient[http]`
# packages, validates /openapi.json with `openapi-spec-validator` and the Batch API's webhooks
# with `standardwebhooks` (tests/contract/, pytest), runs LangChain's
# `HuggingFaceEndpointEmbeddings` from a venv of its own (tests/contract-langchain-hf/), then
# runs schemathesis against its /openapi.json (no 5xx, responses match the schema). Exits
# non-zero on any failure.
#
#   scripts/contract-test.sh [MODEL_DIR] [INFERD_BINARY]
#
# MODEL_DIR defaults to models/all-MiniLM-L6-v2 (scripts/fetch-model.sh); without a binary the
# debug build is (re)built the way the test suite builds it. The venvs live in .venv-contract/
# and .venv-contract-langchain-hf/ (gitignored); INFERD_CONTRACT_VENV and
# INFERD_CONTRACT_LANGCHAIN_HF_VENV override them, INFERD_SCHEMATHESIS_EXAMPLES bounds the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL=${1:-models/all-MiniLM-L6-v2}
BIN=${2:-}
VENV=${INFERD_CONTRACT_VENV:-.venv-contract}
LC_VENV=${INFERD_CONTRACT_LANGCHAIN_HF_VENV:-.venv-contract-langchain-hf}
EXAMPLES=${INFERD_SCHEMATHESIS_EXAMPLES:-25}

echo "== contract: python venv ($VENV)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/contract/requirements.txt

if [ -z "$BIN" ]; then
  echo "== contract: building target/debug/inferd"
  # Same feature set as `cargo test`, so CI reuses the test build instead of rebuilding.
  cargo test --no-run --quiet --test integration
  BIN=target/debug/inferd
fi
[ -f "$MODEL/model.safetensors" ] || { echo "no model in $MODEL: run scripts/fetch-model.sh" >&2; exit 1; }

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
LOG=$(mktemp)
# The Batch API needs a state dir; its webhooks go to the receiver tests/contract/test_batch.py
# starts on INFERD_WEBHOOK_PORT, signed with INFERD_WEBHOOK_SECRET.
STATE=$(mktemp -d)
export INFERD_WEBHOOK_PORT; INFERD_WEBHOOK_PORT=$(free_port)
export INFERD_WEBHOOK_SECRET; INFERD_WEBHOOK_SECRET="whsec_$("$VENV/bin/python" -c 'import base64, os; print(base64.b64encode(os.urandom(24)).decode())')"
printf '%s' "$INFERD_WEBHOOK_SECRET" >"$STATE/webhook.secret"
# The aliases are library default model names and the hub id (tests/contract/conftest.py's).
# gRPC on its own free port: tests/contract/test_grpc.py reads INFERD_GRPC_ADDR.
export INFERD_GRPC_ADDR; INFERD_GRPC_ADDR="127.0.0.1:$(free_port)"
# --request-timeout 120s: LangChain and Chroma send every reference text in one request; on a slow
# 2-core CPU without AVX-512 that took longer than the default 30 s and got 504.
"$BIN" serve --model "$MODEL" --listen "127.0.0.1:$PORT" --log-format json \
  --request-timeout 120s \
  --grpc-listen "$INFERD_GRPC_ADDR" \
  --model-alias text-embedding-ada-002,text-embedding-3-small,sentence-transformers/all-MiniLM-L6-v2 \
  --state-dir "$STATE" --admin-listen 127.0.0.1:0 \
  --webhook-url "http://127.0.0.1:$INFERD_WEBHOOK_PORT/hooks" --webhook-secret-file "$STATE/webhook.secret" \
  >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$LOG" "$STATE"' EXIT

echo "== contract: waiting for $URL/readyz"
"$VENV/bin/python" - "$URL" <<'PY' || { cat "$LOG" >&2; exit 1; }
import sys, time, urllib.request
deadline = time.time() + 180
while time.time() < deadline:
    try:
        if urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("inferd not ready after 180 s")
PY

echo "== contract: client packages (pytest tests/contract)"
# The crash test starts (and kill -9s) its own servers from the same binary and model.
INFERD_URL="$URL" INFERD_BIN="$BIN" INFERD_MODEL="$MODEL" "$VENV/bin/python" -m pytest -q tests/contract

echo "== contract: LangChain's HuggingFaceEndpointEmbeddings (tests/contract-langchain-hf, venv $LC_VENV)"
# langchain-huggingface 0.3 needs langchain-core < 1, which langchain-openai 1.x above cannot share.
[ -x "$LC_VENV/bin/python" ] || python3 -m venv "$LC_VENV"
"$LC_VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/contract-langchain-hf/requirements.txt
INFERD_URL="$URL" "$LC_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/contract-langchain-hf

echo "== contract: schemathesis against $URL/openapi.json"
# Path parameters get the served model's name and version so model routes are reached, not
# just answered 404. No 5xx, statuses/content types/bodies as documented. positive_data_acceptance
# is left out: the schema cannot express every limit (token counts, batch size, empty strings), so
# some schema-valid requests rightly get a 4xx.
CONFIG=$(mktemp --suffix=.toml)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$LOG" "$CONFIG" "$STATE"' EXIT
"$VENV/bin/python" - "$URL" >"$CONFIG" <<'PY'
import json, sys, urllib.request
info = json.load(urllib.request.urlopen(sys.argv[1] + "/info"))
print("[parameters]")
for key, value in {"path.name": info["model"], "path.model": info["model"], "path.version": info["version"]}.items():
    print(f"{json.dumps(key)} = {json.dumps(value)}")
PY
"$VENV/bin/schemathesis" --no-color --config-file "$CONFIG" run "$URL/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples "$EXAMPLES" \
  --request-timeout 30
