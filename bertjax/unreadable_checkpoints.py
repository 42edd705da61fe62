"""What resuming does with a checkpoint it cannot use: a damaged one (files cut short or missing,
parameters that read as NaN/Inf) is renamed to `<step>.unreadable`, kept for inspection and
ignored from then on, and the previous one is tried; a read that failed for a passing reason
(out of memory, a network error) moves nothing and stops the run in one line."""

from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from bertjax.errors import UserError, transient_reason


def refuse_if_transient(error: Exception, what: str) -> None:
    """UserError when reading `what` failed for a reason that passes on a retry (out of memory,
    a network error): the checkpoint may be whole, so nothing is moved."""
    if transient := transient_reason(error):
        raise UserError(
            f"could not read {what} ({transient}); it is left as it is: re-run once memory or "
            "the network is back"
        ) from error


def set_aside(manager: ocp.CheckpointManager, step: int, error: Exception) -> None:
    """Renames the checkpoint at `step` to `<step>.unreadable`; a failure that would pass on a
    retry (out of memory, a network error) is a UserError instead, nothing moved."""
    directory = epath.Path(manager.directory)
    refuse_if_transient(error, f"the checkpoint at step {step} in {directory}")
    target = directory / f"{step}.unreadable"
    reason = " ".join(str(error).split())[:200]
    logging.warning(
        "Checkpoint at step %d in %s is unreadable (%s: %s); moved it to %s and falling back "
        "to the previous one.",
        step,
        directory,
        type(error).__name__,
        reason,
        target,
    )
    print(f"WARNING: checkpoint at step {step} is unreadable; moved it to {target}, falling back")
    if jax.process_index() == 0:
        (directory / str(step)).rename(target)
    multihost_utils.sync_global_devices(f"set_aside_checkpoint_{step}")
    manager.reload()


def params_finite(state: Any) -> bool:
    """Whether every parameter of a restored state is finite (one reduction per array; the
    same answer on every process, the arrays being global)."""
    params = getattr(state, "params", state)
    return all(bool(jax.numpy.isfinite(leaf).all()) for leaf in jax.tree.leaves(params))
