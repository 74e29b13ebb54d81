"""Writes tiny random models of every architecture inferd serves, and their reference vectors.

Each model is built by transformers itself from a config with a few layers and heads, its own
init with a wide initializer range, then every bias, norm weight and (for MPNet) the relative
attention bias is perturbed so that a missing or misplaced piece moves the output far. The
directory is saved with `save_pretrained` and completed with the sentence-transformers module
files and the MiniLM tokenizer (one WordPiece tokenizer works for every family here; the config's
vocab_size is set to its vocabulary). The reference vectors are sentence-transformers' own
`encode` on that directory, f32 on CPU.

It also writes tiny sequence-classification models (rerankers and classifiers: BERT, XLM-R and
ModernBERT heads, see `classifier_configs`) with transformers' reference logits on fixed texts and
(query, text) pairs in `reference.json` beside each, for `tests/rerank/`.

Besides the models, it writes "sharpness" variants that a correct server must NOT match to the
original's reference: the XLM-R model relabelled as BERT (no position offset, what inferd used to
do), the MPNet model with its relative attention bias zeroed, ModernBERT with its local layers'
rotary base or its sliding window wrong (`modernbert_variants`, which also writes the same
ModernBERT in the transformers 4.x config spelling, which must match), Qwen3 with a wrong rotary
base, attending both ways or with its query heads regrouped (`qwen3_variants`, with the 4.x
spelling and the bidirectional copy's own reference, which must match), and two rerankers with a
head detail undone (`head_sharp_variants`). The Rust suite
`tests/architectures/` serves each directory and checks parity (and the variants' failure).

    scripts/tiny-models.sh            # venv + this script into target/tiny-models
    python scripts/tiny-models.py OUT_DIR
"""

import json
import pathlib
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"
FIXTURE = ROOT / "tests" / "fixtures" / "reference.jsonl"

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 64, 2, 4, 128
# Wide enough that every term matters, narrow enough that attention is not one-hot (at 0.5 the
# scaled scores have a standard deviation near 16 and the softmax saturates, which hides
# attention bugs instead of exposing them).
INIT_RANGE = 0.3
MAX_SEQ_LENGTH = 256

MODULES_TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}


def texts():
    """Short, long (200+ tokens) and edge-case texts from the MiniLM reference fixture."""
    rows = [json.loads(line)["text"] for line in FIXTURE.read_text().splitlines()]
    short = [t for t in rows if len(t) < 120][:12]
    long = [t for t in rows if len(t) > 900][:10]
    return short + long + rows[-6:]


def family_configs(vocab_size):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        initializer_range=INIT_RANGE,
        hidden_act="gelu",
    )
    roberta_like = dict(common, max_position_embeddings=MAX_SEQ_LENGTH + 2 + 8, pad_token_id=1, type_vocab_size=1)
    return {
        "bert": (
            transformers.BertConfig(**common, max_position_embeddings=MAX_SEQ_LENGTH + 8, type_vocab_size=2, pad_token_id=0),
            transformers.BertModel,
        ),
        "roberta": (transformers.RobertaConfig(**roberta_like), transformers.RobertaModel),
        "xlm-roberta": (transformers.XLMRobertaConfig(**roberta_like), transformers.XLMRobertaModel),
        "camembert": (transformers.CamembertConfig(**roberta_like), transformers.CamembertModel),
        "distilbert": (
            transformers.DistilBertConfig(
                vocab_size=vocab_size,
                dim=HIDDEN,
                n_layers=LAYERS,
                n_heads=HEADS,
                hidden_dim=INTERMEDIATE,
                max_position_embeddings=MAX_SEQ_LENGTH + 8,
                initializer_range=INIT_RANGE,
                activation="gelu",
                pad_token_id=0,
            ),
            transformers.DistilBertModel,
        ),
        "mpnet": (
            transformers.MPNetConfig(**common, max_position_embeddings=MAX_SEQ_LENGTH + 2 + 8, pad_token_id=1),
            transformers.MPNetModel,
        ),
        "modernbert": (transformers.ModernBertConfig(**modernbert_config(vocab_size)), transformers.ModernBertModel),
        "modernbert-biased": (
            transformers.ModernBertConfig(**modernbert_config(vocab_size), norm_bias=True, attention_bias=True, mlp_bias=True),
            transformers.ModernBertModel,
        ),
        "qwen3": (transformers.Qwen3Config(**qwen3_config(vocab_size)), transformers.Qwen3Model),
        "qwen3-biased": (transformers.Qwen3Config(**qwen3_config(vocab_size), attention_bias=True), transformers.Qwen3Model),
    }


# ModernBERT's sliding window (the band is +-LOCAL_ATTENTION / 2), far shorter than the long texts.
LOCAL_ATTENTION = 16


def modernbert_config(vocab_size):
    """Four layers: 0 and 3 global, 1 and 2 local (every third global), two rotary bases. The
    special token ids are MiniLM's (transformers warns about ids outside the vocabulary)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=4,
        num_attention_heads=HEADS,
        intermediate_size=96,
        initializer_range=INIT_RANGE,
        hidden_activation="gelu",
        max_position_embeddings=MAX_SEQ_LENGTH + 8,
        local_attention=LOCAL_ATTENTION,
        global_attn_every_n_layers=3,
        global_rope_theta=160_000.0,
        local_rope_theta=10_000.0,
        pad_token_id=0,
        bos_token_id=101,
        cls_token_id=101,
        eos_token_id=102,
        sep_token_id=102,
    )


# Qwen3's rotary base here; the sharpness variant uses Qwen3's own default (1e6) instead.
QWEN3_THETA = 10_000.0
# Qwen3-Embedding's query prompt (its config_sentence_transformers.json has the same shape).
QWEN3_PROMPTS = {"query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:", "document": ""}


def qwen3_config(vocab_size):
    """Three layers, grouped-query attention (4 query heads sharing 2 K/V heads), heads 24 wide
    (not hidden / heads = 16), causal, rotary, RMSNorm with q/k norms, SwiGLU. No sliding window
    (Qwen3-Embedding has none)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        head_dim=24,
        intermediate_size=96,
        hidden_act="silu",
        initializer_range=INIT_RANGE,
        max_position_embeddings=MAX_SEQ_LENGTH + 8,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": QWEN3_THETA},
        use_sliding_window=False,
        tie_word_embeddings=False,
        pad_token_id=0,
    )


# What each family's sentence-transformers pipeline looks like: pooling modes (in order), a
# 2_Dense layer (out features, activation) or None, Normalize, prompts.
PIPELINES = {
    "bert": dict(pooling=["cls"], dense=(48, "torch.nn.modules.activation.Tanh"), normalize=True),
    "roberta": dict(pooling=["max"], dense=None, normalize=False),
    "xlm-roberta": dict(
        pooling=["mean"],
        dense=None,
        normalize=True,
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name="query",
    ),
    "camembert": dict(pooling=["mean_sqrt_len_tokens"], dense=None, normalize=False),
    "distilbert": dict(pooling=["lasttoken"], dense=(32, "torch.nn.modules.linear.Identity"), normalize=True),
    "mpnet": dict(pooling=["mean", "cls"], dense=None, normalize=True, prompts={"query": "Represent this: "}),
    "modernbert": dict(pooling=["mean"], dense=None, normalize=True),
    "modernbert-biased": dict(pooling=["cls"], dense=None, normalize=False),
    # Qwen3-Embedding: last-token pooling, Normalize, an instruction prompt for queries; its
    # tokenizer pads on the left (`padding_side`), so the reference batches are left-padded.
    "qwen3": dict(pooling=["lasttoken"], dense=None, normalize=True, prompts=QWEN3_PROMPTS, padding_side="left"),
    "qwen3-biased": dict(pooling=["lasttoken"], dense=None, normalize=False),
}


def perturb(model, generator):
    """Non-zero biases, norm weights away from 1, and a relative bias as large as the scores."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_attention_bias.weight"):
                p.copy_(torch.randn(p.shape, generator=generator) * 2.0)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
            elif "LayerNorm" in name or "layer_norm" in name or name.endswith("norm.weight"):
                p.copy_(1.0 + torch.randn(p.shape, generator=generator) * 0.3)


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def sentence_files(out, pipeline, hidden, generator):
    modules = [MODULES_TRANSFORMER, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    write_json(out / "1_Pooling" / "config.json", {"embedding_dimension": hidden, "pooling_mode": pipeline["pooling"], "include_prompt": True})
    width = hidden * len(pipeline["pooling"])
    if pipeline["dense"]:
        features, activation = pipeline["dense"]
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        write_json(
            out / "2_Dense" / "config.json",
            {"in_features": width, "out_features": features, "bias": True, "activation_function": activation},
        )
        weights = {
            "linear.weight": torch.randn((features, width), generator=generator) * (1.0 / width**0.5),
            "linear.bias": torch.randn((features,), generator=generator) * 0.5,
        }
        save_file(weights, str(out / "2_Dense" / "model.safetensors"))
    if pipeline["normalize"]:
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize", "type": "sentence_transformers.models.Normalize"})
    write_json(out / "modules.json", modules)
    write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    write_json(
        out / "config_sentence_transformers.json",
        {"prompts": pipeline.get("prompts", {}), "default_prompt_name": pipeline.get("default_prompt_name"), "similarity_fn_name": "cosine"},
    )


def copy_tokenizer(out, padding_side=None):
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        shutil.copy(MINILM / name, out / name)
    if padding_side:
        config = json.loads((out / "tokenizer_config.json").read_text())
        config["padding_side"] = padding_side
        write_json(out / "tokenizer_config.json", config)


def references(out, pipeline, inputs):
    """sentence-transformers' vectors for every text, with each prompt (and the default)."""
    model = SentenceTransformer(str(out), device="cpu")
    cases = [None] + sorted(pipeline.get("prompts", {}))
    rows = []
    for prompt_name in cases:
        vectors = model.encode(inputs, prompt_name=prompt_name, batch_size=8, convert_to_numpy=True)
        for text, vector in zip(inputs, vectors):
            rows.append({"text": text, "prompt_name": prompt_name, "embedding": [float(x) for x in vector]})
    (out / "reference.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def sharp_variants(root):
    """Directories a correct server must not match to their originals' references."""
    # XLM-R relabelled as BERT: what inferd did before it knew XLM-R (positions from 0).
    as_bert = root / "xlm-roberta-as-bert"
    shutil.copytree(root / "xlm-roberta", as_bert)
    config = json.loads((as_bert / "config.json").read_text())
    config["model_type"], config["architectures"] = "bert", ["BertModel"]
    write_json(as_bert / "config.json", config)
    # MPNet without its relative attention bias.
    no_bias = root / "mpnet-no-relative-bias"
    shutil.copytree(root / "mpnet", no_bias)
    weights = load_file(str(no_bias / "model.safetensors"))
    names = [n for n in weights if n.endswith("relative_attention_bias.weight")]
    assert names, "MPNet weights carry no relative_attention_bias"
    for n in names:
        weights[n] = torch.zeros_like(weights[n])
    save_file(weights, str(no_bias / "model.safetensors"), metadata={"format": "pt"})
    modernbert_variants(root)
    qwen3_variants(root)


def modernbert_variants(root):
    """ModernBERT copies rewritten in config.json only. `modernbert-v4-config` spells the same
    model the transformers 4.x way (`global_attn_every_n_layers`, `global_rope_theta`,
    `local_rope_theta`, no `layer_types` / `rope_parameters`) and MUST match the original; the
    others are bugs that must not: the local layers' rotary base taken from the global layers,
    and the sliding window ignored (every layer attends to the whole sequence)."""

    def variant(name, edit):
        out = root / name
        shutil.copytree(root / "modernbert", out)
        config = json.loads((out / "config.json").read_text())
        edit(config)
        write_json(out / "config.json", config)

    def v4(config):
        config["global_rope_theta"] = config["rope_parameters"]["full_attention"]["rope_theta"]
        config["local_rope_theta"] = config["rope_parameters"]["sliding_attention"]["rope_theta"]
        every = [i for i, t in enumerate(config["layer_types"]) if t == "full_attention"]
        assert every[:2] == [0, 3], every
        config["global_attn_every_n_layers"] = 3
        del config["layer_types"], config["rope_parameters"]

    def local_theta_as_global(config):
        theta = config["rope_parameters"]["full_attention"]["rope_theta"]
        config["rope_parameters"]["sliding_attention"]["rope_theta"] = theta
        config["local_rope_theta"] = theta

    def window_ignored(config):
        config["local_attention"] = 4 * MAX_SEQ_LENGTH

    variant("modernbert-v4-config", v4)
    # transformers itself must read the 4.x spelling as the same model.
    inputs = [json.loads(line)["text"] for line in (root / "modernbert" / "reference.jsonl").read_text().splitlines()]
    want = SentenceTransformer(str(root / "modernbert"), device="cpu").encode(inputs, convert_to_tensor=True)
    got = SentenceTransformer(str(root / "modernbert-v4-config"), device="cpu").encode(inputs, convert_to_tensor=True)
    assert torch.allclose(want, got, atol=1e-5), "transformers reads the 4.x ModernBERT config differently"
    variant("modernbert-local-theta-as-global", local_theta_as_global)
    variant("modernbert-window-ignored", window_ignored)


def qwen3_variants(root):
    """Qwen3 copies. `qwen3-v4-config` spells the same model the transformers 4.x way (top-level
    `rope_theta`, no `rope_parameters` / `layer_types`) and MUST match the original; the others
    must not match the original's reference:
    - `qwen3-wrong-rope-theta`: the rotary base set to Qwen3's default (1e6) instead of 1e4;
    - `qwen3-bidirectional`: `is_causal: false` (transformers then attends both ways): what a
      server that forgets the causal mask computes on the original;
    - `qwen3-kv-groups-interleaved`: query heads reordered (q_proj rows, q_norm shared, o_proj
      columns) so that a correct server computes on it exactly what a server pairing query head
      `h` with K/V head `h % kv_heads` (instead of `h / (heads / kv_heads)`) computes on the
      original.
    It also checks that the left-padded reference equals one-text-at-a-time encoding (rotary
    attention is shift-invariant, last-token pooling takes the last real token)."""
    source = root / "qwen3"
    inputs = [json.loads(line)["text"] for line in (source / "reference.jsonl").read_text().splitlines()]
    inputs = inputs[: len(inputs) // (1 + len(QWEN3_PROMPTS))]
    model = SentenceTransformer(str(source), device="cpu")
    batched = model.encode(inputs, batch_size=8, convert_to_tensor=True)
    alone = torch.cat([model.encode([t], convert_to_tensor=True) for t in inputs])
    assert model.tokenizer.padding_side == "left", model.tokenizer.padding_side
    assert torch.allclose(batched, alone, atol=1e-4), (batched - alone).abs().max()

    def variant(name, edit=None, weights_edit=None):
        out = root / name
        shutil.copytree(source, out)
        config = json.loads((out / "config.json").read_text())
        if edit:
            edit(config)
            write_json(out / "config.json", config)
        if weights_edit:
            weights = load_file(str(out / "model.safetensors"))
            weights_edit(config, weights)
            save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
        return out

    def v4(config):
        config["rope_theta"] = config["rope_parameters"]["rope_theta"]
        del config["rope_parameters"], config["layer_types"]

    def wrong_theta(config):
        config["rope_parameters"]["rope_theta"] = 1_000_000.0

    def bidirectional(config):
        config["is_causal"] = False

    def interleave_groups(config, weights):
        heads, kv, dim = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
        group = heads // kv
        # Slot s takes the query head a `h % kv` pairing puts with K/V head s // group.
        order = [g * kv + s // group for s in range(heads) for g in [s % group]]
        assert sorted(order) == list(range(heads)) and order != list(range(heads)), order
        for name in [n for n in weights if n.endswith("q_proj.weight")]:
            w = weights[name].reshape(heads, dim, -1)
            weights[name] = w[order].reshape(heads * dim, -1).contiguous()
        for name in [n for n in weights if n.endswith("o_proj.weight")]:
            w = weights[name].reshape(-1, heads, dim)
            weights[name] = w[:, order].reshape(-1, heads * dim).contiguous()

    out = variant("qwen3-v4-config", v4)
    got = SentenceTransformer(str(out), device="cpu").encode(inputs, convert_to_tensor=True)
    assert torch.allclose(batched, got, atol=1e-5), "transformers reads the 4.x Qwen3 config differently"
    variant("qwen3-wrong-rope-theta", wrong_theta)
    out = variant("qwen3-bidirectional", bidirectional)
    got = SentenceTransformer(str(out), device="cpu").encode(inputs, convert_to_tensor=True)
    assert not torch.allclose(batched, got, atol=1e-3), "is_causal: false changed nothing"
    references(out, PIPELINES["qwen3"], inputs)
    variant("qwen3-kv-groups-interleaved", weights_edit=interleave_groups)


# Longest sequence inferd serves for these models (no sentence_bert_config.json): the position
# table, less RoBERTa's offset after the padding id.
HEAD_MAX_LENGTH = MAX_SEQ_LENGTH + 8
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def classifier_configs(vocab_size):
    """Sequence-classification models: (config, class) by directory name."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        initializer_range=INIT_RANGE,
        hidden_act="gelu",
    )
    bert = dict(common, max_position_embeddings=HEAD_MAX_LENGTH, type_vocab_size=2, pad_token_id=0)
    roberta = dict(common, max_position_embeddings=HEAD_MAX_LENGTH + 2, pad_token_id=1, type_vocab_size=1)
    return {
        "bert-reranker": (transformers.BertConfig(**bert, num_labels=1), transformers.BertForSequenceClassification),
        "bert-classifier": (
            transformers.BertConfig(**bert, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}),
            transformers.BertForSequenceClassification,
        ),
        "xlm-roberta-reranker": (
            transformers.XLMRobertaConfig(**roberta, num_labels=1),
            transformers.XLMRobertaForSequenceClassification,
        ),
        # Mean pooling, biases everywhere: every optional part of ModernBERT's head is on.
        "modernbert-reranker": (
            transformers.ModernBertConfig(
                **modernbert_config(vocab_size), num_labels=1, classifier_pooling="mean",
                classifier_bias=True, norm_bias=True,
            ),
            transformers.ModernBertForSequenceClassification,
        ),
        # transformers' defaults: the first token, no biases, GELU.
        "modernbert-classifier": (
            transformers.ModernBertConfig(
                **modernbert_config(vocab_size), id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
            ),
            transformers.ModernBertForSequenceClassification,
        ),
    }


def pairs(inputs):
    """(query, text) pairs: short queries against short and long texts (some over the limit)."""
    short = [t for t in inputs if len(t) < 120]
    long = [t for t in inputs if len(t) > 900]
    return [(q, t) for q in short[:3] for t in short[3:7] + long[:3]]


@torch.no_grad()
def logits(model, tokenizer, firsts, seconds, token_types):
    """transformers' logits, one row per input; pairs are cut longest-first like inferd."""
    rows = []
    for i in range(0, len(firsts), 8):
        batch = [firsts[i : i + 8]] + ([seconds[i : i + 8]] if seconds else [])
        enc = tokenizer(*batch, truncation=True, max_length=HEAD_MAX_LENGTH, padding=True, return_tensors="pt")
        if not token_types:
            enc.pop("token_type_ids", None)  # RoBERTa family: one token type
        rows.extend(model(**enc).logits.tolist())
    return rows


def classifiers(out_root, vocab_size, inputs):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MINILM))
    texts, cases = inputs[:12], pairs(inputs)
    for i, (name, (config, cls)) in enumerate(classifier_configs(vocab_size).items()):
        generator = torch.Generator().manual_seed(2000 + i)
        torch.manual_seed(2000 + i)
        model = cls(config).eval()
        perturb(model, generator)
        out = out_root / name
        model.save_pretrained(str(out))
        copy_tokenizer(out)
        token_types = getattr(config, "type_vocab_size", 1) > 1
        pair_logits = logits(model, tokenizer, [q for q, _ in cases], [t for _, t in cases], token_types)
        text_logits = logits(model, tokenizer, texts, None, token_types)
        reference = {
            "labels": [config.id2label[j] for j in range(config.num_labels)],
            "max_length": HEAD_MAX_LENGTH,
            "pairs": [{"query": q, "text": t, "logits": l} for (q, t), l in zip(cases, pair_logits)],
            "texts": [{"text": t, "logits": l} for t, l in zip(texts, text_logits)],
        }
        write_json(out / "reference.json", reference)
        print(f"{name}: {len(cases)} pairs, {len(texts)} texts, {config.num_labels} labels in {out}")
    head_sharp_variants(out_root)


def head_sharp_variants(root):
    """Rerankers a correct server must not match to their originals' references (which the copy
    carries): BERT with its second token type made equal to the first (what a server that puts
    both texts of a pair in segment 0 computes), XLM-R with its head's dense layer replaced
    by the identity (close to a head without its dense + tanh), and ModernBERT pooled at the
    first token instead of the mean."""
    one_type = root / "bert-reranker-one-token-type"
    shutil.copytree(root / "bert-reranker", one_type)
    weights = load_file(str(one_type / "model.safetensors"))
    name = next(n for n in weights if n.endswith("token_type_embeddings.weight"))
    weights[name][1] = weights[name][0]
    save_file(weights, str(one_type / "model.safetensors"), metadata={"format": "pt"})
    no_dense = root / "xlm-roberta-reranker-identity-head"
    shutil.copytree(root / "xlm-roberta-reranker", no_dense)
    weights = load_file(str(no_dense / "model.safetensors"))
    dense = weights["classifier.dense.weight"]
    weights["classifier.dense.weight"] = torch.eye(dense.shape[0], dtype=dense.dtype)
    weights["classifier.dense.bias"] = torch.zeros_like(weights["classifier.dense.bias"])
    save_file(weights, str(no_dense / "model.safetensors"), metadata={"format": "pt"})
    # ModernBERT read at its first token although its config says mean: what a server that
    # ignores `classifier_pooling` computes.
    first_token = root / "modernbert-reranker-first-token"
    shutil.copytree(root / "modernbert-reranker", first_token)
    config = json.loads((first_token / "config.json").read_text())
    config["classifier_pooling"] = "cls"
    write_json(first_token / "config.json", config)


def main(out_root):
    torch.manual_seed(0)
    out_root = pathlib.Path(out_root)
    if out_root.exists():
        shutil.rmtree(out_root)
    vocab_size = json.loads((MINILM / "config.json").read_text())["vocab_size"]
    inputs = texts()
    for i, (family, (config, cls)) in enumerate(family_configs(vocab_size).items()):
        generator = torch.Generator().manual_seed(1000 + i)
        torch.manual_seed(1000 + i)
        model = cls(config).eval()
        perturb(model, generator)
        out = out_root / family
        model.save_pretrained(str(out))
        copy_tokenizer(out, PIPELINES[family].get("padding_side"))
        sentence_files(out, PIPELINES[family], config.to_dict().get("hidden_size", HIDDEN), generator)
        rows = references(out, PIPELINES[family], inputs)
        print(f"{family}: {len(rows)} reference vectors of {len(rows[0]['embedding'])} in {out}")
    sharp_variants(out_root)
    classifiers(out_root, vocab_size, inputs)
    versions = {m.__name__: m.__version__ for m in [torch, transformers, sys.modules["sentence_transformers"]]}
    write_json(out_root / "versions.json", versions)
    print(f"done: {out_root} {versions}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target" / "tiny-models")
