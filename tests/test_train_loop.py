"""bertjax.train_loop with stand-ins for the step, the data, the writer and the checkpoints:
which steps it evaluates, logs, checks and saves (the real loop runs in tests/test_smoke.py and
tests/test_reliability.py)."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import checkpointing, sharding
from bertjax.config import LoopSpec
from bertjax.train_loop import train_loop


class Manager:
    """Orbax's CheckpointManager as the loop uses it; `saved` lists the steps saved."""

    def __init__(self, every: int):
        self.every, self.saved = every, []

    def latest_step(self):
        return self.saved[-1] if self.saved else None

    def should_save(self, step: int) -> bool:
        return step % self.every == 0


def run(monkeypatch, total: int, nonfinite_counts=None, **loop_fields) -> dict:
    """Runs `total` stand-in steps (step s reports nonfinite_counts[s-1] consecutive non-finite
    steps); returns the steps evaluated, written and saved, and the loop's result."""

    def save(manager, step, *_, **__):
        manager.saved.append(step)

    monkeypatch.setattr(checkpointing, "save", save)
    counts = iter(nonfinite_counts or [0] * total)
    fields = dict(batch_size=1, num_train_steps=total, progress_bar=False, checkpoint_every=100)
    loop = LoopSpec(**fields | loop_fields)
    mesh = sharding.create_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
    data = types.SimpleNamespace(as_numpy_iterator=lambda: iter([{"x": np.zeros((1, 2))}] * total))
    state = types.SimpleNamespace(params="params", nonfinite_steps=0)

    def step(state, batch, key):
        return state, {"loss": jnp.float32(1.0), "consecutive_nonfinite": jnp.int32(next(counts))}

    seen = {"evaluated": [], "written": []}
    writer = types.SimpleNamespace(write=lambda done, _: seen["written"].append(done))
    logged = {"loss": 1.0, "mlm_accuracy": 0.5, "tokens_per_second": 1.0}
    throughput = types.SimpleNamespace(interval_metrics=lambda *_: dict(logged))
    manager = Manager(loop.checkpoint_every)
    seen["saved"] = manager.saved
    evaluator = (lambda params, done: seen["evaluated"].append(done)) if loop.eval_every else None
    seen["result"] = train_loop(
        loop, state, data, step, mesh, manager, writer, {}, 0, throughput, evaluator
    )
    return seen


def test_it_evaluates_every_eval_every_steps_and_at_the_last(monkeypatch):
    seen = run(monkeypatch, 7, eval_every=3, log_every=3)
    assert seen["evaluated"] == [3, 6, 7]  # 7: the end, not a multiple of 3
    assert seen["written"] == [1, 3, 6, 7] and seen["saved"] == [7]
    assert seen["result"][1] == 7


def test_the_last_steps_non_finite_count_is_checked_before_the_final_save(monkeypatch):
    """Policy "stop" with 2 allowed: steps 3 and 4 of 4 skipped stop the run at step 4 (the
    count of a step is read while the next runs; the last step's own count is read at once)."""
    with pytest.raises(FloatingPointError, match="NaN/Inf in steps 3-4;.* checkpointed at step 4"):
        run(monkeypatch, 4, [0, 0, 1, 2], nonfinite_policy="stop", max_consecutive_nonfinite=2)
