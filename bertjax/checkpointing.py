"""One Orbax CheckpointManager factory, and restore-or-init onto any mesh.

A checkpoint step directory holds two items: `state` (the TrainState: step, params, optimizer
state) and `metadata` (JSON: the run's config, so export and resume can check what was trained).
Saves are asynchronous; `wait_until_finished` is called before the process exits.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from bertjax.errors import UserError

STATE = "state"
METADATA = "metadata"
# Config fields that must match between a checkpoint and the run that restores it.
ARCHITECTURE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


def create_checkpoint_manager(
    directory: str | Path, *, save_every: int, keep: int
) -> ocp.CheckpointManager:
    """Manager for `directory`: async saves every `save_every` steps, newest `keep` kept."""
    if save_every <= 0 or keep <= 0:
        raise UserError(
            f"checkpoint_every={save_every} and keep_checkpoints={keep} must be positive"
        )
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every,
        max_to_keep=keep,
        enable_async_checkpointing=True,
        create=True,
    )
    return ocp.CheckpointManager(
        Path(directory).absolute(), options=options, item_names=(STATE, METADATA)
    )


def save(
    manager: ocp.CheckpointManager, step: int, state: Any, metadata: dict, *, force: bool = False
) -> bool:
    """Starts an async save of `state` at `step` (if due, or `force`); returns whether it saved."""
    return manager.save(
        step,
        args=ocp.args.Composite(
            **{STATE: ocp.args.StandardSave(state), METADATA: ocp.args.JsonSave(metadata)}
        ),
        force=force,
    )


def read_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
    restored = manager.restore(step, args=ocp.args.Composite(**{METADATA: ocp.args.JsonRestore()}))
    return dict(restored[METADATA])


def check_compatible(saved_config: dict, config: ml_collections.ConfigDict | dict, where: str):
    """Raises a one-line UserError when the checkpoint's architecture differs from the config."""
    for field in ARCHITECTURE_FIELDS:
        saved, wanted = saved_config.get(field), config.get(field)
        if saved is not None and wanted is not None and saved != wanted:
            raise UserError(
                f"checkpoint in {where} has {field}={saved} but the config asks for {wanted}; "
                "use the original config or a new --workdir"
            )


def restore_or_init(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    init_fn: Callable[[], Any],
    model_fields: dict,
) -> tuple[Any, int | None]:
    """Restores the latest checkpoint onto `abstract_state`'s shardings, or calls `init_fn`.

    Returns (state, restored step or None). `model_fields` (architecture of this run) is compared
    with the checkpoint's before anything is read, so a mismatch never loads or overwrites.
    """
    step = manager.latest_step()
    if step is None:
        return init_fn(), None
    metadata = read_metadata(manager, step)
    check_compatible(metadata.get("model", {}), model_fields, str(manager.directory))
    logging.info("Restoring checkpoint at step %d from %s", step, manager.directory)
    restored = manager.restore(
        step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract_state)})
    )
    return restored[STATE], step


def metadata_for(config: ml_collections.ConfigDict, model_fields: dict) -> dict:
    """What is saved beside the state: the full config and the model's architecture."""
    return {"config": json.loads(config.to_json_best_effort()), "model": model_fields}
