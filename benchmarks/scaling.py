"""Tokens/s and peak memory vs sequence length and model size: one
`bertjax.bench.run.run_bench` per point, each in its own process (a fresh XLA and a clean peak-RSS
count), written as a Markdown table, a PNG plot and the raw JSON to --out.

  python -m benchmarks.scaling --out=docs/scaling --models=tiny,mini,small,medium,base \
      --seq_lens=128,256,512 --tokens_per_batch=4096 --steps=5

Every point has the same tokens per batch (batch = tokens_per_batch / seq_len), so work per
step is comparable across lengths. A point that fails (e.g. out of memory) is reported, not fatal.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bertjax import host_memory

REPO_ROOT = Path(__file__).resolve().parent.parent

COLUMNS = ("model", "seq_len", "batch_size", "tokens/s", "MFU", "step ms", "compile s",
           "XLA MiB/device", "device peak MiB", "host RSS MiB")  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for scaling.md, scaling.png, scaling.json")
    parser.add_argument("--models", default="tiny,mini,small,medium,base")
    parser.add_argument("--seq_lens", default="128,256,512")
    parser.add_argument("--tokens_per_batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup_steps", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON kwargs of one point
    args = parser.parse_args(argv)
    if not args.out and not args.worker:
        parser.error("--out=DIR is required")
    return args


def point_kwargs(model: str, seq_len: int, args: argparse.Namespace) -> dict:
    """run_bench keyword arguments of one point (at least one row per batch, one device)."""
    batch_size = max(args.tokens_per_batch // seq_len, 1)
    return dict(model=model, seq_len=seq_len, batch_size=batch_size, steps=args.steps,
                warmup_steps=args.warmup_steps, precision=args.precision, devices=1)  # fmt: skip


def run_point(kwargs: dict) -> dict:
    """One point in a fresh process; its result dict, or the kwargs with an `error`."""
    command = [sys.executable, "-m", "benchmarks.scaling", f"--worker={json.dumps(kwargs)}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if host_memory.should_reexec(env):  # the allocator setting `bertjax bench` runs with
        env = host_memory.huge_pages_environment(env)
    out = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        error = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {**kwargs, "error": error[:200]}
    return json.loads(lines[-1][len("RESULT ") :])


def table_row(r: dict) -> list[str]:
    if "error" in r:
        return [r["model"], str(r["seq_len"]), str(r["batch_size"]), f"failed: {r['error']}"]
    device_peak = r.get("device_peak_mib")
    return [
        r["model"], str(r["seq_len"]), str(r["batch_size"]), f"{r['tokens_per_second']:.0f}",
        f"{r['mfu']:.3f}", f"{1e3 * r['seconds_per_step']:.1f}", f"{r['compile_seconds']:.1f}",
        f"{r['xla_total_mib']:.0f}", "-" if device_peak is None else f"{device_peak:.0f}",
        f"{r['host_peak_rss_mib']:.0f}",
    ]  # fmt: skip


def markdown(results: list[dict]) -> str:
    """The table, with the device, precision and the MFU peaks it was measured with."""
    done = [r for r in results if "error" not in r]
    header = ""
    if done:
        first = done[0]
        peaks = [r["peak_flops"] for r in done]
        # Each point measures its CPU peak in its own process, so the range is what MFU used.
        low, high = f"{min(peaks):.3g}", f"{max(peaks):.3g}"
        peak = low if low == high else f"{low}-{high}"
        header = (
            f"{first['num_devices']} x {first['device_kind']}, {first['precision']}, jax "
            f"{first['jax_version']}; MFU peak {peak} FLOP/s ({first['peak_source']}, each "
            "point against its own); XLA MiB/device = arguments + outputs + temporaries - "
            "aliased (donated) of the compiled train step.\n\n"
        )
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in results]
    return header + "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Two panels against sequence length, one line per model: tokens/s and XLA MiB/device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4))
    for model in dict.fromkeys(r["model"] for r in results):
        points = [r for r in results if r["model"] == model and "error" not in r]
        seq_lens = [r["seq_len"] for r in points]
        speed.plot(seq_lens, [r["tokens_per_second"] for r in points], "o-", label=model)
        memory.plot(seq_lens, [r["xla_total_mib"] for r in points], "o-", label=model)
    for axis, label in ((speed, "tokens/s"), (memory, "XLA memory per device (MiB)")):
        axis.set(xlabel="sequence length", ylabel=label, xscale="log", yscale="log")
        axis.set_xticks(sorted({r["seq_len"] for r in results}))
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.grid(True, which="both", alpha=0.3)
    speed.legend(title="model")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        from bertjax.bench.run import run_bench

        print("RESULT " + json.dumps(run_bench(**json.loads(args.worker))), flush=True)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for model in args.models.split(","):
        for seq_len in (int(s) for s in args.seq_lens.split(",")):
            results.append(run_point(point_kwargs(model, seq_len, args)))
            print(" | ".join(table_row(results[-1])), flush=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "scaling.md").write_text(markdown(results))
    plot(results, out / "scaling.png")
    print(f"wrote {out / 'scaling.md'}, {out / 'scaling.png'} and {out / 'scaling.json'}")


if __name__ == "__main__":
    main()
