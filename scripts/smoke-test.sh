#!/usr/bin/env bash
# Post-deploy smoke test for an inferd endpoint: readiness, one /infer, dimension count.
#
#   scripts/smoke-test.sh URL [expected_dims]
#   scripts/smoke-test.sh http://inferd-canary.inferd:8080 384
#
# Without expected_dims the embedding length must equal the response's own "dimensions".
# Environment: SMOKE_READY_TIMEOUT (seconds to wait for /readyz, default 120),
#              SMOKE_TEXT (input to embed).
# Needs curl and python3 only. Exit 0 = healthy; otherwise a one-line reason on stderr.
set -euo pipefail

usage() { echo "usage: $0 URL [expected_dims]" >&2; exit 2; }
die() { echo "smoke-test: FAIL: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
BASE="${1%/}"
EXPECTED="${2:-}"
if [ -n "$EXPECTED" ] && ! [[ "$EXPECTED" =~ ^[1-9][0-9]*$ ]]; then
  usage
fi
READY_TIMEOUT="${SMOKE_READY_TIMEOUT:-120}"
TEXT="${SMOKE_TEXT:-inferd smoke test: the quick brown fox jumps over the lazy dog}"
command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

# 1. Readiness: poll until 200 or the deadline (a fresh pod may still be loading).
deadline=$((SECONDS + READY_TIMEOUT))
while :; do
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/readyz" || true)"
  [ "$code" = 200 ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "$BASE/readyz answered ${code:-nothing} (not 200) for ${READY_TIMEOUT}s"
  fi
  sleep 2
done
echo "smoke-test: $BASE/readyz 200"

# 2. One /infer with a single input.
body="$(python3 -c 'import json,sys; print(json.dumps({"inputs": [sys.argv[1]]}))' "$TEXT")"
resp_file="$(mktemp)"
trap 'rm -f "$resp_file"' EXIT
code="$(curl -s -o "$resp_file" -w '%{http_code}' --max-time 30 \
  -H 'content-type: application/json' --data-binary "$body" "$BASE/infer" || true)"
[ "$code" = 200 ] || die "POST $BASE/infer answered ${code:-nothing}: $(head -c 300 "$resp_file")"

# 3. Shape and dimensions.
python3 - "$resp_file" "$EXPECTED" <<'PY' || exit 1
import json, math, sys

path, expected = sys.argv[1], sys.argv[2]
def die(msg):
    print(f"smoke-test: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

try:
    resp = json.load(open(path))
except ValueError as err:
    die(f"/infer did not return JSON: {err}")
emb = resp.get("embeddings")
if not isinstance(emb, list) or len(emb) != 1 or not isinstance(emb[0], list):
    die(f"expected exactly 1 embedding, got {type(emb).__name__} {str(emb)[:80]}")
vec = emb[0]
dims = resp.get("dimensions")
if dims != len(vec):
    die(f"response says dimensions={dims} but the embedding has {len(vec)} values")
if expected and len(vec) != int(expected):
    die(f"embedding has {len(vec)} dimensions, expected {expected}")
if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in vec):
    die("embedding contains non-finite or non-numeric values")
if not any(vec):
    die("embedding is all zeros")
tokens = (resp.get("usage") or {}).get("prompt_tokens", 0)
if not isinstance(tokens, int) or tokens <= 0:
    die(f"usage.prompt_tokens should be > 0, got {tokens!r}")
print(f"smoke-test: /infer 200: model={resp.get('model')} version={resp.get('version')} "
      f"dimensions={len(vec)} prompt_tokens={tokens}")
PY
echo "smoke-test: PASS"
