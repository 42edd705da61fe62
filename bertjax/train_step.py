"""The pretraining update: a pure `train_step` (loss, gradient over microbatches, optimizer
update, metric sums) and `compile_train_step`, its jit with the state's shardings and donation.

Shared by `train.train_and_evaluate`, `train_from_batches`, `bertjax bench` and the benchmarks:
what is timed and what is checked against Hugging Face is exactly what trains.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from bertjax import losses, optim, sharding
from bertjax.train_state import StateSetup, TrainState, apply_gradients

SAMPLE_STREAM = 1  # folded into a step's dropout key: the key of ELECTRA's generator samples


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    dropout_key: jax.Array,
    *,
    setup: StateSetup,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    grad_accum_steps: int = 1,
    microbatch_sharding: NamedSharding | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update on the pretraining loss of `batch` (BERT: MLM + NSP; ELECTRA:
    generator MLM + lambda x replaced-token detection), whose gradient is accumulated over
    `grad_accum_steps` microbatches. Returns the new state and metric sums."""
    step_key = jax.random.fold_in(dropout_key, state.step)
    # Normalise by the whole batch's weights, so summing microbatch gradients gives exactly the
    # gradient of the whole batch's mean losses.
    denominators = losses.loss_denominators(batch)

    def loss_fn(params, microbatch, key):
        # ELECTRA draws its generator samples from the 'sample' stream (BERT leaves it unused).
        rngs = nnx.Rngs(dropout=key, sample=jax.random.fold_in(key, SAMPLE_STREAM))
        sums = losses.pretraining_sums(
            setup.pretraining_outputs(params, microbatch, rngs), microbatch
        )
        return losses.objective_loss(sums, denominators), sums

    grad_fn = jax.grad(loss_fn, has_aux=True)
    if grad_accum_steps == 1:
        grads, sums = grad_fn(state.params, batch, step_key)
    else:
        grads, sums = accumulate(
            grad_fn, state.params, batch, step_key, grad_accum_steps, microbatch_sharding
        )
    grad_norm = optax.global_norm(grads)
    # The rate this update uses: the optimizer's own count, which skipped updates do not advance.
    learning_rate = schedule(optim.applied_updates(state.opt_state))
    new_state, applied = apply_gradients(state, grads, tx)
    # Metric sums of skipped steps are left out, so the host averages over applied steps only.
    only_applied = functools.partial(jax.tree.map, lambda x: jnp.where(applied, x, 0.0))
    step_metrics = {
        **only_applied(sums),
        "grad_norm": only_applied(grad_norm),
        "param_norm": optax.global_norm(new_state.params),
        "learning_rate": only_applied(learning_rate),
        "finite_steps": applied.astype(jnp.float32),  # steps whose update was applied
        "consecutive_nonfinite": new_state.consecutive_nonfinite,  # not summed: popped by the loop
    }
    return new_state, step_metrics


def accumulate(grad_fn, params, batch, step_key, steps: int, microbatch_sharding):
    """Sums (gradients, metric sums) over `steps` microbatches with lax.scan (one compiled body);
    `grad_fn(params, microbatch, key)` gives one microbatch's (also fine-tuning's steps).

    Microbatch m takes rows m, m + steps, m + 2*steps, ...: every device's block of the batch
    holds rows of every microbatch, so each microbatch is still split over all devices.
    """

    def split(x):
        rows = x.shape[0] // steps
        return jnp.swapaxes(x.reshape(rows, steps, *x.shape[1:]), 0, 1)

    microbatches = jax.tree.map(split, batch)

    def body(carry, inputs):
        index, microbatch = inputs
        if microbatch_sharding is not None:
            microbatch = jax.lax.with_sharding_constraint(microbatch, microbatch_sharding)
        grads, sums = grad_fn(params, microbatch, jax.random.fold_in(step_key, index))
        return jax.tree.map(jnp.add, carry, (grads, sums)), None

    first = jax.tree.map(lambda x: x[0], microbatches)
    zeros = jax.tree.map(
        lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(grad_fn, params, first, step_key)
    )
    total, _ = jax.lax.scan(body, zeros, (jnp.arange(steps), microbatches))
    return total


def compile_train_step(setup: StateSetup, tx, schedule, mesh, grad_accum_steps: int = 1):
    """jit(train_step) with state shardings in and out, the batch split over (data, fsdp), and
    the state donated so its buffers are reused."""
    replicated = NamedSharding(mesh, PartitionSpec())
    step = functools.partial(
        train_step,
        setup=setup,
        tx=tx,
        schedule=schedule,
        grad_accum_steps=grad_accum_steps,
        microbatch_sharding=sharding.batch_sharding(mesh),
    )
    return jax.jit(
        step,
        in_shardings=(setup.shardings, sharding.batch_sharding(mesh), replicated),
        out_shardings=(setup.shardings, replicated),
        donate_argnums=0,
    )
