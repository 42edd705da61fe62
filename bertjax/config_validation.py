"""Checks a config before anything is read or compiled; each problem is a one-line UserError
that names the field and says how to fix it."""

import os
from pathlib import Path

import jax
import ml_collections
from etils import epath

from bertjax import sharding
from bertjax.errors import UserError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def validate_config(config: ml_collections.ConfigDict, workdir=None) -> None:
    """Raises UserError for the first problem found; `workdir` (local or gs://) is created."""
    c = config
    _require(
        c.hidden_size > 0 and c.num_hidden_layers > 0 and c.num_attention_heads > 0,
        "hidden_size, num_hidden_layers and num_attention_heads must be positive",
    )
    _require(
        c.hidden_size % c.num_attention_heads == 0,
        f"hidden_size={c.hidden_size} is not divisible by num_attention_heads="
        f"{c.num_attention_heads}; pick sizes where it is",
    )
    _require(c.intermediate_size > 0, "intermediate_size must be positive (usually 4*hidden_size)")
    _require(
        2 <= c.max_seq_length <= c.max_position_embeddings,
        f"max_seq_length={c.max_seq_length} must be in [2, max_position_embeddings="
        f"{c.max_position_embeddings}]",
    )
    _require(
        0 < c.max_predictions_per_seq <= c.max_seq_length,
        f"max_predictions_per_seq={c.max_predictions_per_seq} must be in "
        f"[1, max_seq_length={c.max_seq_length}]",
    )
    _require(0 < c.masked_lm_prob < 1, f"masked_lm_prob={c.masked_lm_prob} must be in (0, 1)")
    _require(0 <= c.short_seq_prob <= 1, f"short_seq_prob={c.short_seq_prob} must be in [0, 1]")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        _require(0 <= c[name] < 1, f"{name}={c[name]} must be in [0, 1)")
    _require(c.dupe_factor >= 1, f"dupe_factor={c.dupe_factor} must be >= 1")
    _validate_streaming(c)
    _require(c.vocab_size > 5 or c.vocab_dir, f"vocab_size={c.vocab_size} is too small")
    _require(
        c.dtype in ("float32", "bfloat16"),
        f"dtype={c.dtype!r} is not supported; use 'float32' or 'bfloat16'",
    )
    _require(c.batch_size > 0, f"batch_size={c.batch_size} must be positive")
    _validate_eval(c)
    _require(c.log_every > 0, f"log_every={c.log_every} must be positive")
    _require(c.num_train_steps > 0, f"num_train_steps={c.num_train_steps} must be positive")
    _require(
        0 <= c.warmup_steps <= c.num_train_steps,
        f"warmup_steps={c.warmup_steps} must be in [0, num_train_steps={c.num_train_steps}]",
    )
    _require(c.learning_rate > 0, f"learning_rate={c.learning_rate} must be positive")
    _require(c.weight_decay >= 0, f"weight_decay={c.weight_decay} must be >= 0")
    _require(c.max_grad_norm >= 0, f"max_grad_norm={c.max_grad_norm} must be >= 0 (0 disables)")
    _require(
        c.remat_policy in ("none", "full", "dots_saveable"),
        f"remat_policy={c.remat_policy!r} is not one of ('none', 'full', 'dots_saveable')",
    )
    _require(
        c.optimizer in ("adamw", "lamb"),
        f"optimizer={c.optimizer!r} is unknown; use 'adamw' or 'lamb'",
    )
    _require(
        c.nonfinite_policy in ("skip", "stop"),
        f"nonfinite_policy={c.nonfinite_policy!r} is unknown; use 'skip' or 'stop'",
    )
    _require(
        c.max_consecutive_nonfinite >= 1,
        f"max_consecutive_nonfinite={c.max_consecutive_nonfinite} must be >= 1",
    )
    _require(
        c.checkpoint_every > 0 and c.keep_checkpoints > 0 and c.keep_checkpoint_period >= 0,
        "checkpoint_every and keep_checkpoints must be positive, keep_checkpoint_period >= 0",
    )
    _require(
        not c.vocab_dir or (Path(c.vocab_dir) / "vocab.txt").is_file(),
        f"vocab_dir={c.vocab_dir!r} has no vocab.txt; point it at a directory with one or "
        "leave it empty to train a vocabulary",
    )
    if c.vocab_dir:
        vocab_file = Path(c.vocab_dir) / "vocab.txt"
        with vocab_file.open(encoding="utf-8") as f:
            tokens = sum(1 for _ in f)  # one token per line, as the tokenizer reads it
        _require(
            tokens == c.vocab_size,
            f"vocab_size={c.vocab_size} but {vocab_file} has {tokens} tokens; "
            f"set --config.vocab_size={tokens}",
        )
    sizes = dict(
        zip(
            sharding.MESH_AXES,
            sharding.total_axis_sizes(c.mesh_shape, c.get("dcn_mesh_shape"), jax.device_count()),
            strict=True,
        )
    )
    batch_shards = sizes["data"] * sizes["fsdp"]
    _require(
        c.batch_size % batch_shards == 0,
        f"batch_size={c.batch_size} is not divisible by the {batch_shards} data-parallel "
        "shards (data x fsdp); change --config.batch_size",
    )
    _require(
        c.grad_accum_steps >= 1 and c.batch_size % c.grad_accum_steps == 0,
        f"grad_accum_steps={c.grad_accum_steps} must be >= 1 and divide batch_size={c.batch_size}",
    )
    microbatch = c.batch_size // c.grad_accum_steps
    _require(
        microbatch % batch_shards == 0,
        f"the microbatch batch_size/grad_accum_steps={microbatch} is not divisible by the "
        f"{batch_shards} data-parallel shards (data x fsdp); change --config.batch_size or "
        "--config.grad_accum_steps",
    )
    _require(
        c.batch_size % jax.process_count() == 0,
        f"batch_size={c.batch_size} is not divisible by {jax.process_count()} processes",
    )
    if c.get("eval_every", 0):
        _require(
            c.eval_batch_size % batch_shards == 0,
            f"eval_batch_size={c.eval_batch_size} is not divisible by the {batch_shards} "
            "data-parallel shards (data x fsdp); change --config.eval_batch_size",
        )
    if workdir is not None:
        _check_writable(epath.Path(workdir))


def _check_writable(workdir: epath.Path) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or " ".join(str(e).split())[:200]
        raise UserError(
            f"cannot create workdir {workdir}: {reason}; choose another --workdir"
        ) from None
    if not str(workdir).startswith("gs://") and not os.access(workdir, os.W_OK):
        raise UserError(f"workdir {workdir} is not writable; choose another --workdir")


def _validate_streaming(c: ml_collections.ConfigDict) -> None:
    if not c.get("streaming", False):
        return
    _require(
        not c.get("prepared_dir", ""),
        "streaming=True and prepared_dir are two data sources; set one of them "
        "(--config.streaming=False to train from prepared shards)",
    )
    chunk = c.get("stream_chunk_documents", 2048)
    _require(chunk >= 2, f"stream_chunk_documents={chunk} must be >= 2 (NSP pairs need two)")


def _validate_eval(c: ml_collections.ConfigDict) -> None:
    fraction = c.get("eval_holdout_fraction", 0.0)
    _require(0 <= fraction < 1, f"eval_holdout_fraction={fraction} must be in [0, 1), e.g. 0.01")
    every = c.get("eval_every", 0)
    _require(every >= 0, f"eval_every={every} must be >= 0 (0 = no evaluation during training)")
    _require(
        not every or fraction > 0 or c.get("eval_corpus", ""),
        f"eval_every={every} needs held-out data: set --config.eval_holdout_fraction=0.01 or "
        "--config.eval_corpus=FILES",
    )
    batch = c.get("eval_batch_size", 64)
    _require(batch > 0, f"eval_batch_size={batch} must be positive")
    _require(
        c.get("eval_examples", batch) >= batch,
        f"eval_examples={c.get('eval_examples')} must be >= eval_batch_size={batch}",
    )
