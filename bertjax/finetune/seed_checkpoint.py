"""Where a fine-tuning seed is, saved so that a stopped seed resumes there instead of from step 0.

WORKDIR/seed_<s>/checkpoint/<step>/ (Orbax, the newest only) holds the TrainState (parameters,
optimizer state, step), the parameters of the epoch the seed keeps so far (select_epoch="best"),
and a JSON `SeedPosition`: the epoch, how many of its batches are done, the shuffle generator's
state at the epoch's start (the epoch's batch order is drawn again from it and the done batches
skipped), the epoch's loss sums, the kept epoch's scores and the training seconds so far. Dropout
keys fold in the step, so the resumed seed trains on exactly what the uninterrupted one would.
Saved every `checkpoint_every` steps and when SIGTERM or Ctrl-C stops the seed; deleted once the
seed has written its result.json.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from bertjax import unreadable_checkpoints
from bertjax.checkpointing import create_checkpoint_manager

CHECKPOINT_DIR = "checkpoint"  # in each seed's directory
STATE, KEPT, POSITION = "state", "kept_params", "position"


@dataclasses.dataclass
class SeedPosition:
    """How far a seed has trained, beyond its TrainState."""

    epoch: int = 1  # the epoch in progress (1-based)
    batches_done: int = 0  # of that epoch
    step: int = 0  # batches trained in all
    epoch_rng_state: dict | None = None  # the shuffle generator's state at the epoch's start
    loss_sum: float = 0.0  # the epoch's summed training loss and examples so far
    count: float = 0.0
    seconds: float = 0.0  # training seconds of the processes before this one
    kept_epoch: int = 0  # the epoch the seed keeps so far (0: none yet), and its scores
    kept_result: dict = dataclasses.field(default_factory=dict)

    def at_epoch(self, epoch: int) -> SeedPosition:
        """The position in `epoch`: this one, or the start of a later epoch."""
        if epoch == self.epoch:
            return self
        return dataclasses.replace(self, epoch=epoch, batches_done=0, loss_sum=0.0, count=0.0)


class SeedCheckpoints:
    """Saves and restores one seed's `SeedPosition` with its state, under `seed_dir`."""

    def __init__(self, seed_dir: Path, checkpoint_every: int, *, keeps_apart: bool):
        """`keeps_apart`: the kept epoch's parameters are saved beside the state's
        (select_epoch="best"; "last" keeps the state's own)."""
        self.directory = seed_dir / CHECKPOINT_DIR
        self._every, self._keeps_apart = checkpoint_every, keeps_apart
        self._manager: ocp.CheckpointManager | None = None

    def _open(self) -> ocp.CheckpointManager:
        if self._manager is None:
            self._manager = create_checkpoint_manager(
                self.directory,
                save_every=1,
                keep=1,
                item_names=(STATE, KEPT, POSITION),
                json_items=(POSITION,),
            )
        return self._manager

    def due(self, step: int) -> bool:
        return self._every > 0 and step % self._every == 0

    def save(self, step: int, state: Any, kept_params: Any, position: SeedPosition) -> None:
        """Saves (asynchronously) `state`, `position` and, when kept apart, `kept_params` (the
        state's own before an epoch is kept) at `step`."""
        items = {
            STATE: ocp.args.StandardSave(state),
            POSITION: ocp.args.JsonSave(dataclasses.asdict(position)),
        }
        if self._keeps_apart:
            kept = state.params if kept_params is None else kept_params
            items[KEPT] = ocp.args.StandardSave(kept)
        self._open().save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, abstract_state: Any) -> tuple[Any, Any, SeedPosition] | None:
        """(state, kept parameters or None, position) of the newest checkpoint, on
        `abstract_state`'s shardings; None when the seed has none, or only one that cannot be
        read (set aside with a warning: the seed then starts again)."""
        if not self.directory.is_dir():
            return None
        manager = self._open()
        step = manager.latest_step()
        if step is None:
            return None
        items = {
            STATE: ocp.args.StandardRestore(abstract_state),
            POSITION: ocp.args.JsonRestore(),
        }
        if self._keeps_apart:
            items[KEPT] = ocp.args.StandardRestore(abstract_state.params)
        try:
            restored = manager.restore(step, args=ocp.args.Composite(**items))
            position = SeedPosition(**restored[POSITION])
        except Exception as error:  # noqa: BLE001 - any failure: the seed starts again
            unreadable_checkpoints.refuse_if_transient(error, str(self.directory))
            reason = " ".join(str(error).split())[:200]
            logging.warning("%s: unreadable (%s); the seed starts again", self.directory, reason)
            self._set_aside()
            return None
        kept = restored[KEPT] if self._keeps_apart else None
        return restored[STATE], kept, position

    def _set_aside(self) -> None:
        """Renames the directory to checkpoint.unreadable (replacing an older one)."""
        self.close()
        if jax.process_index() == 0:
            aside = self.directory.with_name(f"{CHECKPOINT_DIR}.unreadable")
            shutil.rmtree(aside, ignore_errors=True)
            self.directory.rename(aside)

    def close(self) -> None:
        """Waits for a save in flight."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None


def discard(seed_dir: Path) -> None:
    """Deletes a seed's checkpoints (once its result and model are written)."""
    if jax.process_index() == 0:
        shutil.rmtree(seed_dir / CHECKPOINT_DIR, ignore_errors=True)


def rng_at(state: dict | None, seed: int) -> np.random.Generator:
    """The shuffle generator: the seed's, or one continuing from a saved `state`."""
    rng = np.random.default_rng(seed)
    if state is not None:
        rng.bit_generator.state = state
    return rng
