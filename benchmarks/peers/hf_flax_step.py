"""Peer: Hugging Face `FlaxBertForPreTraining` (transformers 4.57.6) with an Optax AdamW step,
jitted with the parameters and optimizer state donated; prints one JSON line.

Same config, batch, optimizer settings and dropout (train mode) as `bertjax bench`, which starts
it in the peer venv from the repo root:

  .venv-peers/bin/python -m benchmarks.peers.hf_flax_step --hidden_size=256 \
      --num_hidden_layers=4 --num_attention_heads=4 --intermediate_size=1024 \
      --seq_len=128 --batch_size=32 --predictions=20
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import transformers  # noqa: E402

from benchmarks import peers  # noqa: E402
from bertjax.bench.workload import host_peak_rss_mib  # noqa: E402


def create_model(args: argparse.Namespace) -> tuple[transformers.FlaxBertForPreTraining, dict]:
    """FlaxBertForPreTraining (float32) of the benchmark's size and its random parameters,
    initialised under jit (the default eager init runs op by op: slow)."""
    config = transformers.BertConfig(**peers.config_kwargs(args))
    model = transformers.FlaxBertForPreTraining(config, dtype=jnp.float32, _do_init=False)
    params = jax.jit(model.init_weights, static_argnums=1)(jax.random.PRNGKey(0), (1, 1))
    return model, params


def create_optimizer() -> optax.GradientTransformation:
    """bertjax's optimizer: global-norm clipping, then AdamW decaying only matrices."""
    return optax.chain(
        optax.clip_by_global_norm(peers.MAX_GRAD_NORM),
        optax.adamw(
            peers.LEARNING_RATE,
            b1=peers.ADAM_BETAS[0],
            b2=peers.ADAM_BETAS[1],
            eps=peers.ADAM_EPS,
            weight_decay=peers.WEIGHT_DECAY,
            mask=lambda params: jax.tree.map(lambda p: p.ndim > 1, params),
        ),
    )


def pretraining_loss(outputs, labels: jax.Array, next_sentence_label: jax.Array) -> jax.Array:
    """Hugging Face's BertForPreTraining loss: mean MLM cross-entropy over labels != -100 (logits
    at every position [B, L, V]) + mean NSP cross-entropy."""
    predicted = labels != peers.IGNORE_INDEX
    per_position = optax.softmax_cross_entropy_with_integer_labels(
        outputs.prediction_logits, jnp.where(predicted, labels, 0)
    )
    mlm = jnp.sum(per_position * predicted) / jnp.maximum(jnp.sum(predicted), 1)
    nsp = optax.softmax_cross_entropy_with_integer_labels(
        outputs.seq_relationship_logits, next_sentence_label
    )
    return mlm + jnp.mean(nsp)


def make_train_step(model: transformers.FlaxBertForPreTraining, tx: optax.GradientTransformation):
    """jit((params, opt_state, batch, dropout_key) -> (params, opt_state, loss)), the first two
    donated."""

    def train_step(params, opt_state, batch, dropout_key):
        def loss_fn(params):
            outputs = model(
                batch["input_ids"],
                batch["attention_mask"],
                batch["token_type_ids"],
                params=params,
                dropout_rng=dropout_key,
                train=True,
            )
            return pretraining_loss(outputs, batch["labels"], batch["next_sentence_label"])

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(train_step, donate_argnums=(0, 1))


def measure(args: argparse.Namespace) -> dict:
    """Compile seconds, XLA memory per device, seconds per step after warm-up, peak RSS."""
    model, params = create_model(args)
    tx = create_optimizer()
    opt_state = tx.init(params)
    batch = {name: jnp.asarray(value) for name, value in peers.make_batch(args).items()}
    key = jax.random.key(1)
    step = make_train_step(model, tx)
    start = time.perf_counter()
    compiled = step.lower(params, opt_state, batch, key).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    state = {"params": params, "opt_state": opt_state, "loss": None, "step": 0}

    def run_step() -> None:
        step_key = jax.random.fold_in(key, state["step"])
        new = compiled(state["params"], state["opt_state"], batch, step_key)
        state.update(params=new[0], opt_state=new[1], loss=new[2], step=state["step"] + 1)
        jax.block_until_ready(new)

    seconds_per_step = peers.time_steps(run_step, args.steps, args.warmup_steps)
    return {
        "seconds_per_step": seconds_per_step,
        "compile_seconds": compile_seconds,
        "loss": float(state["loss"]),
        "xla_total_mib": (
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
        )
        / 2**20,
        "host_peak_rss_mib": host_peak_rss_mib(),
        "runtime": f"transformers {transformers.__version__}, jax {jax.__version__}, "
        f"{jax.devices()[0].device_kind}",
    }


def main(argv: list[str] | None = None) -> None:
    args = peers.peer_parser(__doc__.splitlines()[0]).parse_args(argv)
    peers.print_result(measure(args))


if __name__ == "__main__":
    main()
