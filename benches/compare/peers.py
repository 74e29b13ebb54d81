"""The in-process peers of the comparison harness: sentence-transformers (torch) and ONNX Runtime.

Each subcommand runs in its own process (run.py starts one per system) so that its RSS is its own.

  peers.py export --model DIR --out DIR          export + optimise the ONNX model (cached)
  peers.py bench  --system st|ort --model DIR --plan JSON [--onnx FILE] [--threads N]
  peers.py check  --system st|ort --model DIR --reference tests/fixtures/reference.jsonl [--onnx FILE]

Every result is one JSON line on stdout; logs go to stderr.
"""
import argparse
import hashlib
import json
import os
import pathlib
import sys
import time

import numpy as np

from common import busy_cpu_s


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def proc_mem_mb():
    """(VmHWM, VmRSS) of this process in MiB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                vals[k] = int(v.split()[0]) / 1024.0
    return vals.get("VmHWM", 0.0), vals.get("VmRSS", 0.0)


def max_seq_length(model_dir, default=256):
    p = pathlib.Path(model_dir, "sentence_bert_config.json")
    if p.exists():
        return int(json.loads(p.read_text()).get("max_seq_length", default))
    return default


def batch_tokenizer(model_dir):
    """The model's fast tokenizer for batches: tokenizer.json ships fixed padding (to 128 for
    MiniLM); use dynamic padding (longest in the batch) with the model's pad token and
    truncation at its max_seq_length, as sentence-transformers does."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(pathlib.Path(model_dir, "tokenizer.json")))
    pad = "<pad>" if tok.token_to_id("<pad>") is not None else "[PAD]"
    tok.no_padding()
    tok.enable_padding(pad_id=tok.token_to_id(pad) or 0, pad_token=pad)
    tok.enable_truncation(max_seq_length(model_dir))
    return tok


# ---------------------------------------------------------------------------------------------
# Peers: each exposes embed(list[str]) -> np.ndarray [n, dims], L2-normalised.


class SentenceTransformersPeer:
    name = "sentence-transformers"

    def __init__(self, model_dir, threads, onnx=None):
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.model.max_seq_length = max_seq_length(model_dir)
        self.model.eval()

    def embed(self, texts):
        return self.model.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class SentenceTransformersBf16Peer(SentenceTransformersPeer):
    """The same model cast to bfloat16: torch runs its matmuls through oneDNN, on AMX tiles
    where the CPU has them (logged at load)."""

    name = "sentence-transformers-bf16"

    def __init__(self, model_dir, threads, onnx=None):
        import torch

        super().__init__(model_dir, threads, onnx)
        self.model = self.model.to(torch.bfloat16)
        log(
            f"{self.name}: mkldnn available {torch.backends.mkldnn.is_available()}, "
            f"bf16 supported {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, "
            f"cpu capability {torch.backends.cpu.get_cpu_capability()}"
        )

    def embed(self, texts):
        import torch

        with torch.inference_mode():
            out = self.model.encode(
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        return out.float().cpu().numpy()


class OrtPeer:
    name = "onnxruntime"

    def __init__(self, model_dir, threads, onnx=None):
        import onnxruntime as ort

        if not onnx:
            raise SystemExit("--onnx is required for the ort peer (run `peers.py export` first)")
        self.tok = batch_tokenizer(model_dir)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}

    def embed(self, texts):
        encs = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        hidden = self.sess.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


class OpenVinoPeer(OrtPeer):
    """OpenVINO on the plain ONNX export, at its default CPU precision (bf16 on AMX CPUs,
    logged at load), with the same tokenizer and mean pooling as the ORT peer."""

    name = "openvino"

    def __init__(self, model_dir, threads, onnx=None):
        import openvino as ov

        if not onnx:
            raise SystemExit("--onnx (the plain export) is required for the ov peer")
        self.tok = batch_tokenizer(model_dir)
        core = ov.Core()
        model = core.read_model(str(onnx))
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.inputs = {i.get_any_name() for i in self.compiled.inputs}
        log(f"{self.name} {ov.__version__}: inference precision {self.compiled.get_property('INFERENCE_PRECISION_HINT')}")

        class Sess:
            def run(_, names, feed):
                res = self.request.infer(feed)
                return [res[self.compiled.output(0)]]

        self.sess = Sess()


PEERS = {
    "st": SentenceTransformersPeer,
    "st-bf16": SentenceTransformersBf16Peer,
    "ort": OrtPeer,
    "ov": OpenVinoPeer,
}


# ---------------------------------------------------------------------------------------------
# export


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_export(a):
    import onnx
    import onnxruntime
    import torch

    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = next(
        (p for p in (pathlib.Path(a.model, n) for n in ("model.safetensors", "pytorch_model.bin")) if p.exists()),
        None,
    )
    if weights is None:
        raise SystemExit(f"no model.safetensors in {a.model}")
    key = {
        "weights_sha256": sha256_file(weights),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": a.opset,
    }
    meta_path = out / "meta.json"
    opt_path = out / "model.opt.onnx"
    if not a.force and meta_path.exists() and opt_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            log(f"export: cached {opt_path}")
            print(json.dumps({"onnx": str(opt_path), "raw": str(out / "model.onnx"), "fused": meta["fused"], "cached": True}))
            return

    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(a.model)
    base = AutoModel.from_pretrained(a.model, attn_implementation="eager").eval()

    import inspect

    with_types = "token_type_ids" in inspect.signature(base.forward).parameters

    class Encoder(torch.nn.Module):
        """Positional (input_ids, attention_mask[, token_type_ids]) -> last_hidden_state."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, *types):
            extra = {"token_type_ids": types[0]} if types else {}
            return self.m(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    enc = Encoder(base).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    raw_path = out / "model.onnx"
    t0 = time.time()
    with torch.no_grad():
        # The TorchScript-based exporter: its graph is the one onnxruntime's BERT fusion matches.
        torch.onnx.export(
            enc,
            (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if with_types else ()),
            str(raw_path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]},
            opset_version=a.opset,
            do_constant_folding=True,
            dynamo=False,
        )
    log(f"export: torch.onnx.export took {time.time() - t0:.1f}s")

    from onnxruntime.transformers.optimizer import optimize_model

    if cfg.model_type != "bert":
        # onnxruntime's transformer fusion knows BERT's graph only; other families run unfused.
        import shutil

        shutil.copy(raw_path, opt_path)
        meta_path.write_text(json.dumps({"key": key, "fused": {"fused_ops": {}, "graph_ops": {}}}, indent=1))
        print(json.dumps({"onnx": str(opt_path), "raw": str(raw_path), "fused": {"fused_ops": {}}, "cached": False}))
        return
    opt = optimize_model(
        str(raw_path),
        model_type="bert",
        num_heads=cfg.num_attention_heads,
        hidden_size=cfg.hidden_size,
        opt_level=1,
        use_gpu=False,
    )
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    ops = {}
    for n in opt.model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    opt.save_model_to_file(str(opt_path))
    fused = {"fused_ops": stats, "graph_ops": ops}
    layers = cfg.num_hidden_layers
    if stats.get("Attention", 0) != layers or stats.get("SkipLayerNormalization", 0) < layers:
        log(f"export: WARNING fusion incomplete for {layers} layers: {stats}")
    meta_path.write_text(json.dumps({"key": key, "fused": fused}, indent=1))
    log(f"export: fused ops {stats}")
    print(json.dumps({"onnx": str(opt_path), "raw": str(raw_path), "fused": fused, "cached": False}))


# ---------------------------------------------------------------------------------------------
# bench


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else None


def run_config(peer, texts, concurrency, duration, warmup, max_calls):
    """concurrency 1: one text per call, sequential. concurrency > 1: batches of `concurrency`
    texts, sorted by length (longest first, as sentence-transformers orders them)."""
    if concurrency <= 1:
        units = [[t] for t in texts]
    else:
        order = sorted(texts, key=len, reverse=True)
        units = [order[i : i + concurrency] for i in range(0, len(order), concurrency)]
    i = 0
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end or i == 0:
        peer.embed(units[i % len(units)])
        i += 1
    lat = []
    n_texts = 0
    cpu0 = time.process_time()
    all0 = busy_cpu_s()
    start = time.perf_counter()
    deadline = start + duration
    i = 0
    while True:
        u = units[i % len(units)]
        t0 = time.perf_counter()
        peer.embed(u)
        t1 = time.perf_counter()
        lat.append((t1 - t0) * 1000.0)
        n_texts += len(u)
        i += 1
        # whole passes over the set when they fit in the time, so every system sees the same mix
        if t1 >= deadline and (i % len(units) == 0 or t1 >= deadline + duration) or i >= max_calls:
            break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    others = busy_cpu_s() - all0 - cpu
    return {
        "cores": round(cpu / elapsed, 2),
        # cores used by every other process meanwhile: > ~0.2 means the row was disturbed
        "others_cores": round(max(0.0, others) / elapsed, 2),
        "calls": len(lat),
        "texts": n_texts,
        "seconds": elapsed,
        "texts_per_s": n_texts / elapsed,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "mean_ms": float(np.mean(lat)),
    }


def cmd_bench(a):
    t0 = time.time()
    peer = PEERS[a.system](a.model, a.threads, a.onnx)
    peer.embed(["warm up"])
    load_s = time.time() - t0
    plan = json.loads(a.plan)
    hwm, rss = proc_mem_mb()
    log(f"{peer.name}: loaded in {load_s:.1f}s, RSS {rss:.0f} MB")
    for cfg in plan:
        texts = pathlib.Path(cfg["texts"]).read_text().splitlines()
        r = run_config(
            peer,
            texts,
            cfg["concurrency"],
            cfg["duration"],
            cfg["warmup"],
            cfg.get("max_calls", 10**9),
        )
        hwm, rss = proc_mem_mb()
        r.update(
            system=a.system,
            set=cfg["set"],
            concurrency=cfg["concurrency"],
            peak_rss_mb=hwm,
            rss_mb=rss,
            load_s=load_s,
            threads=a.threads,
        )
        log(
            f"{peer.name} {cfg['set']} c{cfg['concurrency']}: {r['texts_per_s']:.1f} texts/s "
            f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms peak RSS {hwm:.0f} MB (others {r['others_cores']} cores busy)"
        )
        print(json.dumps(r), flush=True)


# ---------------------------------------------------------------------------------------------
# check


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cmd_check(a):
    peer = PEERS[a.system](a.model, a.threads, a.onnx)
    rows = [json.loads(l) for l in pathlib.Path(a.reference).read_text().splitlines() if l.strip()]
    texts = [r["text"] for r in rows]
    ref = np.array([r["embedding"] for r in rows])
    single = np.vstack([peer.embed([t]) for t in texts])
    # batches of 32 in length order, like the c32 benchmark; mapped back to input order
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    batched = np.zeros_like(single)
    for s in range(0, len(order), 32):
        idx = order[s : s + 32]
        batched[idx] = peer.embed([texts[i] for i in idx])
    cs, cb = cosines(single, ref), cosines(batched, ref)
    worst = int(np.argmin(np.minimum(cs, cb)))
    out = {
        "system": a.system,
        "texts": len(texts),
        "min_cos_single": float(cs.min()),
        "mean_cos_single": float(cs.mean()),
        "min_cos_batch32": float(cb.min()),
        "mean_cos_batch32": float(cb.mean()),
        "worst_text": texts[worst][:80],
        "pass": bool(min(cs.min(), cb.min()) >= a.threshold),
    }
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--model", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--force", action="store_true")
    for name in ("bench", "check"):
        p = sub.add_parser(name)
        p.add_argument("--system", choices=sorted(PEERS), required=True)
        p.add_argument("--model", required=True)
        p.add_argument("--onnx")
        p.add_argument("--threads", type=int, default=os.cpu_count())
        if name == "bench":
            p.add_argument("--plan", required=True, help="JSON list of configs")
        else:
            p.add_argument("--reference", required=True)
            p.add_argument("--threshold", type=float, default=0.999)
    a = ap.parse_args()
    {"export": cmd_export, "bench": cmd_bench, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
