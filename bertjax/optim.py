"""Optax optimizer from an `OptimizerSpec`: linear warmup then a decay to zero (linear as BERT,
cosine, or warmup-stable-decay), AdamW (or LAMB) with decoupled weight decay that skips LayerNorm
parameters and biases, global-norm clipping; layer-wise learning-rate decay for fine-tuning."""

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertjax.errors import UserError
from bertjax.specs import ConfigSpec, require

OPTIMIZERS = ("adamw", "lamb")
LR_SCHEDULES = ("linear", "cosine", "wsd")
# Only matrices (dense kernels) and embedding tables are decayed, as in BERT's optimization.py,
# which excludes "LayerNorm" and "bias" variables.
DECAYED_LEAF_NAMES = ("kernel", "embedding")
# optax.apply_if_finite applies a non-finite update once more than this many came in a row;
# bertjax never does (nonfinite_policy decides when a run stops), so the limit is unreachable.
_NEVER_APPLY_NONFINITE = int(np.iinfo(np.int32).max)


@dataclasses.dataclass(frozen=True)
class OptimizerSpec(ConfigSpec):
    """The update rule and its schedule (config fields of the same names)."""

    num_train_steps: int = 900_000
    warmup_steps: int = 10_000
    optimizer: str = "adamw"  # "adamw" (BERT) or "lamb" (large-batch recipe of You et al. 2019)
    learning_rate: float = 1e-4  # peak, reached at the end of warmup, then decays to zero
    # after warmup: "linear" (BERT) or "cosine" decay to zero at num_train_steps, or "wsd"
    # (warmup-stable-decay: the peak rate until the last lr_decay_fraction of the steps, then
    # 1-sqrt to zero; a run extended before that cooldown keeps the rates it had)
    lr_schedule: str = "linear"
    lr_decay_fraction: float = 0.2  # wsd: the cooldown's share of num_train_steps
    weight_decay: float = 0.01  # AdamW decoupled decay, not applied to LayerNorm or biases
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0  # global-norm clipping; 0 disables

    def __post_init__(self):
        total, warmup = self.num_train_steps, self.warmup_steps
        require(
            total > 0, f"num_train_steps={total} must be positive; set --config.num_train_steps"
        )
        require(
            0 <= warmup <= total,
            f"warmup_steps={warmup} must be in [0, num_train_steps={total}]; "
            "lower --config.warmup_steps",
        )
        require(
            self.learning_rate > 0,
            f"learning_rate={self.learning_rate} must be positive; set --config.learning_rate",
        )
        require(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule={self.lr_schedule!r} is unknown; use one of {LR_SCHEDULES}",
        )
        require(
            0 <= self.lr_decay_fraction <= 1,
            f"lr_decay_fraction={self.lr_decay_fraction} must be in [0, 1] (0.2 is usual)",
        )
        require(
            self.lr_schedule != "wsd" or warmup + self.cooldown_steps <= total,
            f"warmup_steps={warmup} + the cooldown's {self.cooldown_steps} steps "
            f"(lr_decay_fraction={self.lr_decay_fraction} of {total}) exceed num_train_steps; "
            "lower --config.warmup_steps or --config.lr_decay_fraction",
        )
        require(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        require(
            self.max_grad_norm >= 0, f"max_grad_norm={self.max_grad_norm} must be >= 0 (0 disables)"
        )
        require(
            self.optimizer in OPTIMIZERS,
            f"optimizer={self.optimizer!r} is unknown; use one of {OPTIMIZERS}",
        )
        for name in ("adam_b1", "adam_b2"):
            value = getattr(self, name)
            require(0 <= value < 1, f"{name}={value} must be in [0, 1); BERT uses 0.9 and 0.999")
        require(self.adam_eps > 0, f"adam_eps={self.adam_eps} must be positive; BERT uses 1e-6")

    @property
    def cooldown_steps(self) -> int:
        """The steps of a "wsd" schedule's final decay."""
        return round(self.lr_decay_fraction * self.num_train_steps)

    @property
    def cooldown_start(self) -> int | None:
        """The step where a "wsd" schedule leaves its peak rate (None for the other schedules
        and a wsd schedule without cooldown): a checkpoint there can run on, with the same
        rates, into a schedule of any length whose cooldown starts later."""
        if self.lr_schedule != "wsd" or self.cooldown_steps == 0:
            return None
        return self.num_train_steps - self.cooldown_steps


def learning_rate_schedule(spec: OptimizerSpec) -> optax.Schedule:
    """0 -> learning_rate over warmup_steps, then to 0 at num_train_steps by `spec.lr_schedule`:
    linearly, along a half cosine, or (wsd) constant until the last `cooldown_steps`, then
    1 - sqrt(progress) (Hägele et al. 2024: matches cosine at the same budget)."""
    warmup, total, peak = spec.warmup_steps, spec.num_train_steps, float(spec.learning_rate)
    warmup_fn = optax.linear_schedule(0.0, peak, max(warmup, 1))
    if spec.lr_schedule == "linear":
        decay_fn = optax.linear_schedule(peak, 0.0, max(total - warmup, 1))
    elif spec.lr_schedule == "cosine":
        decay_fn = optax.cosine_decay_schedule(peak, max(total - warmup, 1))
    else:
        stable_end = total - spec.cooldown_steps
        cooldown = _one_minus_sqrt_decay(peak, spec.cooldown_steps)
        decay_fn = optax.join_schedules(
            [optax.constant_schedule(peak), cooldown], boundaries=[stable_end - warmup]
        )
    return optax.join_schedules([warmup_fn, decay_fn], boundaries=[warmup])


def rate_change(saved: Mapping[str, Any], wanted: Mapping[str, Any], step: int) -> str:
    """How the learning rate of update `step` differs between two configs (a resumed run's
    checkpoint's and its own): e.g. a longer num_train_steps moves a linear schedule's rate,
    not a wsd schedule's before its cooldown."""

    def rate(config: Mapping[str, Any]) -> float:
        return float(learning_rate_schedule(OptimizerSpec.from_config(config))(step))

    new = rate(wanted)
    try:
        old = rate(saved)
    except UserError:  # a checkpoint of a later bertjax with a schedule this one lacks
        return f"learning rate at step {step}: {new:.4g}"
    if np.isclose(old, new, rtol=1e-6, atol=0.0):
        return f"learning rate at step {step} unchanged: {new:.4g}"
    return f"learning rate at step {step}: {old:.4g} -> {new:.4g}"


def _one_minus_sqrt_decay(peak: float, steps: int) -> optax.Schedule:
    """peak * (1 - sqrt(step / steps)), 0 from `steps` on (optax has no such schedule)."""

    def schedule(step):
        progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(steps, 1), 0.0, 1.0)
        return peak * (1.0 - jnp.sqrt(progress))

    return schedule


def weight_decay_mask(params: Any, untrained: tuple[str, ...] = ()) -> Any:
    """True for leaves that get weight decay (kernels, embedding tables); False for LayerNorm
    parameters and biases, and under the `untrained` path prefixes ("bert/pooler"): parameters
    no loss term reaches keep their initial values, as in TensorFlow's and PyTorch's optimizers,
    which skip a variable without a gradient (optax decays it: over ELECTRA-Small's schedule the
    pooler would shrink to exp(-0.01 * 250) = 8% of its scale). `params` is a pure dict or an
    `nnx.State`, whose leaves sit one attribute (`.value`) below the parameter's name: the name is
    the path's last dict key."""

    def is_decayed(path, _):
        names = [str(key.key) for key in path if isinstance(key, jax.tree_util.DictKey)]
        where = "/".join(names) + "/"
        skipped = any(where.startswith(prefix + "/") for prefix in untrained)
        return bool(names) and names[-1] in DECAYED_LEAF_NAMES and not skipped

    return jax.tree_util.tree_map_with_path(is_decayed, params)


def create_optimizer(
    spec: OptimizerSpec, untrained: tuple[str, ...] = ()
) -> optax.GradientTransformation:
    """AdamW (BERT's recipe) or LAMB (`lamb`), with the same schedule, weight-decay mask
    (`untrained`: path prefixes of parameters no loss term reaches, never decayed) and
    global-norm clipping."""
    make = optax.adamw if spec.optimizer == "adamw" else lamb
    optimizer = make(
        learning_rate_schedule(spec),
        b1=spec.adam_b1,
        b2=spec.adam_b2,
        eps=spec.adam_eps,
        weight_decay=spec.weight_decay,
        mask=functools.partial(weight_decay_mask, untrained=untrained),
    )
    if spec.max_grad_norm > 0:
        return optax.chain(optax.clip_by_global_norm(spec.max_grad_norm), optimizer)
    return optimizer


def lamb(learning_rate, b1, b2, eps, weight_decay, mask) -> optax.GradientTransformation:
    """LAMB (You et al. 2019, for batches of 32k-64k sequences): Adam's update plus decoupled
    weight decay, scaled per layer by the trust ratio ||w|| / ||update||, where `mask` (the
    weight-decay mask) is true. LayerNorm and bias parameters are left out of both, as in the
    reference LAMB for BERT (TF-Addons' exclude_from_layer_adaptation, apex FusedLAMB without
    use_nvlamb); optax.lamb scales them too, so a zero-initialised bias barely moved (after 100
    steps at lr 1e-2: 0.016 where Adam moves it 0.5)."""
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.add_decayed_weights(weight_decay, mask),
        optax.masked(optax.scale_by_trust_ratio(), mask),
        optax.scale_by_learning_rate(learning_rate),
    )


def layerwise_lr_decay(decay: float, num_layers: int) -> optax.GradientTransformation:
    """Scales each update by `layer_lr_factor` of its parameter's path, google-research/electra's
    factors (`_get_layer_lrs`, which its GLUE and SQuAD recipes use with 0.8): the task head,
    pooler and final LayerNorm learn at the full rate, encoder layer i (of num_layers, 0 at the
    bottom) at decay**(num_layers + 1 - i), the embeddings and their projection at
    decay**(num_layers + 2). Chained after AdamW it scales the learning rate and the decoupled
    weight decay alike; 1.0 is the identity."""

    def scale(updates, params=None):
        del params
        return jax.tree_util.tree_map_with_path(
            lambda path, update: update * layer_lr_factor(path, decay, num_layers), updates
        )

    return optax.stateless(scale)


def layer_lr_factor(path: tuple, decay: float, num_layers: int) -> float:
    """The learning-rate factor of the parameter at `path` (see `layerwise_lr_decay`): layers are
    `.../encoder/layer/<i>/...` (unstacked), embeddings `.../embeddings/...` and
    `.../embeddings_project/...` (a factorised encoder's E -> H projection)."""
    keys = [str(getattr(key, "key", getattr(key, "idx", key))) for key in path]
    if "layers" in keys:
        raise ValueError("layer-wise learning-rate decay needs unstacked layers: scan_layers=False")
    if "embeddings" in keys or "embeddings_project" in keys:
        return decay ** (num_layers + 2)
    if "layer" in keys:
        return decay ** (num_layers + 1 - int(keys[keys.index("layer") + 1]))
    return 1.0


def skip_nonfinite(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """`tx` behind optax.apply_if_finite: an update whose gradients hold a NaN or Inf is zero and
    leaves `tx`'s state unchanged, however many such updates come in a row. Its state
    (optax.ApplyIfFiniteState) counts them: `notfinite_count` in a row, `total_notfinite` in all,
    `last_finite` whether the latest update was applied."""
    return optax.apply_if_finite(tx, max_consecutive_errors=_NEVER_APPLY_NONFINITE)


def applied_updates(opt_state: Any) -> jax.Array:
    """How many updates the state of `create_optimizer`'s optimizer has applied: its schedule's
    step, which a skipped update does not advance. The learning rate of its next update is
    `learning_rate_schedule(spec)(applied_updates(opt_state))`."""
    is_schedule_state = lambda x: isinstance(x, optax.ScaleByScheduleState)  # noqa: E731
    (state,) = [
        leaf
        for leaf in jax.tree.leaves(opt_state, is_leaf=is_schedule_state)
        if is_schedule_state(leaf)
    ]
    return state.count
