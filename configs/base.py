"""Defaults for every bertjax pretraining run: BERT-base, phase 1 (seq 128) of the BERT recipe.

Every other config derives from this one and overrides a few fields. Any field can be overridden
from the command line:

  bertjax train --config=configs/base.py --workdir=/tmp/bert --config.learning_rate=2e-4
"""

from pathlib import Path

import ml_collections

# The public-domain sample corpus that ships inside the package (US inaugural addresses,
# State of the Union addresses 1945-2006, Genesis KJV + WEB), read by the same JSON Lines reader
# users point at their own files.
SAMPLE_CORPUS = str(
    Path(__file__).resolve().parent.parent / "bertjax" / "assets" / "corpus" / "*.jsonl.gz"
)

MODEL_SIZES = {
    # name: (num_hidden_layers, hidden_size, num_attention_heads)
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


def set_model_size(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Sets layers/hidden/heads/intermediate (4H) for one of MODEL_SIZES, in place."""
    if name not in MODEL_SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(MODEL_SIZES)}")
    layers, hidden, heads = MODEL_SIZES[name]
    config.model_size = name
    config.num_hidden_layers = layers
    config.hidden_size = hidden
    config.num_attention_heads = heads
    config.intermediate_size = 4 * hidden
    return config


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    # --- Data -------------------------------------------------------------------------------
    config.corpus = SAMPLE_CORPUS  # comma-separated files/globs: .jsonl[.gz] or .txt[.gz]
    config.text_field = "text"  # JSON Lines field that holds a document's text
    config.vocab_dir = ""  # directory with vocab.txt; "" = train one from the corpus (cached)
    config.vocab_size = 30522  # target size when a vocabulary is trained
    config.lowercase = True  # uncased vocabulary and tokenization
    config.cache_dir = ""  # where trained vocabularies are cached; "" = ~/.cache/bertjax
    config.max_seq_length = 128  # tokens per example, [CLS] and [SEP]s included
    config.max_predictions_per_seq = 20  # cap on masked positions per example
    config.masked_lm_prob = 0.15  # fraction of non-special tokens selected for prediction
    config.short_seq_prob = 0.1  # probability of a shorter random target length
    config.dupe_factor = 5  # passes over the corpus, each with a fresh pairing of sentences
    config.seed = 0  # seeds data order, masks, pairing, parameter init and dropout
    config.masking = "token"  # masked-LM unit: "token" (BERT), "whole_word", "span" (n-gram words)
    config.max_ngram = 10  # masking="span": longest span, in words (SpanBERT: 10)
    config.span_distribution = "geometric"  # masking="span": "geometric" or "uniform" 1..max_ngram
    config.span_geometric_p = 0.2  # masking="span": P(n words) ~ p(1-p)^(n-1) (SpanBERT: 0.2)
    config.packing = False  # MLM only: documents packed into full rows, no NSP (model must mask)
    config.text_format = "sentences"  # .txt: "sentences" (google format) or "paragraphs"
    config.prepared_dir = ""  # output of `bertjax prepare`: stream its shards instead of corpus
    # True: each process reads only its own files of `corpus`, tokenizes, pairs and masks on the
    # fly; no in-memory build, no prepare step; for corpora too big for memory
    config.streaming = False
    config.stream_chunk_documents = 2048  # streaming: documents tokenized and paired together

    # --- Held-out evaluation (fixed masks: the same positions every time) -------------------
    # Documents of `corpus` held out from training (chosen by a hash of their text), or
    # separate files in `eval_corpus` (then nothing is held out of `corpus`).
    config.eval_holdout_fraction = 0.0
    config.eval_corpus = ""
    config.eval_every = 0  # steps between evaluations during training; 0 = never
    config.eval_examples = 2048  # held-out instances evaluated (rounded down to whole batches)
    config.eval_batch_size = 64
    config.eval_seed = 12345  # fixes the evaluation masks and sentence pairs

    # --- Model ------------------------------------------------------------------------------
    set_model_size(config, "base")
    # directory from `bertjax import` or a training workdir: start from its parameters
    config.init_from = ""
    config.max_position_embeddings = 512
    config.type_vocab_size = 2
    config.hidden_dropout_prob = 0.1
    config.attention_probs_dropout_prob = 0.1
    config.initializer_range = 0.02
    config.layer_norm_placement = "post"  # "post" (BERT) or "pre" (LayerNorm before each block)
    # "absolute" (BERT: learned table) or "relative_key" (learned vector per query-key distance)
    config.position_embedding_type = "absolute"
    # "normal" (BERT); "sinusoidal" (absolute: scaled sinusoids); "local" (relative: ALiBi-like)
    config.position_embedding_init = "normal"
    config.attention_init = "normal"  # "normal" (BERT) or "mimetic" (QK ~ identity, VO ~ -identity)
    config.layer_norm_eps = 1e-12
    config.dtype = "float32"  # compute dtype of activations and matmuls (parameters stay float32)
    config.remat_policy = "none"  # per-layer rematerialisation: "none", "full", "dots_saveable"
    config.scan_layers = False  # nnx.scan over stacked layers: compile time independent of depth
    # Attention kernel: "auto" = chosen from the backend (cuDNN flash attention on NVIDIA GPUs in
    # bf16/fp16, Pallas splash on TPU, XLA otherwise); "xla", "cudnn", "splash" force one.
    config.attention_implementation = "auto"

    # --- Optimisation -----------------------------------------------------------------------
    config.batch_size = 256  # global batch per optimizer step, over all processes and devices
    config.grad_accum_steps = 1  # microbatches per step (gradients summed): batch_size/this each
    config.num_train_steps = 900_000
    config.warmup_steps = 10_000
    config.optimizer = "adamw"  # "adamw" (BERT) or "lamb" (large-batch recipe of You et al. 2019)
    config.learning_rate = 1e-4  # peak, reached at the end of warmup, then linear decay to zero
    config.weight_decay = 0.01  # AdamW decoupled decay, not applied to LayerNorm or biases
    config.adam_b1 = 0.9
    config.adam_b2 = 0.999
    config.adam_eps = 1e-6
    config.max_grad_norm = 1.0  # global-norm clipping; 0 disables

    # --- Parallelism ------------------------------------------------------------------------
    # Mesh axis sizes; -1 takes the devices the other axes leave. Product must equal device count.
    config.mesh_shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    # Multi-slice TPU (or multi-process CPU): slices along each axis, joined by the data-center
    # network; mesh_shape is then the shape inside one slice. Usually only "data" is > 1.
    config.dcn_mesh_shape = ml_collections.ConfigDict({"data": 1, "fsdp": 1, "tensor": 1})
    # Logical axis name -> mesh axes. Parameters and activations name their axes; only this
    # table decides how they are split.
    config.logical_axis_rules = [
        ("batch", ("data", "fsdp")),
        ("length", None),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv", None),
        ("vocab", "tensor"),
        ("norm", None),
        ("type_vocab", None),
        ("position", None),
        ("classes", None),
        ("layers", None),  # the stacked-layer axis of scan_layers
    ]

    # --- Loop -------------------------------------------------------------------------------
    config.log_every = 100  # steps between metric lines (JSONL + TensorBoard)
    config.checkpoint_every = 10_000  # steps between checkpoints (one is always saved at the end)
    config.keep_checkpoints = 3  # newest checkpoints kept on disk
    config.keep_checkpoint_period = 0  # also keep every step divisible by this forever; 0 = off
    # NaN/Inf loss or gradients: the update is always skipped and counted; "stop" also ends the
    # run (with a checkpoint of the last good state) after max_consecutive_nonfinite in a row.
    config.nonfinite_policy = "skip"  # "skip" or "stop"
    config.max_consecutive_nonfinite = 10
    config.progress_bar = True
    return config
