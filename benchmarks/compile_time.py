"""Compile time of the full train step (forward, backward, AdamW) for BERT-base and BERT-large,
with and without scan_layers. Nothing is materialised: the step is lowered on abstract shapes.

  python -m benchmarks.compile_time --models=base,large --seq_len=128 --batch_size=32
"""

import argparse
import time

import jax
import jax.numpy as jnp

from bertjax import optim, sharding, train_step
from bertjax.config import defaults, set_model_size
from bertjax.models.bert import BertConfig
from bertjax.train_state import state_setup


def compile_seconds(model: str, scan_layers: bool, seq_len: int, batch_size: int) -> float:
    config = set_model_size(defaults(), model)
    config.update(scan_layers=scan_layers, max_seq_length=seq_len, batch_size=batch_size)
    mesh = sharding.create_mesh({"data": -1}, devices=jax.devices()[:1])
    optimizer = optim.OptimizerSpec.from_config(config)
    tx = optim.create_optimizer(optimizer)
    setup = state_setup(BertConfig.from_config(config, 30522), tx, mesh, config.logical_axis_rules)
    step = train_step.compile_train_step(setup, tx, optim.learning_rate_schedule(optimizer), mesh)
    predictions = config.max_predictions_per_seq
    batch = {
        name: jax.ShapeDtypeStruct(shape, dtype)
        for name, shape, dtype in [
            ("input_ids", (batch_size, seq_len), jnp.int32),
            ("input_mask", (batch_size, seq_len), jnp.int32),
            ("segment_ids", (batch_size, seq_len), jnp.int32),
            ("masked_lm_positions", (batch_size, predictions), jnp.int32),
            ("masked_lm_ids", (batch_size, predictions), jnp.int32),
            ("masked_lm_weights", (batch_size, predictions), jnp.float32),
            ("next_sentence_labels", (batch_size,), jnp.int32),
        ]
    }
    start = time.perf_counter()
    step.lower(setup.abstract_state, batch, jax.random.key(0)).compile()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="base,large")
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'model':<8} {'scan_layers':<12} {'compile_s':>9}")
    for model in args.models.split(","):
        for scan in (False, True):
            seconds = compile_seconds(model, scan, args.seq_len, args.batch_size)
            print(f"{model:<8} {str(scan):<12} {seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
