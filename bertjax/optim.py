"""Optax optimizer from config: linear warmup then linear decay to zero, AdamW (or LAMB) with
decoupled weight decay that skips LayerNorm parameters and biases, global-norm clipping."""

from typing import Any

import jax
import ml_collections
import optax

from bertjax.errors import UserError

# Only matrices (dense kernels) and embedding tables are decayed, as in BERT's optimization.py,
# which excludes "LayerNorm" and "bias" variables.
DECAYED_LEAF_NAMES = ("kernel", "embedding")


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """0 -> learning_rate over warmup_steps, then linearly to 0 at num_train_steps."""
    warmup = int(config.warmup_steps)
    total = int(config.num_train_steps)
    peak = float(config.learning_rate)
    if total <= 0:
        raise UserError(f"num_train_steps={total} must be positive; set --config.num_train_steps")
    if not 0 <= warmup <= total:
        raise UserError(
            f"warmup_steps={warmup} must be in [0, num_train_steps={total}]; "
            "lower --config.warmup_steps"
        )
    if peak <= 0:
        raise UserError(f"learning_rate={peak} must be positive; set --config.learning_rate")
    warmup_fn = optax.linear_schedule(0.0, peak, max(warmup, 1))
    decay_fn = optax.linear_schedule(peak, 0.0, max(total - warmup, 1))
    return optax.join_schedules([warmup_fn, decay_fn], boundaries=[warmup])


def weight_decay_mask(params: Any) -> Any:
    """True for leaves that get weight decay (kernels, embedding tables); False for LayerNorm
    parameters and biases."""

    def is_decayed(path, _):
        return str(getattr(path[-1], "key", path[-1])) in DECAYED_LEAF_NAMES

    return jax.tree_util.tree_map_with_path(is_decayed, params)


OPTIMIZERS = ("adamw", "lamb")


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW (BERT's recipe) or LAMB (You et al. 2019, for batches of 32k-64k sequences: Adam
    moments with a per-layer trust ratio ||w|| / ||update||), with the same schedule, weight-decay
    mask and global-norm clipping."""
    if config.weight_decay < 0 or config.max_grad_norm < 0:
        raise UserError("weight_decay and max_grad_norm must be >= 0; fix the config")
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer={config.optimizer!r} is unknown; use one of {OPTIMIZERS}")
    make = optax.adamw if config.optimizer == "adamw" else optax.lamb
    optimizer = make(
        learning_rate_schedule(config),
        b1=config.adam_b1,
        b2=config.adam_b2,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
        mask=weight_decay_mask,
    )
    if config.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optimizer)
    return optimizer
