"""Metric writers (JSON Lines + TensorBoard), throughput and model FLOPs utilisation (MFU).

MFU = achieved model FLOP/s / peak FLOP/s, with model FLOPs per token (forward + backward)

  F = 6·L·(4·d² + 2·d·d_ff) + 12·L·s·d + 6·(d² + d·V)·f_pred

(L layers, hidden d, feed-forward d_ff, sequence length s, vocabulary V, f_pred the fraction of
positions that reach the vocabulary projection: max_predictions_per_seq / s, since the MLM head
runs only on the gathered masked positions). Peak: the datasheet bf16 dense rate for known
accelerators; on CPU (and unknown devices) the dense float32 matmul rate measured through XLA on
this machine.
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from etils import epath

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
) -> float:
    """Training FLOPs (forward + backward) per token, formula in the module docstring."""
    d, L = hidden_size, num_layers
    dense = 6 * L * (4 * d * d + 2 * d * intermediate_size)
    attention = 12 * L * seq_len * d
    head = 6 * (d * d + d * vocab_size) * predictions_fraction
    return float(dense + attention + head)


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
    return measure_matmul_flops(), f"measured fp32 XLA matmul on {kind or devices[0].platform}"


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
