"""The stages of benchmarks/gpu_check.sh, each writing one JSON file (see docs/performance.md).

  python -m benchmarks.gpu_check export --out=CARRY/batches [--model=base --seq_len=128
      --batch_size=256 --num_batches=200]                      (machine with TensorFlow)
  python -m benchmarks.gpu_check bench --model=base --seq_len=128 --batch_size=256 --out=F.json
  python -m benchmarks.gpu_check fill --probe=F.json [--fraction=0.85]     (prints a batch size)
  python -m benchmarks.gpu_check train --batches=CARRY/batches --out=DIR [--steps=200] [--cpu]
  python -m benchmarks.gpu_check summary --out=DIR
  python -m benchmarks.gpu_check wheels --carry=CARRY --site=DIR   (prints what it put on DIR)

`bench` is `bertjax bench` (its library function, so the numbers come back as JSON), bf16 with
the fused attention path (attention dropout 0: cuDNN on an NVIDIA GPU); with --profile it writes
the timed result first, then profiles 3 more steps in a second run (compiled again from the
persistent cache) and adds the trace's kernels. `fill` reads a probe's
memory analysis and prints the batch that fills `fraction` of the device. `train` runs
`bertjax.train_from_batches` on carried batches with checkpoints halfway and at the end, then
replays the second half from the halfway checkpoint in a copy of the workdir: the restored run
must land where the first one did. Neither needs TensorFlow nor ml_collections. `wheels` unzips
a carried wheel onto DIR where the machine lacks the package or has an older version than the
carried (pinned) one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

TRAIN_FIELDS = dict(
    attention_probs_dropout_prob=0.0,  # the fused (cuDNN) attention path in training too
    log_every=10,
    keep_checkpoints=3,
    progress_bar=False,
)


def _run_bench(**kwargs) -> dict:
    try:  # the bench/ subpackage
        from bertjax.bench.run import run_bench
    except ImportError:
        from bertjax.bench import run_bench
    return run_bench(**kwargs)


def _report_lines(result: dict) -> list[str]:
    try:
        from bertjax.bench.report import report_lines
    except ImportError:
        from bertjax.bench import report_lines
    return report_lines(result)


def device_memory_limit() -> int | None:
    """Bytes the first device's allocator may use (None on CPU)."""
    import jax

    return (jax.devices()[0].memory_stats() or {}).get("bytes_limit")


def trace_summary(profile_dir: str, steps: int, top: int = 25) -> list[dict]:
    """Device time per kernel name in the newest trace under `profile_dir`, per step, the
    largest `top` (GPU streams only; on CPU every thread's events)."""
    traces = sorted(Path(profile_dir).rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not traces:
        return []
    with gzip.open(traces[-1]) as f:
        events = json.load(f).get("traceEvents", [])
    names = {
        e["pid"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    gpu = {pid for pid, name in names.items() if "GPU" in name or "gpu" in name}
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and (not gpu or e.get("pid") in gpu):
            totals[e.get("name", "?")] += e.get("dur", 0.0)
    rows = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [{"name": name[:160], "ms_per_step": us / 1e3 / steps} for name, us in rows]


def bench(args) -> dict:
    """`bertjax bench` at one size and batch, bf16, fused attention: its result dict + memory
    limit, written to --out; with --profile, then the profile of a second run added to it."""
    settings = dict(
        model=args.model,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        precision=args.precision,
        attention=args.attention,
        attention_dropout=args.attention_dropout,
        positions=args.positions,
    )
    result = _run_bench(**settings, steps=args.steps, warmup_steps=args.warmup_steps)
    print("\n".join(_report_lines(result)), flush=True)
    result["device_bytes_limit"] = device_memory_limit()
    if args.profile:  # the timed numbers are kept should the profile run out of time
        write_result(result, Path(args.out))
        profile_dir = str(Path(args.out).with_suffix("")) + "-profile"
        profiled = _run_bench(**settings, steps=1, warmup_steps=1, profile_dir=profile_dir)
        result["profile_lines"] = profiled["profile_lines"]
        result["profile_dir"] = profile_dir
        result["trace_kernels"] = trace_summary(profile_dir, steps=3)
        print("\n".join(profiled["profile_lines"]), flush=True)
    return result


def fill_batch(probe: dict, fraction: float, multiple: int = 16) -> int:
    """The batch that fills `fraction` of device memory, extrapolated from a probe bench: the
    state (arguments + outputs - aliased) is fixed, every temporary byte is counted as growing
    with the batch (gradients do not, so this errs small). Without a memory limit (CPU): 2x."""
    batch, limit = probe["batch_size"], probe.get("device_bytes_limit")
    if not limit:
        return 2 * batch
    mib = 2**20
    fixed = (probe["xla_argument_mib"] + probe["xla_output_mib"] - probe["xla_alias_mib"]) * mib
    per_row = probe["xla_temp_mib"] * mib / batch
    rows = int((fraction * limit - fixed) / per_row)
    return max(multiple, rows // multiple * multiple)


def losses_by_step(metrics_file: Path) -> dict[int, float]:
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def train(args) -> dict:
    """Carried batches: `steps` steps with checkpoints at steps/2 and steps, restore of the last,
    then a replay of the second half from the halfway checkpoint in a copy of the workdir."""
    import jax
    import numpy as np

    from bertjax import train_from_batches as carried

    out = Path(args.out)
    jax.config.update("jax_compilation_cache_dir", str(out / "jax_cache"))  # the replay reuses it
    half = args.steps // 2
    dtype = "float32" if args.cpu else "bfloat16"
    fields = dict(TRAIN_FIELDS, dtype=dtype, num_train_steps=args.steps, checkpoint_every=half,
                  learning_rate=args.learning_rate,
                  attention_implementation=args.attention)  # fmt: skip
    fields["warmup_steps"] = max(1, args.steps // 10)
    spec = carried.run_spec(fields, args.model)
    workdir, replay = out / "train", out / "train_replay"
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    first = carried.train_from_batches(spec, args.batches, workdir)
    first_seconds = time.perf_counter() - start
    step, state = carried.restore_latest(spec, args.batches, workdir)
    # Replay: the workdir as it was at the halfway checkpoint, resumed to the end.
    shutil.rmtree(replay, ignore_errors=True)
    shutil.copytree(workdir, replay, ignore=shutil.ignore_patterns(str(args.steps)))
    start = time.perf_counter()
    second = carried.train_from_batches(spec, args.batches, replay)
    replay_seconds = time.perf_counter() - start
    replay_step, replayed = carried.restore_latest(spec, args.batches, replay)
    params, replayed_params = (jax.tree.leaves(s.params) for s in (state, replayed))
    scale = max(float(np.abs(np.asarray(p)).max()) for p in params)
    difference = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(params, replayed_params, strict=True)
    )
    curve = losses_by_step(workdir / "metrics.jsonl")
    replay_curve = losses_by_step(replay / "metrics.jsonl")
    first_loss, last_loss = curve[min(curve)], curve[args.steps]
    result = {
        "check": "train",
        "model": args.model,
        "dtype": dtype,
        "attention_implementation": args.attention,
        "steps": args.steps,
        "batches_dir": str(args.batches),
        "seconds_first_run": first_seconds,
        "seconds_replay": replay_seconds,
        "final_metrics": first.final_metrics,
        "loss_curve": curve,
        "replay_loss_curve": replay_curve,
        "loss_first_logged": first_loss,
        "loss_last": last_loss,
        "restored_step": step,
        "replay_started_at": second.start_step,
        "replay_restored_step": replay_step,
        "replay_final_loss_difference": abs(replay_curve[args.steps] - last_loss),
        "replay_param_max_abs_difference": difference,
        "param_max_abs": scale,
    }
    result["passed"] = bool(
        last_loss < first_loss - 0.5
        and step == args.steps
        and second.start_step == half
        and replay_step == args.steps
        and result["replay_final_loss_difference"] < 0.05
        and math.isfinite(difference)
        and difference <= 0.05 * scale
    )
    return result


def export(args) -> dict:
    """Masked batches from the run's own pipeline (needs TensorFlow): the carried data."""
    from bertjax import train_from_batches as carried
    from bertjax.data import batch_files

    fields = dict(
        vocab_size=args.vocab_size,
        max_seq_length=args.seq_len,
        max_predictions_per_seq=math.ceil(0.15 * args.seq_len),  # BERT: 20 at 128
        batch_size=args.batch_size,
        dupe_factor=args.dupe_factor,
    )
    spec = carried.run_spec(fields, args.model)
    start = time.perf_counter()
    manifest = batch_files.export_batches(spec, args.out, args.num_batches)
    size = sum(f.stat().st_size for f in Path(args.out).iterdir())
    return {**manifest, "seconds": time.perf_counter() - start, "bytes": size}


def environment(args) -> dict:
    """Python, package versions (the CUDA plugin's included), devices, nvidia-smi's line."""
    import importlib.metadata as metadata
    import platform
    import subprocess

    import jax

    names = ["jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ml-collections"]
    names += ["absl-py", "tensorflow"]
    names += [
        name
        for name in (d.metadata["Name"] for d in metadata.distributions())
        if name and ("cuda" in name or "cudnn" in name)
    ]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        smi = None
    device = jax.devices()[0]
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "python": platform.python_version(),
        "versions": versions,
        "cudnn_version": cudnn_version(),
        "packages_from_carried_wheels": os.environ.get("GPU_CHECK_CARRIED", "").split(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": device.device_kind,
        "memory_stats": device.memory_stats(),
        "nvidia_smi": smi,
    }


def cudnn_version() -> int | None:
    """The cuDNN library version JAX loaded (e.g. 91000 for 9.10.0); None without CUDA."""
    try:
        from jax._src.lib import cuda_versions
    except ImportError:
        return None
    if cuda_versions is None:
        return None
    try:
        return int(cuda_versions.cudnn_get_version())
    except Exception:  # noqa: BLE001 - a plugin without cuDNN, or an older jaxlib
        return None


def carried_wheels(carry: Path, site: Path) -> list[str]:
    """Unzips each wheel of `carry`/wheels onto `site` where the machine lacks its package or
    has an older version than the wheel's (pure-Python wheels: a zip unpacked is installed).
    Returns 'name==version' of each one unzipped."""
    import importlib.metadata as metadata
    import zipfile

    from packaging.version import Version  # on the device's package list, and beside pip here

    used = []
    for wheel in sorted((carry / "wheels").glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) < Version(version):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
            used.append(f"{name}=={version}")
    return used


def summary(args) -> dict:
    """Every stage's JSON under --out, with the headline numbers side by side."""
    out = Path(args.out)
    stages = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    stages.pop("summary", None)
    environment = stages.get("environment", {})
    benches = [
        {
            key: r.get(key)
            for key in (
                "model",
                "seq_len",
                "batch_size",
                "precision",
                "positions",
                "attention_kernel",
                "tokens_per_second",
                "seconds_per_step",
                "mfu",
                "compile_seconds",
                "xla_total_mib",
                "device_peak_mib",
                "device_kind",
                "jax_version",
            )
        }  # fmt: skip
        for name, r in stages.items()
        if name.startswith("bench-")
    ]
    return {
        "date_utc": environment.get("date_utc"),
        "device_kind": environment.get("device_kind"),
        "versions": environment.get("versions"),
        "bench": benches,
        "attention_passed": stages.get("attention", {}).get("passed"),
        "train_attention": stages.get("train", {}).get("attention_implementation"),
        "train_passed": stages.get("train", {}).get("passed"),
        "stages_present": sorted(stages),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("bench")
    p.add_argument("--model", required=True)
    p.add_argument("--seq_len", type=int, required=True)
    p.add_argument("--batch_size", type=int, required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup_steps", type=int, default=2)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--attention", default="auto")
    p.add_argument("--attention_dropout", type=float, default=0.0)
    p.add_argument("--positions", default=None, help="absolute (default), relative_key, rotary")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--out", required=True)
    p = commands.add_parser("fill")
    p.add_argument("--probe", required=True)
    p.add_argument("--fraction", type=float, default=0.85)
    p = commands.add_parser("train")
    p.add_argument("--batches", required=True)
    p.add_argument("--model", default="base")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--attention", default="auto", help="attention_implementation")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--out", required=True)
    p = commands.add_parser("export")
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="base")
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--num_batches", type=int, default=200)
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--dupe_factor", type=int, default=5)
    for name in ("summary", "env"):
        p = commands.add_parser(name)
        p.add_argument("--out", required=True)
    p = commands.add_parser("wheels")
    p.add_argument("--carry", required=True)
    p.add_argument("--site", required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "fill":
        print(fill_batch(json.loads(Path(args.probe).read_text()), args.fraction))
        return
    if args.command == "wheels":
        print(" ".join(carried_wheels(Path(args.carry), Path(args.site))))
        return
    commands = dict(bench=bench, train=train, export=export, summary=summary, env=environment)
    result = commands[args.command](args)
    target = Path(args.out)
    if args.command == "train":
        target = target / "train.json"
    elif args.command in ("export", "summary"):
        target = target / f"{args.command}.json"
    elif args.command == "env":
        target = target / "environment.json"
    write_result(result, target)
    print(f"{args.command}: {target}", flush=True)
    if args.command == "export":
        # TensorFlow's teardown after an infinite tf.data iterator can take minutes on a busy
        # machine; everything is written.
        sys.stdout.flush()
        os._exit(0)


def write_result(result: dict, target: Path) -> None:
    """`result`'s JSON-serialisable entries, written to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    serializable = {k: v for k, v in result.items() if _is_json(v)}
    target.write_text(json.dumps(serializable, indent=2, default=str) + "\n")


def _is_json(value) -> bool:
    try:
        json.dumps(value, default=str)
    except (TypeError, ValueError):
        return False
    return True


if __name__ == "__main__":
    main()
