"""Fault-injection benchmark: SIGKILL a real training run at N random steps, restart it with the
same command each time, and check that the final per-step metrics are bit-identical to an
uninterrupted run. Prints one row per kill (where it died, where it resumed, steps redone).

  python -m benchmarks.kill_resume --kills=10 --steps=40 --checkpoint_every=4
"""

import argparse
import random
import signal
import tempfile
import time
from pathlib import Path

from bertjax import train
from tests.test_reliability import cli_args, read_metrics, start_and_signal_after
from tests.test_smoke import small_smoke_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--checkpoint_every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bertjax-kill-"))
    config = small_smoke_config(
        tmp, num_train_steps=args.steps, log_every=1, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=3,
    )  # fmt: skip
    start = time.perf_counter()
    train.train_and_evaluate(config, tmp / "reference")
    reference = read_metrics(tmp / "reference")
    print(f"reference run: {args.steps} steps in {time.perf_counter() - start:.1f} s")

    rng = random.Random(args.seed)
    kill_points = sorted(rng.sample(range(1, args.steps), args.kills))
    workdir = tmp / "interrupted"
    command = cli_args(config, workdir)
    print(f"{'kill':>4} {'asked at':>8} {'died after':>10} {'resumed at':>10} {'redone':>6}")
    for number, kill_at in enumerate(kill_points, 1):
        resumed = _latest_checkpoint(workdir)
        returncode, _ = start_and_signal_after(command, workdir, kill_at, signal.SIGKILL)
        died = read_metrics(workdir)[-1]["step"] if (workdir / "metrics.jsonl").exists() else 0
        redone = died - _latest_checkpoint(workdir)
        print(f"{number:>4} {kill_at:>8} {died:>10} {resumed:>10} {redone:>6}  rc={returncode}")
    returncode, _ = start_and_signal_after(command, workdir, 10**9, signal.SIGKILL)
    identical = read_metrics(workdir) == reference
    print(f"final run rc={returncode}; per-step metrics bit-identical to reference: {identical}")
    print(f"kills={args.kills} identical={identical}")


def _latest_checkpoint(workdir: Path) -> int:
    directory = workdir / "checkpoints"
    steps = (
        [int(p.name) for p in directory.iterdir() if p.name.isdigit()] if directory.exists() else []
    )
    return max(steps, default=0)


if __name__ == "__main__":
    main()
