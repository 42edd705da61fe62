"""The pretraining step loop: a step per batch, the logged line and progress, held-out
evaluation, the non-finite policy, checkpoints, and a graceful stop on SIGTERM or Ctrl-C.
`train.train_and_evaluate` and `train_from_batches` set up what it runs."""

from __future__ import annotations

import re
from collections.abc import Callable

import jax

from bertjax import checkpointing, metrics, preemption, sharding
from bertjax.config import LoopSpec
from bertjax.errors import UserError
from bertjax.progress import Progress


def train_loop(
    loop: LoopSpec,
    state,
    dataset,
    p_train_step,
    mesh,
    manager,
    writer,
    metadata,
    start_step,
    throughput,
    evaluator=None,
    *,
    carried_interval: dict | None = None,
) -> tuple[dict[str, float], int]:
    """Runs steps start_step..num_train_steps; logs at `metrics.is_log_step`s; checkpoints;
    evaluates on held-out data every eval_every steps and at the end (`evaluator(params, step)`).
    `carried_interval`: the open metrics interval saved with the restored checkpoint
    (`metrics.MetricsInterval`).

    Returns (last logged metrics, last step done). SIGTERM (or Ctrl-C) ends the loop early after a
    checkpoint of the step in flight; too many consecutive non-finite steps raise (policy
    "stop") after a checkpoint of the last good state.
    """
    dropout_key = jax.random.key(loop.seed + 1)
    total = int(loop.num_train_steps)
    # A bar on a terminal, a line per logged interval in log files (bertjax/progress.py).
    show = loop.progress_bar and jax.process_index() == 0
    progress = Progress(total, initial=start_step, enabled=show)
    interval, last_metrics = metrics.MetricsInterval(carried_interval), {}
    batches = dataset.as_numpy_iterator()
    lagged = None  # (step, consecutive non-finite count) of the previous step
    done = start_step

    def save(force: bool = False) -> None:
        if done == start_step or manager.latest_step() == done:  # nothing new since the save
            return
        if force or manager.should_save(done):
            saved = {**metadata, metrics.MetricsInterval.METADATA_KEY: interval.carried()}
            checkpointing.save(manager, done, state, saved, force=True)

    with preemption.PreemptionWatcher() as watcher:
        for step in range(start_step, total):
            batch = sharding.global_batch_from_local(_next_batch(batches, step, save), mesh)
            state, step_metrics = p_train_step(state, batch, dropout_key)
            done = step + 1
            consecutive = step_metrics.pop("consecutive_nonfinite")
            interval.add(step_metrics)
            progress.update(1)
            if metrics.is_log_step(done, loop.log_every, total):
                last_metrics = throughput.interval_metrics(*interval.close())
                last_metrics["nonfinite_steps"] = int(state.nonfinite_steps)
                writer.write(done, last_metrics)
                progress.report(_progress_fields(last_metrics))
            if evaluator and (done % loop.eval_every == 0 or done == total):
                with interval.paused():  # evaluation time is not in tokens/s
                    evaluator(state.params, done)
            # The previous step's count is read while this step runs (no host stall); the last
            # step's own count is read before the final save.
            check = (done, consecutive) if done == total else lagged
            if check is not None:
                _apply_nonfinite_policy(loop, check, done, save)
            lagged = (done, consecutive)
            if watcher.should_stop(done):
                save(force=True)
                print(
                    f"{watcher.stopped_by}: saved a checkpoint at step {done}; re-run the same "
                    "command to resume."
                )
                break
            save(force=done == total)
    progress.close()
    return last_metrics, done


def _next_batch(batches, step: int, save: Callable[..., None]) -> dict:
    """The batch of `step`; a damaged input file (TFRecord's checksum) is a UserError after a
    checkpoint of the steps done (`save`), not a traceback."""
    try:
        return next(batches)
    except Exception as e:
        if type(e).__name__ != "DataLossError":  # tf.errors.DataLossError; no TF import here
            raise
        save(force=True)
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", str(e), flags=re.S).strip()
        raise UserError(
            f"the training data is damaged ({reason}, in the batch of step {step + 1}); prepare "
            f"or copy it again, then re-run the same command to go on from step {step} (saved)"
        ) from e


def _progress_fields(logged: dict) -> dict[str, str]:
    """The progress line's loss, MLM accuracy and tokens/s ("skipped": every update of the
    interval was skipped, so it has no loss)."""
    if "loss" not in logged:
        return {"loss": "skipped", "tok/s": f"{logged['tokens_per_second']:.0f}"}
    fields = {"loss": f"{logged['loss']:.3f}", "mlm_acc": f"{logged['mlm_accuracy']:.3f}"}
    if "rtd_accuracy" in logged:  # ELECTRA's discriminator
        fields["rtd_acc"] = f"{logged['rtd_accuracy']:.3f}"
    return fields | {"tok/s": f"{logged['tokens_per_second']:.0f}"}


def _apply_nonfinite_policy(loop: LoopSpec, check, done, save) -> None:
    """Policy "stop": once `max_consecutive_nonfinite` steps in a row were skipped, checkpoint the
    current state at `done` (`save`; skipped steps never changed the parameters, so they are the
    last good ones) and raise. `check` = (step, consecutive non-finite count at that step)."""
    step, consecutive = check[0], int(check[1])
    if loop.nonfinite_policy != "stop" or consecutive < loop.max_consecutive_nonfinite:
        return
    save(force=True)
    raise FloatingPointError(
        f"loss or gradients were NaN/Inf in steps {step - consecutive + 1}-{step}; the last good "
        f"parameters are checkpointed at step {done}: lower --config.learning_rate or check the "
        "data, then re-run to resume"
    )
