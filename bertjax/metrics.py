"""Metric writers (JSON Lines + TensorBoard), the logged intervals, throughput and model FLOPs
utilisation (MFU).

MFU = achieved model FLOP/s / peak FLOP/s, with model FLOPs per token (forward + backward)

  F = 6·L·(4·d² + 2·d·d_ff) + 12·L·s·d + 6·(d·e + e·V)·f_pred [+ 6·e·d when e != d]

(L layers, hidden d, feed-forward d_ff, sequence length s, vocabulary V, embedding width e (d
unless factorised: the last term is then the e -> d projection at every position), f_pred the
fraction of positions that reach the vocabulary projection: max_predictions_per_seq / s, since
the MLM head runs only on the gathered masked positions). Peak: the datasheet bf16 dense rate
for known accelerators; on CPU (and unknown devices) the dense float32 matmul rate measured
through XLA on this machine.
"""

import contextlib
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath

from bertjax import losses, paths

# Datasheet dense bf16 peaks, FLOP/s per device, matched against jax.Device.device_kind.
DATASHEET_PEAK_FLOPS = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v5": 459e12,
}


def flops_per_token(
    *,
    num_layers: int,
    hidden_size: int,
    intermediate_size: int,
    seq_len: int,
    vocab_size: int,
    predictions_fraction: float,
    embedding_size: int = 0,
) -> float:
    """Training FLOPs (forward + backward) per token, formula in the module docstring
    (`embedding_size` 0: the hidden size)."""
    d, L, e = hidden_size, num_layers, embedding_size or hidden_size
    dense = 6 * L * (4 * d * d + 2 * d * intermediate_size)
    attention = 12 * L * seq_len * d
    head = 6 * (d * e + e * vocab_size) * predictions_fraction
    projection = 6 * e * d if e != d else 0
    return float(dense + attention + head + projection)


def measure_matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul FLOP/s of the default device, through XLA: best of `repeats` timed
    runs of a `size`² matmul (2048²: ~0.1 s each on a 2-core CPU, long enough that thread
    wake-up and timer noise do not move the number) after two warm-up runs."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    for _ in range(2):
        matmul(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops(devices: list[jax.Device]) -> tuple[float, str]:
    """(peak FLOP/s of all `devices` together, where the number comes from)."""
    kind = getattr(devices[0], "device_kind", "")
    for name, peak in DATASHEET_PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return peak * len(devices), f"datasheet bf16 dense, {len(devices)} x {kind}"
    # CPU: every forced host device shares the same cores, so the machine's measured rate is the
    # peak whatever the device count.
    return _host_matmul_flops(), f"measured fp32 XLA matmul on {kind or devices[0].platform}"


@functools.cache
def _host_matmul_flops() -> float:
    """measure_matmul_flops() once per process: 1.2-1.6 s on the 2-core CPU machine, paid by
    every run a process starts (the test suite starts hundreds) for the same number."""
    return measure_matmul_flops()


class MetricsWriter:
    """Writes one JSON line per log step to WORKDIR/metrics.jsonl and TensorBoard events to
    WORKDIR/tensorboard (JSON Lines only where TensorFlow is not installed, e.g. an accelerator
    machine fed carried batches). Only process 0 writes; other processes get a writer that does
    nothing."""

    def __init__(self, workdir: str | epath.Path, *, enabled: bool = True):
        self.enabled = enabled
        self.jsonl_path = epath.Path(workdir) / "metrics.jsonl"  # local or gs://
        self.tensorboard_dir = epath.Path(workdir) / "tensorboard"
        self._summary_writer = None
        if enabled:
            try:
                import tensorflow as tf  # deferred: only the writing process needs TF summaries
            except ImportError:
                logging.warning("no TensorFlow: metrics go to %s only", self.jsonl_path)
                return
            self._tf = tf
            self._summary_writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _to_float(v) for k, v in scalars.items()}}
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._summary_writer is None:
            return
        with self._summary_writer.as_default(step=int(step)):
            for name, value in record.items():
                if name != "step":
                    self._tf.summary.scalar(name, value)
        self._summary_writer.flush()

    def close(self) -> None:
        if self._summary_writer is not None:
            self._summary_writer.close()


def _to_float(value) -> float:
    return float(np.asarray(value))


def is_log_step(step: int, log_every: int, total: int) -> bool:
    """Whether a metrics line is written after `step` (1-based): the first step, every multiple
    of log_every and the last, counted from the run's start whatever step it resumed at, so a
    resumed run writes the lines an uninterrupted one writes."""
    return step == 1 or step % log_every == 0 or step == total


class MetricsInterval:
    """Metric sums of the steps since the last metrics line.

    Each checkpoint's metadata carries them (`carried`), and a run resumed from it starts from
    them, so its first line averages over the same steps as the uninterrupted run's (the
    device adds the same float32 values in the same order: bit-identical). Rates count only the
    steps this process timed.
    """

    METADATA_KEY = "metrics_interval"

    def __init__(self, carried: dict | None = None):
        self.sums, self.steps = None, 0
        if carried:
            self.sums = {k: jnp.asarray(v, dtype) for k, (v, dtype) in carried["sums"].items()}
            self.steps = int(carried["steps"])
        self.timed_steps, self.start = 0, time.perf_counter()

    def add(self, step_metrics: dict) -> None:
        self.sums = (
            step_metrics if self.sums is None else jax.tree.map(jnp.add, self.sums, step_metrics)
        )
        self.steps += 1
        self.timed_steps += 1

    def close(self) -> tuple[dict, int, int, float]:
        """(host sums, steps, timed steps, seconds) of the interval; the next one starts."""
        closed = (jax.device_get(self.sums), self.steps, self.timed_steps,
                  time.perf_counter() - self.start)  # fmt: skip
        self.__init__()
        return closed

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside is not counted in the interval's rates."""
        start = time.perf_counter()
        yield
        self.start += time.perf_counter() - start

    def carried(self) -> dict | None:
        """The open interval as JSON (values and dtypes), None when no step is in it."""
        if self.sums is None:
            return None
        host = jax.device_get(self.sums)
        sums = {k: [np.asarray(v).item(), str(np.asarray(v).dtype)] for k, v in host.items()}
        return {"steps": self.steps, "sums": sums}


class Throughput:
    """Turns an interval's sums into its logged means, tokens/s and MFU."""

    def __init__(self, tokens_per_step: int, flops_per_token: float, devices: list[jax.Device]):
        self.tokens_per_step = tokens_per_step
        self.flops_per_step = tokens_per_step * flops_per_token
        self.peak, source = peak_flops(devices)
        logging.info("MFU peak: %.3g FLOP/s (%s)", self.peak, source)

    def interval_metrics(self, host_sums: dict, steps: int, timed_steps: int, elapsed: float):
        """The logged line of an interval of `steps` steps: losses, accuracies, grad_norm and
        learning_rate over its applied steps (absent when every update was skipped: a mean of
        nothing), param_norm over all of them; rates over the `timed_steps` that took `elapsed`
        seconds in this process."""
        applied = float(host_sums["finite_steps"])
        result = losses.summarize(host_sums) if applied else {}
        if applied:
            result["grad_norm"] = float(host_sums["grad_norm"]) / applied
        result["param_norm"] = float(host_sums["param_norm"]) / steps
        if applied:
            result["learning_rate"] = float(host_sums["learning_rate"]) / applied
        result["steps_per_second"] = timed_steps / elapsed
        result["tokens_per_second"] = timed_steps * self.tokens_per_step / elapsed
        result["mfu"] = timed_steps * self.flops_per_step / elapsed / self.peak
        return result


def drop_metrics_after(path: epath.Path, step: int) -> None:
    """Removes metric lines logged after `step` (by a run killed before its next checkpoint), so
    the resumed run's lines replace them instead of appearing twice, and a line cut short (a
    kill or a full disk mid-write), which blocked every resume with a JSONDecodeError. The file
    is rewritten beside itself and renamed: a failed rewrite loses no line."""
    if not path.exists():
        return
    text = path.read_text()
    kept = [
        line.rstrip("\n") + "\n"  # a whole last record cut before its newline gets one back
        for line in text.splitlines(keepends=True)
        if (record := read_record(line)) is not None and record["step"] <= step
    ]
    if "".join(kept) != text:
        paths.write_text_atomically(path, "".join(kept))


def read_record(line: str, key: str = "step") -> dict | None:
    """A metrics line's record; None for a blank or unreadable one (cut short, or without
    `key`)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and key in record else None


def last_logged_metrics(path: epath.Path) -> dict[str, float]:
    """The last training-metrics line (held-out evaluation lines carry eval_* keys only)."""
    if not path.exists():
        return {}
    records = filter(None, map(read_record, path.read_text().splitlines()))
    training = [record for record in records if "loss" in record]
    return training[-1] if training else {}
