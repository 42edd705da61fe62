"""Sharding overhead on one machine: the same train step on 1 device and on N forced host devices
(data parallel over the same CPU cores), and peak memory per device for each remat policy.

  python -m benchmarks.parallel_overhead --model=mini --seq_len=128 --batch_size=32 --steps=10

Each device count runs in its own process (XLA_FLAGS must be set before JAX starts). Prints
tokens/s, MFU (peak: the measured fp32 matmul rate, see bertjax/metrics.py), compile seconds and
XLA's memory analysis of the compiled step (arguments + temporaries, per device).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from bertjax.bench.workload import random_token_batch


def measure(args) -> dict:
    import jax

    from bertjax import metrics, optim, sharding, train_step
    from bertjax.config import defaults, set_model_size
    from bertjax.models.bert import BertConfig
    from bertjax.train_state import create_train_state

    config = set_model_size(defaults(), args.model)
    config.update(
        max_seq_length=args.seq_len, batch_size=args.batch_size, remat_policy=args.remat,
        num_train_steps=1000, warmup_steps=10, max_predictions_per_seq=20,
    )  # fmt: skip
    vocab = 30522
    mesh = sharding.create_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    optimizer = optim.OptimizerSpec.from_config(config)
    tx = optim.create_optimizer(optimizer)
    model_config = BertConfig.from_config(config, vocab)
    state, setup = create_train_state(model_config, tx, mesh, config.logical_axis_rules, 0)
    step = train_step.compile_train_step(setup, tx, optim.learning_rate_schedule(optimizer), mesh)
    local = random_token_batch(args.batch_size, args.seq_len, 20, vocab)
    batch = sharding.global_batch_from_local(local, mesh)
    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    state, _ = compiled(state, batch, key)  # warm-up
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, out = compiled(state, batch, key)
    jax.block_until_ready(out)
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.batch_size * args.seq_len
    flops = tokens * metrics.flops_per_token(
        num_layers=config.num_hidden_layers, hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, seq_len=args.seq_len, vocab_size=vocab,
        predictions_fraction=20 / args.seq_len,
    )  # fmt: skip
    peak, _ = metrics.peak_flops(list(mesh.devices.flat))
    return {
        "devices": jax.device_count(),
        "remat": args.remat,
        "tokens_per_second": tokens / seconds,
        "mfu": flops / seconds / peak,
        "compile_seconds": compile_seconds,
        "memory_mib_per_device": (
            memory.argument_size_in_bytes + memory.temp_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes
        ) / 2**20,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--devices", default="1,8")
    parser.add_argument("--remat", default="none")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(args)), flush=True)
        return
    runs = [(int(d), "none") for d in args.devices.split(",")]
    runs += [(1, policy) for policy in ("full", "dots_saveable")]
    print(
        f"{'devices':>7} {'remat':<14} {'tokens/s':>9} {'mfu':>6} {'compile_s':>9} {'MiB/dev':>8}"
    )
    for devices, remat in runs:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
               "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        command = [sys.executable, "-m", "benchmarks.parallel_overhead", "--worker",
                   f"--model={args.model}", f"--seq_len={args.seq_len}",
                   f"--batch_size={args.batch_size}", f"--steps={args.steps}",
                   f"--remat={remat}"]  # fmt: skip
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        line = next(x for x in output.stdout.splitlines() if x.startswith("RESULT "))
        r = json.loads(line[len("RESULT ") :])
        print(f"{r['devices']:>7} {r['remat']:<14} {r['tokens_per_second']:>9.0f} "
              f"{r['mfu']:>6.3f} {r['compile_seconds']:>9.1f} "
              f"{r['memory_mib_per_device']:>8.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
