"""The Infinity peer (PyPI `infinity-emb`, its own venv .venv-infinity, `setup.sh --infinity`):
`infinity_emb v2` on 127.0.0.1, measured like inferd (inferd_http.Server: /proc RSS and CPU,
loadgen with `--openai MODEL` for its OpenAI-style `POST /embeddings`)."""
import json
import shlex

from common import OUT, ROOT, machine_info
from inferd_http import Server, http

VENV = ROOT / ".venv-infinity"
BIN = VENV / "bin" / "infinity_emb"
# torch engine (sentence-transformers inside), bfloat16 on AMX CPUs (f32 elsewhere), batches of
# up to 32, one process; see README.md "Infinity" for why.
DTYPE = "bfloat16" if "amx_bf16" in machine_info().get("simd", []) else "float32"
FLAGS = ["--engine", "torch", "--device", "cpu", "--dtype", DTYPE, "--batch-size", "32",
         "--no-bettertransformer", "--model-warmup"]


def available():
    return BIN.exists()


class InfinityServer(Server):
    name = "infinity"
    ready_path = "/health"
    info_path = "/models"
    embed_path = "/embeddings"

    def command(self, args, model, port, binary):
        self.served = model.name
        self.loadgen_args = ("--openai", self.served)
        return [str(BIN), "v2", "--model-id", str(model), "--served-model-name", self.served,
                "--host", "127.0.0.1", "--port", str(port), *(shlex.split(args.infinity_args) or FLAGS)]

    def environ(self, args):
        from run import peer_env

        env = peer_env(args.threads)
        # no telemetry, no Hub: the model is a local directory; caches stay under target/
        env.update(INFINITY_ANONYMOUS_USAGE_STATS="0", DO_NOT_TRACK="1", HF_HOME=str(OUT / "infinity-hf"))
        return env

    def embed(self, texts):
        status, body = http(self.base + self.embed_path, {"model": self.served, "input": texts})
        if status != 200:
            raise SystemExit(f"infinity /embeddings HTTP {status}: {body[:300]!r}")
        return [d["embedding"] for d in sorted(json.loads(body)["data"], key=lambda d: d["index"])]
