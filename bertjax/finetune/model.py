"""BERT encoder + one task head, and loading the encoder from a pretrained model directory.

Heads (Hugging Face's BertFor* equivalents): classification (multilabel: the same head, one
sigmoid per label; regression: one output) on the pooled [CLS] output (dropout + dense; with
pooling="mean", on the mean of the final hidden states over the real tokens instead, for an
encoder whose [CLS] no objective trained: MLM-only packed pretraining), tagging on every
position (dropout + dense), QA start/end logits on every position (dense with 2 outputs),
multiple choice one score per choice (each choice a row: the classification head with one
output, BertForMultipleChoice's). Parameters are a pure dict {"bert": ..., "head": ...}; "bert"
has the pretraining checkpoint's layout, so it is taken over unchanged.

The sequence-level kinds (classification, multilabel, regression, multiple choice) have two
heads (`sequence_head`): "pooler", BERT's (the encoder's tanh pooler, trained by next-sentence
prediction, then dropout + dense), and "gelu" (dropout, a fresh dense layer, exact GELU,
dropout, dense: `GeluHead`), which reads the first token's (or the mean) hidden state and does
not use the pooler: what Hugging Face's Electra and RoFormer sequence classes compute, so those
fine-tunes export (convert/task_heads.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental.multihost_utils import sync_global_devices

from bertjax import checkpointing, paths
from bertjax.convert import model_dir
from bertjax.finetune.choice_records import KIND as CHOICE_KIND
from bertjax.finetune.choice_records import POOLED_KINDS
from bertjax.models.bert import BertConfig, BertModel, unstack_layers
from bertjax.models.dropout import Dropout
from bertjax.models.encoder import gelu


class GeluHead(nnx.Module):
    """Hugging Face's Electra and RoFormer sequence head: dropout, dense H -> H, exact GELU,
    dropout, dense H -> outputs (their `classifier.dense`, `classifier.out_proj`)."""

    def __init__(self, hidden_size: int, num_outputs: int, rate: float, init, *, rngs: nnx.Rngs):
        self.dropout = Dropout(rate)
        self.dense = nnx.Linear(hidden_size, hidden_size, kernel_init=init, rngs=rngs)
        self.out_proj = nnx.Linear(hidden_size, num_outputs, kernel_init=init, rngs=rngs)

    def __call__(self, features: jax.Array, *, deterministic: bool, rngs) -> jax.Array:
        hidden = self.dropout(features, deterministic=deterministic, rngs=rngs)
        hidden = gelu(self.dense(hidden))
        hidden = self.dropout(hidden, deterministic=deterministic, rngs=rngs)
        return self.out_proj(hidden)


class BertForFinetuning(nnx.Module):
    def __init__(
        self,
        config: BertConfig,
        kind: str,
        num_outputs: int,
        *,
        pooling: str = "cls",
        sequence_head: str = "pooler",
        rngs: nnx.Rngs,
    ):
        self.kind = kind
        self.pooling = pooling
        self.gelu_head = kind in POOLED_KINDS and sequence_head == "gelu"
        self.bert = BertModel(config, rngs=rngs)
        self.dropout = Dropout(config.hidden_dropout_prob)
        init = nnx.initializers.normal(config.initializer_range)
        hidden, rate = config.hidden_size, config.hidden_dropout_prob
        self.head = (
            GeluHead(hidden, num_outputs, rate, init, rngs=rngs)
            if self.gelu_head
            else nnx.Linear(hidden, num_outputs, kernel_init=init, rngs=rngs)
        )

    def __call__(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        input_mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Logits, float32: [B, C] (classification, multilabel; regression: C = 1, the number),
        [B, L, C] (tagging), [B, L, 2] (QA), [B, C] (multiple choice: inputs [B, C, L], a row
        per choice)."""
        if self.kind == CHOICE_KIND:  # the choices' rows as one batch, a score each
            rows = input_ids.shape[:2]
            flat = (x.reshape(-1, x.shape[-1]) for x in (input_ids, segment_ids, input_mask))
            return self._logits(*flat, deterministic, rngs).reshape(rows)
        return self._logits(input_ids, segment_ids, input_mask, deterministic, rngs)

    def _logits(self, input_ids, segment_ids, input_mask, deterministic, rngs) -> jax.Array:
        encoded = self.bert(
            input_ids, segment_ids, input_mask, deterministic=deterministic, rngs=rngs
        )
        if self.kind in POOLED_KINDS and self.pooling == "mean":
            features = mean_over_tokens(encoded["sequence_output"], input_mask)
        elif self.gelu_head:  # the first token's state; the pooler is not used
            features = encoded["sequence_output"][:, 0].astype(jnp.float32)
        elif self.kind in POOLED_KINDS:
            features = encoded["pooled_output"]
        else:
            features = encoded["sequence_output"].astype(jnp.float32)
        if self.gelu_head:
            return self.head(features, deterministic=deterministic, rngs=rngs)
        if self.kind != "qa":
            features = self.dropout(features, deterministic=deterministic, rngs=rngs)
        return self.head(features)


def mean_over_tokens(hidden: jax.Array, input_mask: jax.Array) -> jax.Array:
    """[B, L, H] hidden states, [B, L] 1/0 mask -> [B, H] float32 mean over the real tokens."""
    weights = input_mask.astype(jnp.float32)[..., None]
    total = jnp.sum(hidden.astype(jnp.float32) * weights, axis=1)
    return total / jnp.maximum(jnp.sum(weights, axis=1), 1.0)


def num_outputs(kind: str, num_labels: int) -> int:
    return {"qa": 2, "regression": 1, CHOICE_KIND: 1}.get(kind, num_labels)


class Encoder(NamedTuple):
    """A pretrained encoder as fine-tuning reads it."""

    config: BertConfig
    params: dict[str, Any]  # the "bert" parameters, host arrays
    lowercase: bool
    vocab_path: Any
    step: int  # the checkpoint they come from


def load_encoder(init: str, step: int | None = None) -> Encoder:
    """The encoder of a training workdir or a `bertjax import` directory at checkpoint `step`
    (default: the latest), local or gs://."""
    step, metadata = checkpointing.open_workdir(init, step)
    config = model_dir.model_config(metadata)
    params = checkpointing.restore_params(init, step)
    if "layers" in params["bert"]["encoder"]:  # trained with scan_layers: one entry per layer
        params = unstack_layers(params)
    lowercase, vocab_path = model_dir.lowercase(metadata), paths.as_path(init) / "vocab.txt"
    return Encoder(config, params["bert"], lowercase, vocab_path, step)


def model_factory(
    config: BertConfig, kind: str, num_labels: int, pooling: str = "cls",
    sequence_head: str = "pooler",
):  # fmt: skip
    """seed -> BertForFinetuning with a head for `num_labels` (a `train_state.ModelFactory`)."""
    outputs = num_outputs(kind, num_labels)
    return lambda seed: BertForFinetuning(
        config, kind, outputs, pooling=pooling, sequence_head=sequence_head, rngs=nnx.Rngs(seed)
    )


def saved_model_factory(config: BertConfig, task: dict):
    """`model_factory` of the model a fine-tuned model directory's `task` entry describes
    (directories from before `sequence_head` existed used the pooler)."""
    return model_factory(
        config, task["kind"], len(task["labels"]), task.get("pooling", "cls"),
        task.get("sequence_head", "pooler"),
    )  # fmt: skip


def with_encoder(params: dict, encoder: dict) -> dict:
    """`params` with the pretrained "bert" parameters `encoder` (host arrays), each placed as
    the parameter it replaces is (on its mesh, in its layout)."""
    _check_same_shapes(encoder, params["bert"])
    bert = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding), encoder, params["bert"])
    return {**params, "bert": bert}


def init_params(
    config: BertConfig,
    kind: str,
    num_labels: int,
    seed: int,
    encoder: dict | None,
    pooling: str = "cls",
    sequence_head: str = "pooler",
) -> tuple[nnx.GraphDef, dict]:
    """GraphDef and parameters on the default device: a fresh head (seeded), the encoder from
    `encoder` when given (else random, seeded: the baseline). The trainer builds the same
    parameters in their sharded layout (`train_state.init_train_state` of `model_factory`)."""
    factory = model_factory(config, kind, num_labels, pooling, sequence_head)
    graphdef, state = nnx.split(factory(seed), nnx.Param)
    params = state.to_pure_dict()
    if encoder is not None:
        params = with_encoder(params, encoder)
    return graphdef, params


def save_finetuned(
    directory: Path, params: dict, config: BertConfig, vocab_path, lowercase: bool, *,
    task: dict, init: str, init_step: int | None,
) -> None:  # fmt: skip
    """Writes fine-tuned `params` ({"bert", "head"}, on any mesh) as a model directory
    (convert/model_dir.py) that records `task`, `init` and the checkpoint of it the encoder
    started from (`init_step`; None for a random encoder); one left by an interrupted attempt at
    the same seed is replaced."""
    if jax.process_index() == 0 and directory.exists():
        shutil.rmtree(directory)
    sync_global_devices("bertjax_finetuned_model_dir_cleared")
    model_dir.write(directory, params, config, vocab_path, lowercase, init, task=task,
                    finetuned_from=True, source_step=init_step, flag="--workdir")  # fmt: skip


def _check_same_shapes(loaded: dict, fresh: dict) -> None:
    loaded_shapes = jax.tree.map(np.shape, loaded)
    fresh_shapes = jax.tree.map(np.shape, fresh)
    if loaded_shapes != fresh_shapes:
        raise ValueError("pretrained encoder parameters do not match the model's layout")
