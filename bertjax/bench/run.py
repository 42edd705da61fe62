"""`bertjax bench`: train-step throughput, compile time, memory and MFU of one BERT size on random
tokens; optionally the input pipeline, checkpoint saves, a profile and Hugging Face peers.

  bertjax bench --model=mini --seq_len=128 --batch_size=32 --peers
  bertjax bench --model=base --seq_len=128 --batch_size=16 --steps=3 --input_pipeline --checkpoint
  bertjax bench --model=tiny --seq_len=128 --batch_size=32 --profile_dir=/tmp/bench-profile

The last printed line is always `tokens_per_second=<float> mfu=<float>` for bertjax. MFU uses the
model FLOPs of bertjax/metrics.py and its peak (datasheet bf16 on GPU/TPU, the measured fp32 XLA
matmul rate on CPU). Peers (`--peers`) run the same config, batch and data in a pinned virtual
environment (benchmarks/peers/env.py); see docs/performance.md.

Only the standard library, numpy and absl are imported at module level: bad flags fail at once.
"""

import resource
import tempfile
import time
from pathlib import Path

from absl import flags

from bertjax import host_memory, startup
from bertjax.bench import peers as bench_peers
from bertjax.bench import report
from bertjax.bench.workload import (
    MAX_POSITION,
    VOCAB_SIZE,
    host_peak_rss_mib,
    model_dims,
    model_sizes,
    predictions_per_seq,
    random_token_batch,
)
from bertjax.errors import UserError

PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}
PROFILE_STEPS = report.PROFILE_STEPS


def model_flops_per_token(dims: dict, seq_len: int, predictions_fraction: float) -> float:
    """Training FLOPs per token of bertjax/metrics.py (forward + backward) for `dims`."""
    from bertjax import metrics

    return metrics.flops_per_token(
        num_layers=dims["num_hidden_layers"],
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        seq_len=seq_len,
        vocab_size=VOCAB_SIZE,
        predictions_fraction=predictions_fraction,
    )


def check_args(
    model: str, seq_len: int, batch_size: int, steps: int, precision: str, peers: bool
) -> None:
    """One-line UserErrors for settings that cannot be benchmarked, before anything compiles."""
    if model not in model_sizes():
        raise UserError(f"--model={model!r} is unknown; use one of {', '.join(model_sizes())}")
    if not 8 <= seq_len <= MAX_POSITION:
        raise UserError(f"--seq_len={seq_len} must be in [8, {MAX_POSITION}] (position table)")
    if batch_size < 1 or steps < 1:
        raise UserError(f"--batch_size={batch_size} and --steps={steps} must be >= 1")
    if precision not in PRECISIONS:
        raise UserError(f"--precision={precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if peers and precision != "fp32":
        raise UserError("--peers compares fp32 runs; drop --precision=bf16 or --peers")


def bench_devices(num_devices: int | None, batch_size: int) -> list:
    """The first `num_devices` devices (default all); the batch must split evenly over them."""
    import jax

    available = jax.devices()
    count = len(available) if num_devices is None else num_devices
    if not 1 <= count <= len(available):
        raise UserError(f"--devices={count}: this machine has {len(available)}; pass 1..that")
    if batch_size % count:
        raise UserError(
            f"--batch_size={batch_size} does not split over {count} devices; pass a multiple "
            f"of {count} or --devices=1"
        )
    return available[:count]


def bench_config(model: str, seq_len: int, batch_size: int, precision: str, **overrides):
    """The defaults at `model` size for the benchmark: dropout on, AdamW, BERT's schedule."""
    from bertjax.config import defaults, set_model_size

    config = set_model_size(defaults(), model)
    config.update(
        max_seq_length=seq_len,
        max_predictions_per_seq=predictions_per_seq(seq_len),
        batch_size=batch_size,
        dtype=PRECISIONS[precision],
        num_train_steps=1000,
        warmup_steps=10,
    )
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def xla_memory(compiled) -> dict[str, float]:
    """XLA's memory analysis of the compiled step, per device, in MiB."""
    stats = compiled.memory_analysis()
    mib = {
        name: getattr(stats, f"{name}_size_in_bytes") / 2**20
        for name in ("argument", "output", "temp", "alias")
    }
    return {
        **{f"xla_{name}_mib": value for name, value in mib.items()},
        # What the step holds at once: parameters, optimizer state and batch in, the new state
        # out (aliased onto the donated input), temporaries (activations, gradients).
        "xla_total_mib": mib["argument"] + mib["output"] + mib["temp"] - mib["alias"],
        "xla_peak_mib": getattr(stats, "peak_memory_in_bytes", 0) / 2**20,  # XLA's heap peak
    }


def device_peak_mib(devices: list) -> float | None:
    """Largest `peak_bytes_in_use` over `devices` (GPU/TPU allocators); None on CPU."""
    peaks = [(device.memory_stats() or {}).get("peak_bytes_in_use") for device in devices]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) / 2**20 if peaks else None


def measure_train_step(config, devices: list, steps: int, warmup_steps: int, profile_dir=None):
    """Compiles bertjax's sharded, donated train step on a random-token batch and times `steps`
    steps after `warmup_steps`. Returns (measurements, final TrainState)."""
    import jax

    from bertjax import optim, sharding, train_step
    from bertjax.models.bert import BertConfig
    from bertjax.train_state import create_train_state

    mesh = sharding.create_mesh({"data": -1, "fsdp": 1, "tensor": 1}, devices=devices)
    optimizer = optim.OptimizerSpec.from_config(config)
    tx = optim.create_optimizer(optimizer)
    model_config = BertConfig.from_config(config, VOCAB_SIZE)
    state, setup = create_train_state(model_config, tx, mesh, config.logical_axis_rules, 0)
    step = train_step.compile_train_step(setup, tx, optim.learning_rate_schedule(optimizer), mesh)
    local = random_token_batch(
        config.batch_size, config.max_seq_length, config.max_predictions_per_seq, VOCAB_SIZE
    )
    batch = sharding.global_batch_from_local(local, mesh)
    key = jax.random.key(1)
    start = time.perf_counter()
    lowered = step.lower(state, batch, key)
    compiled = lowered.compile()
    compile_seconds = time.perf_counter() - start
    for _ in range(warmup_steps):
        state, out = compiled(state, batch, key)
    jax.block_until_ready(state)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(steps):
        state, out = compiled(state, batch, key)
    jax.block_until_ready((state, out))
    seconds_per_step = (time.perf_counter() - start) / steps
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if profile_dir:
        with jax.profiler.trace(str(profile_dir)):
            for _ in range(PROFILE_STEPS):
                state, out = compiled(state, batch, key)
            jax.block_until_ready((state, out))
    host = jax.device_get(out)
    loss = float(host["mlm_loss_sum"] / max(host["mlm_weight"], 1.0))
    loss += float(host["nsp_loss_sum"] / max(host["nsp_weight"], 1.0))
    measured = {
        "profile_lines": _profile_lines(profile_dir, compiled.as_text()),
        "attention_kernel": attention_kernel(lowered.as_text()),
        "compile_seconds": compile_seconds,
        "seconds_per_step": seconds_per_step,
        "page_faults_per_step": (usage.ru_minflt - usage_before.ru_minflt) / steps,
        "kernel_cpu_seconds_per_step": (usage.ru_stime - usage_before.ru_stime) / steps,
        "host_malloc": host_memory.describe(),
        "real_tokens_per_step": int(local["input_mask"].sum()),
        "loss": loss,
        **xla_memory(compiled),
        "device_peak_mib": device_peak_mib(devices),
    }
    return measured, state


def attention_kernel(lowered: str) -> str:
    """Which attention the step runs, from its lowered StableHLO text: 'cudnn' (the custom call
    jax emits for cuDNN's fused kernel), 'pallas' (a TPU Pallas kernel: splash attention) or
    'xla'. "auto" is resolved while tracing, so an MFU is only read right with this."""
    if "__cudnn$fmha" in lowered:
        return "cudnn"
    if "tpu_custom_call" in lowered:
        return "pallas"
    return "xla"


def _profile_lines(profile_dir, hlo: str) -> list[str]:  # hlo: the compiled step's text
    """The trace summarised per XLA operation (bertjax/profiling.py); [] without a profile."""
    from bertjax.bench import profiling

    if not profile_dir:
        return []
    try:
        operations = profiling.summarize(profile_dir, hlo, PROFILE_STEPS)
    except (FileNotFoundError, ValueError) as e:  # no trace written, or an unreadable one
        return [f"  profile summary unavailable: {e}"]
    return profiling.report_lines(operations)


def measure_checkpoint(state, directory: str | Path) -> dict[str, float]:
    """Seconds of an async Orbax save of the full TrainState: the blocking part (until save()
    returns) and the total (until written). Two saves; the second is reported, so one-time setup
    is not counted. Size on disk in MiB."""
    from bertjax import checkpointing

    manager = checkpointing.create_checkpoint_manager(directory, save_every=1, keep=2)
    metadata = {"bench": True}
    try:
        for step in (1, 2):
            start = time.perf_counter()
            checkpointing.save(manager, step, state, metadata, force=True)
            blocking = time.perf_counter() - start
            manager.wait_until_finished()
            total = time.perf_counter() - start
    finally:
        manager.close()
    files = [f for f in (Path(directory) / "2").rglob("*") if f.is_file()]
    return {
        "checkpoint_blocking_seconds": blocking,
        "checkpoint_total_seconds": total,
        "checkpoint_mib": sum(f.stat().st_size for f in files) / 2**20,
    }


def measure_input_pipeline(
    seq_len: int,
    batch_size: int,
    *,
    seconds: float = 5.0,
    corpus: str | None = None,
    vocab_size: int = 8000,
    cache_dir: str = "",
) -> dict[str, float]:
    """Masked sequences per second out of `pipeline.make_dataset` over the sample corpus (or
    `corpus`), built as bertjax/train.py builds it (dupe_factor 1), timed for `seconds` after
    two warm-up batches. The vocabulary is trained and cached once (its size barely matters)."""
    import tensorflow as tf

    from bertjax.config import defaults, from_config
    from bertjax.data import pipeline
    from bertjax.data.corpus import SAMPLE_CORPUS

    startup.hide_gpus_from_tensorflow(tf)  # done by the command line's start; not by a caller's
    config = defaults()
    config.update(
        corpus=corpus or SAMPLE_CORPUS,
        vocab_size=vocab_size,
        cache_dir=cache_dir,
        max_seq_length=seq_len,
        max_predictions_per_seq=predictions_per_seq(seq_len),
        dupe_factor=1,
    )
    spec = from_config(config)
    data = pipeline.build_pretraining_data(spec.data)
    dataset = pipeline.make_dataset(
        data.source, spec.masking, data.tokenizer, global_batch_size=batch_size, seed=0
    )
    batches = dataset.as_numpy_iterator()
    for _ in range(2):
        next(batches)
    start, count, real = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds or count == 0:
        real += int(next(batches)["input_mask"].sum())
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "input_sequences_per_second": count * batch_size / elapsed,
        "input_real_tokens_per_second": real / elapsed,
    }


def run_bench(
    *,
    model: str,
    seq_len: int,
    batch_size: int,
    steps: int = 10,
    warmup_steps: int = 2,
    precision: str = "fp32",
    devices: int | None = None,
    attention: str | None = None,
    attention_dropout: float | None = None,
    remat: str | None = None,
    positions: str | None = None,
    peers: bool = False,
    peers_venv: str | None = None,
    input_pipeline: bool = False,
    checkpoint: bool = False,
    checkpoint_dir: str | None = None,
    profile_dir: str | None = None,
    quiet: bool = False,
) -> dict:
    """Measures one configuration; returns a flat dict of numbers and labels (see
    bertjax/bench/report.py for what each means). Rates are per second of wall time after warm-up.
    `quiet`: hide TensorFlow's and XLA's start-up notices (bertjax/startup.py)."""
    check_args(model, seq_len, batch_size, steps, precision, peers)
    # Peers first: on an accelerator this process would otherwise hold its memory pool.
    raw_peers = peers and bench_peers.run_peers(
        model, seq_len, batch_size, steps, warmup_steps, peers_venv
    )
    startup.import_quietly(quiet)
    startup.start_jax(quiet)
    import jax

    from bertjax import metrics

    device_list = bench_devices(devices, batch_size)
    config = bench_config(
        model, seq_len, batch_size, precision, attention_implementation=attention,
        attention_probs_dropout_prob=attention_dropout, remat_policy=remat,
        position_embedding_type=positions,
    )  # fmt: skip
    dims = model_dims(model)
    predictions = predictions_per_seq(seq_len)
    flops_per_token = model_flops_per_token(dims, seq_len, predictions / seq_len)
    peak, peak_source = metrics.peak_flops(device_list)
    measured, state = measure_train_step(config, device_list, steps, warmup_steps, profile_dir)
    tokens_per_step = batch_size * seq_len
    tokens_per_second = tokens_per_step / measured["seconds_per_step"]
    result = {
        "model": model, **dims, "vocab_size": VOCAB_SIZE, "seq_len": seq_len,
        "batch_size": batch_size, "precision": precision, "steps": steps,
        "positions": config.position_embedding_type,
        "num_devices": len(device_list), "device_kind": device_list[0].device_kind,
        "platform": device_list[0].platform, "jax_version": jax.__version__,
        "predictions_per_seq": predictions, "flops_per_token": flops_per_token,
        "peak_flops": peak, "peak_source": peak_source, **measured,
        "sequences_per_second": batch_size / measured["seconds_per_step"],
        "tokens_per_second": tokens_per_second,
        "real_tokens_per_second": measured["real_tokens_per_step"] / measured["seconds_per_step"],
        "model_flops_per_second": tokens_per_second * flops_per_token,
        "mfu": tokens_per_second * flops_per_token / peak,
        "profile_dir": profile_dir,
    }  # fmt: skip
    if checkpoint:
        with tempfile.TemporaryDirectory(prefix="bertjax-bench-ckpt-") as scratch:
            result.update(measure_checkpoint(state, Path(checkpoint_dir or scratch) / "bench"))
    del state
    if input_pipeline:
        result.update(measure_input_pipeline(seq_len, batch_size))
    if peers:
        peer_flops = model_flops_per_token(dims, seq_len, 1.0)
        result["peer_flops_per_token"] = peer_flops
        result["peers"] = [
            bench_peers.peer_summary(p, tokens_per_step, peer_flops, peak, tokens_per_second)
            for p in raw_peers
        ]
    result["host_peak_rss_mib"] = host_peak_rss_mib()
    return result


def flag_specs() -> list[tuple]:
    """`bertjax bench`'s flags as (kind, name, default, help), parsed by bertjax/cli.py."""
    return [
        ("enum:" + "|".join(model_sizes()), "model", None, "Model size."),
        ("integer", "seq_len", None, "Tokens per row."),
        ("integer", "batch_size", None, "Rows per step, over all devices."),
        ("integer", "steps", 10, "Timed steps after warm-up."),
        ("integer", "warmup_steps", 2, "Untimed steps after compiling."),
        ("enum:" + "|".join(PRECISIONS), "precision", "fp32", "Compute dtype."),
        ("integer", "devices", None, "Data-parallel devices (default: all)."),
        ("enum:auto|xla|cudnn|splash", "attention", None,
         "Attention kernel (default: the config's auto, chosen from the backend)."),
        ("float", "attention_dropout", None, "0 = the fused attention path."),
        ("enum:none|full|dots_saveable", "remat", None, "Rematerialisation policy."),
        ("enum:absolute|relative_key|rotary", "positions", None, "Default: absolute."),
        ("bool", "peers", False, "Also Hugging Face Flax and PyTorch BERT."),
        ("string", "peers_venv", None, "Peer virtual environment (default .venv-peers)."),
        ("bool", "input_pipeline", False, "Also time make_dataset alone."),
        ("bool", "checkpoint", False, "Also time an Orbax async save."),
        ("string", "checkpoint_dir", None, "Where to save (default: a temporary dir)."),
        ("string", "profile_dir", None, f"jax.profiler trace of {PROFILE_STEPS} steps."),
    ]  # fmt: skip


def check_flags(fv: flags.FlagValues) -> None:
    """UserError for settings that cannot be benchmarked, before anything is imported."""
    check_args(fv.model, fv.seq_len, fv.batch_size, fv.steps, fv.precision, fv.peers)
    if fv.profile_dir and Path(fv.profile_dir).expanduser().is_file():  # a trace is a folder
        raise UserError(f"--profile_dir={fv.profile_dir} is a file; name a directory")


def main(fv: flags.FlagValues) -> None:
    """`bertjax bench FLAGS`, parsed by bertjax/cli.py: measures and prints the report."""
    names = [name for _, name, _, _ in flag_specs()]  # run_bench's parameters, one flag each
    result = run_bench(**{name: fv[name].value for name in names}, quiet=not fv.debug)
    print("\n".join(report.report_lines(result)), flush=True)
