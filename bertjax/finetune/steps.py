"""The fine-tuning step: each kind's loss (`task_loss`), the recipe's optimizer, the batch
gradient (over microbatches with grad_accum_steps), and the jitted train and predict steps on
the task's mesh (`compile_task`), shared by every seed of a fine-tune (`trainer`).

The state is pretraining's (`train_state`): created in its sharded layout from the model's
logical axis names and the rule table (eval_shape -> specs -> jit(init, out_shardings)), updated
by a jitted step with those shardings in and out (`train_state.apply_gradients`, which skips
NaN/Inf gradients). The mesh and rules are the config's `mesh_shape` and `logical_axis_rules`
when it has them (`sharding.MeshSpec`), else data parallel over every device. Batches are split
over (data, fsdp).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bertjax import optim, sharding
from bertjax.finetune import features, inference, model, recipe
from bertjax.finetune.choice_records import KIND as CHOICE_KIND
from bertjax.train_state import ModelFactory, StateSetup, apply_gradients, state_setup
from bertjax.train_step import accumulate


def task_loss(logits: jax.Array, batch: dict, kind: str) -> tuple[jax.Array, jax.Array]:
    """(sum of per-example losses, number of examples) over rows with weight 1; tagging averages
    over the labelled words of each batch instead of examples. Regression's loss is the squared
    error (Hugging Face's MSELoss for one output); multilabel's the binary cross-entropy of
    each label's logit, averaged over the labels (BCEWithLogitsLoss); multiple choice's the
    cross-entropy of the choices' scores (BertForMultipleChoice's)."""
    weights = batch["weights"]
    if kind == "regression":
        return jnp.sum((logits[:, 0] - batch["labels"]) ** 2 * weights), jnp.sum(weights)
    if kind == "multilabel":
        losses = optax.sigmoid_binary_cross_entropy(logits, batch["labels"]).mean(axis=-1)
        return jnp.sum(losses * weights), jnp.sum(weights)
    if kind == CHOICE_KIND:  # a softmax over each example's real choices
        logits = jnp.where(batch["choice_mask"] > 0, logits, -1e9)
    if kind in ("classification", CHOICE_KIND):
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
        return jnp.sum(losses * weights), jnp.sum(weights)
    if kind == "tagging":
        labels = batch["labels"]
        mask = (labels != features.IGNORE).astype(jnp.float32) * weights[:, None]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
        return jnp.sum(losses * mask), jnp.sum(mask)
    # QA: start and end logits over positions; labels [B, 2].
    mask = batch["input_mask"].astype(bool)
    logits = jnp.where(mask[..., None], logits, -1e9)
    start = optax.softmax_cross_entropy_with_integer_labels(logits[..., 0], batch["labels"][:, 0])
    end = optax.softmax_cross_entropy_with_integer_labels(logits[..., 1], batch["labels"][:, 1])
    return jnp.sum((start + end) / 2 * weights), jnp.sum(weights)


def optimizer(config: ml_collections.ConfigDict, total_steps: int, num_layers: int):
    """AdamW with the recipe's schedule, then the layer-wise learning-rate factors."""
    adamw = optim.create_optimizer(
        optim.OptimizerSpec(
            num_train_steps=total_steps,
            warmup_steps=int(config.warmup_fraction * total_steps),
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
        )
    )
    decay = recipe.field(config, "layerwise_lr_decay")
    if decay == 1.0:
        return adamw
    return optax.chain(adamw, optim.layerwise_lr_decay(decay, num_layers))


def gradient(loss_sums, accum_steps: int, microbatch_sharding):
    """(params, batch, key) -> (the gradient of the batch's mean loss, (loss sum, count)), where
    `loss_sums(params, batch, key)` gives (loss sum, count). With `accum_steps` > 1 the loss
    sums' gradients of that many microbatches (rows m, m + accum_steps, ...) are summed and
    divided by the whole batch's count: the same gradient in the memory of a microbatch."""

    def mean_loss(params, batch, key):
        total, count = loss_sums(params, batch, key)
        return total / jnp.maximum(count, 1.0), (total, count)

    def sum_loss(params, batch, key):
        total, count = loss_sums(params, batch, key)
        return total, (total, count)

    if accum_steps == 1:
        return jax.grad(mean_loss, has_aux=True)

    def accumulated(params, batch, key):
        grads, (total, count) = accumulate(
            jax.grad(sum_loss, has_aux=True), params, batch, key, accum_steps,
            microbatch_sharding,
        )  # fmt: skip
        return jax.tree.map(lambda g: g / jnp.maximum(count, 1.0), grads), (total, count)

    return accumulated


def compile_steps(setup: StateSetup, kind: str, tx, accum_steps: int = 1):
    """jit(train_step) with the state's shardings in and out (state donated), and jit(predict);
    a step's gradient over `accum_steps` microbatches (`gradient`)."""
    replicated = NamedSharding(setup.mesh, PartitionSpec())
    batch_sharding = sharding.batch_sharding(setup.mesh)

    def logits(params, batch, key=None):
        with setup.activation_sharding():
            return setup.model(params)(
                batch["input_ids"], batch["segment_ids"], batch["input_mask"],
                deterministic=key is None, rngs=None if key is None else nnx.Rngs(dropout=key),
            )  # fmt: skip

    step_gradient = gradient(
        lambda params, batch, key: task_loss(logits(params, batch, key), batch, kind),
        accum_steps, batch_sharding,
    )  # fmt: skip

    def train_step(state, batch, key):
        grads, (total, count) = step_gradient(state.params, batch, key)
        state, _ = apply_gradients(state, grads, tx)
        return state, total, count

    train = jax.jit(
        train_step,
        in_shardings=(setup.shardings, batch_sharding, replicated),
        out_shardings=(setup.shardings, replicated, replicated),
        donate_argnums=0,
    )

    def predict(params, batch):
        return logits(params, batch)

    return train, jax.jit(predict, in_shardings=(setup.shardings.params, batch_sharding))


@dataclasses.dataclass
class Compiled:
    """What every seed of one task shares: the model, the state's layout on the mesh, the
    optimizer and the jitted steps (compiled once per batch shape, not once per seed)."""

    make_model: ModelFactory
    setup: StateSetup
    tx: optax.GradientTransformation
    train_step: Any
    predict: Any
    total_steps: int

    @property
    def mesh(self) -> Mesh:
        return self.setup.mesh


def schedule_steps(num_train: int, batch_size: int, num_epochs: int) -> int:
    """The steps the learning-rate schedule spans: every batch of every epoch, the last partial
    one included (rounded down, the last batches trained at a rate of about 0)."""
    return -(-num_train // batch_size) * num_epochs


def compile_task(
    prepared: inference.Prepared,
    bert_config,
    config: ml_collections.ConfigDict,
    devices: list | None = None,
) -> Compiled:
    """The task's model, optimizer and steps on a mesh of `devices` (default: all)."""
    task = prepared.task
    mesh_spec = sharding.MeshSpec.from_config(config)  # absent fields: data parallel
    make_model = model.model_factory(
        bert_config, task.kind, len(task.labels), recipe.field(config, "pooling"),
        recipe.field(config, "sequence_head"),
    )  # fmt: skip
    total_steps = schedule_steps(len(prepared.train), config.batch_size, config.num_epochs)
    tx = optimizer(config, total_steps, bert_config.num_hidden_layers)
    mesh = mesh_spec.create_mesh(devices)
    setup = state_setup(make_model, tx, mesh, mesh_spec.logical_axis_rules)
    accum_steps = recipe.field(config, "grad_accum_steps")
    train_step, predict = compile_steps(setup, task.kind, tx, accum_steps)
    return Compiled(make_model, setup, tx, train_step, predict, total_steps)
