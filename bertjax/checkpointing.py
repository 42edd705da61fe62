"""One Orbax CheckpointManager factory, and restore-or-init onto any mesh.

A checkpoint step directory holds two items: `state` (the TrainState: step, params, optimizer
state) and `metadata` (JSON: the run's config, so export and resume can check what was trained).
Saves are asynchronous; `wait_until_finished` is called before the process exits.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from bertjax import checkpoint_compatibility as compatibility
from bertjax import unreadable_checkpoints, vocabulary_growth
from bertjax.data import vocab_files
from bertjax.errors import UserError
from bertjax.models.bert import stack_layers, unstack_layers
from bertjax.paths import as_path, is_uri, remote_errors

if TYPE_CHECKING:
    import ml_collections

    from bertjax.config import RunSpec

STATE = "state"
METADATA = "metadata"


def create_checkpoint_manager(
    directory: str | os.PathLike, *, save_every: int, keep: int, keep_period: int = 0,
    keep_steps: Sequence[int] = (), item_names: Sequence[str] = (STATE, METADATA),
    json_items: Sequence[str] = (METADATA,),
) -> ocp.CheckpointManager:  # fmt: skip
    """Manager for `directory`: async saves every `save_every` steps and at each of `keep_steps`;
    the newest `keep` are kept, every step divisible by `keep_period` (if > 0) and `keep_steps`
    too; each step holds `item_names` (`json_items` of them JSON). Orbax writes each checkpoint
    into a temporary directory and renames it when complete, and deletes old ones only after
    that. A file at `directory` is a UserError (Orbax trained to the first save, hung ~5
    minutes, then raised)."""
    if not is_uri(directory) and os.path.lexists(directory) and not os.path.isdir(directory):
        raise UserError(
            f"{directory} is a file where checkpoints go; move it away, or choose another "
            "directory for the run"
        )
    policies = ocp.checkpoint_managers
    kept = [policies.LatestN(keep)]
    kept += [policies.EveryNSteps(keep_period)] if keep_period else []
    kept += [policies.CustomSteps(keep_steps)] if keep_steps else []
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, save_on_steps=keep_steps, create=True,
        preservation_policy=policies.AnyPreservationPolicy(kept), enable_async_checkpointing=True,
    )  # fmt: skip
    # Each item's handler given up front (`json_items` JSON, the others arrays): a manager that
    # has not saved yet reads a checkpoint's item metadata (what resume compares) instead of
    # None and Orbax's "could not be restored" warnings.
    handlers = {
        name: ocp.JsonCheckpointHandler() if name in json_items else ocp.StandardCheckpointHandler()
        for name in item_names
    }
    return ocp.CheckpointManager(as_path(directory), options=options, item_handlers=handlers)


def run_checkpoint_manager(workdir: epath.Path, spec: RunSpec) -> ocp.CheckpointManager:
    """The manager of WORKDIR/checkpoints with the run's save and keep policy (a wsd schedule's
    cooldown start is saved and kept too: a longer run can start from it)."""
    loop, start = spec.loop, spec.optimizer.cooldown_start
    return create_checkpoint_manager(
        workdir / "checkpoints", save_every=loop.checkpoint_every, keep=loop.keep_checkpoints,
        keep_period=loop.keep_checkpoint_period, keep_steps=() if start is None else (start,),
    )  # fmt: skip


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


def close_manager(manager: ocp.CheckpointManager) -> None:
    """Waits for the manager's save in flight to commit, then closes it."""
    try:
        manager.wait_until_finished()
    finally:
        manager.close()


def read_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
    restored = manager.restore(step, args=ocp.args.Composite(**{METADATA: ocp.args.JsonRestore()}))
    return dict(restored[METADATA])


def restore_or_init(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    init_fn: Callable[[], Any],
    model_fields: dict,
) -> tuple[Any, int | None]:
    """Restores the newest readable checkpoint onto `abstract_state`'s shardings, or calls
    `init_fn` when there is none. Returns (state, restored step or None).

    `model_fields` (this run's architecture) is compared with the checkpoint's before its arrays
    are read, so a mismatch never loads or overwrites anything. A checkpoint that cannot be read
    (truncated or missing files) or whose parameters read as NaN/Inf (damaged bytes) is renamed
    to `<step>.unreadable` (kept for inspection, ignored from then on) with a warning, and the
    previous one is tried.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return init_fn(), None
    for step in steps:
        try:
            metadata = read_metadata(manager, step)
        except Exception as e:  # noqa: BLE001 - any read failure means this step is unusable
            unreadable_checkpoints.set_aside(manager, step, e)
            continue
        saved, where = metadata.get("model", {}), str(manager.directory)
        compatibility.check_compatible(saved, model_fields, where)
        compatibility.check_same_layout(saved, model_fields, where)
        saved_state = _saved_state_tree(manager, step)
        if saved_state is not None:
            compatibility.check_same_state_arrays(
                saved_state, abstract_state, metadata.get("config", {}), where, step
            )
        try:
            restored = manager.restore(
                step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract_state)})
            )
        except Exception as e:  # noqa: BLE001
            unreadable_checkpoints.set_aside(manager, step, e)
            continue
        if not unreadable_checkpoints.params_finite(
            restored[STATE]
        ):  # damaged bytes read as NaN: trained on, "Done."
            unreadable_checkpoints.set_aside(
                manager, step, ValueError("its parameters hold NaN or Inf")
            )
            continue
        logging.info("Restored checkpoint at step %d from %s", step, manager.directory)
        return restored[STATE], step
    raise UserError(
        f"no readable checkpoint in {manager.directory} (all set aside as *.unreadable); "
        "use a new --workdir or restore a backup"
    )


def _saved_state_tree(manager: ocp.CheckpointManager, step: int) -> Any:
    """The tree of the arrays the checkpoint at `step` holds (Orbax's metadata), None where
    Orbax cannot read it: a damaged step, which restoring says and sets aside."""
    try:
        return getattr(manager.item_metadata(step)[STATE], "tree", None)
    except Exception:  # noqa: BLE001 - a damaged step: restoring it says so, and sets it aside
        return None


def metadata_for(config: ml_collections.ConfigDict, model_fields: dict) -> dict:
    """What is saved beside the state: the full config, the model's architecture and the number
    of processes (which streamed data depends on)."""
    return {
        "config": json.loads(config.to_json_best_effort()),
        "model": model_fields,
        "processes": jax.process_count(),
    }


# --- Reading parameters out of a workdir (export, `init_from`) -------------------------------


def _is_hugging_face_dir(directory) -> bool:
    """Whether `directory` holds a Hugging Face config.json (its `model_type`)."""
    config = directory / "config.json"
    try:
        return config.is_file() and "model_type" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def open_workdir(workdir: str | os.PathLike, step: int | None = None) -> tuple[int, dict]:
    """(step, metadata) of `workdir`'s checkpoint at `step` (default: the latest).

    `workdir` is a training workdir or a directory written by `bertjax import`; both hold their
    checkpoints in `workdir/checkpoints`. Raises UserError when there is none, or not that step.
    """
    directory = as_path(workdir) / "checkpoints"
    steps = _checkpoint_steps(directory)
    if not steps:
        if (as_path(workdir) / "finetune_settings.json").exists():
            raise UserError(
                f"{workdir} is a fine-tuning workdir, which holds one model per seed: pass "
                f"{workdir}/seed_<s>/model"
            )
        hint = ""
        if _is_hugging_face_dir(as_path(workdir)):
            hint = f" (it is a Hugging Face model: `bertjax import --from={workdir} --out=DIR`)"
        raise UserError(
            f"{workdir} holds no checkpoint (looked in {directory}); pass a training workdir "
            f"or a directory written by `bertjax import`{hint}"
        )
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise UserError(f"{workdir} has no checkpoint at step {step}; it has steps {steps}")
    with _reader(directory) as manager, _damaged_step(directory, step, steps):
        return step, read_metadata(manager, step)


@contextlib.contextmanager
def _damaged_step(directory: epath.Path, step: int, steps: list[int] | None = None):
    """A checkpoint that reading commands (export, evaluate, fill-mask, finetune, init_from)
    cannot read is one line naming its other steps; nothing is moved (training's resume sets
    such a step aside, `restore_or_init`)."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any read failure means this step is unusable
        reason = " ".join(str(e).split())[:160]
        others = [s for s in (steps or _checkpoint_steps(directory)) if s != step]
        fix = f"read another step ({others})" if others else "re-run training"
        raise UserError(
            f"checkpoint at step {step} in {directory} is damaged ({type(e).__name__}: "
            f"{reason}); {fix} or restore its files from a backup"
        ) from e


# A vocabulary's files, kept beside a run's checkpoints.
VOCABULARY_FILES = (vocab_files.VOCAB_FILE, vocab_files.SENTENCEPIECE_FILE)


def check_resumed_vocabulary(workdir: str | os.PathLike, vocab_dir: str | os.PathLike, fix: str):
    """A run that resumes trains with the vocabulary its checkpoints learned, the files kept in
    `workdir`: the one in `vocab_dir`, if another, even of the same size, would give the same
    ids to other tokens: UserError ending with `fix`."""
    for name in VOCABULARY_FILES:
        saved, given = epath.Path(workdir) / name, epath.Path(vocab_dir) / name
        if not saved.is_file():
            continue  # a SentencePiece run from before its model was kept in the workdir
        if not given.is_file() or given.read_bytes() != saved.read_bytes():
            raise UserError(f"{workdir} was trained with another vocabulary (its {name}); {fix}")


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
    """Ascending steps of the checkpoints in `workdir` (a training or imported directory)."""
    steps = _checkpoint_steps(as_path(workdir) / "checkpoints")
    if not steps:
        raise UserError(f"{workdir} holds no checkpoint (looked in {workdir}/checkpoints)")
    return steps


def restore_params(workdir: str | os.PathLike, step: int, target: Any = None) -> Any:
    """Only the parameters of `workdir`'s checkpoint at `step`; optimizer state is not read.

    `target`: a tree of jax.ShapeDtypeStruct with shardings (the arrays land there, on any mesh);
    None gives host numpy arrays in the saved layout (layer keys as ints), whatever mesh wrote
    the checkpoint (its shards are gathered).
    """
    directory = as_path(workdir) / "checkpoints"
    if target is None:
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _saved_params(directory, step)
        )
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    else:
        restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    args = ocp.args.PyTreeRestore(
        item={"params": target}, restore_args={"params": restore_args}, partial_restore=True
    )
    with _reader(directory) as manager, _damaged_step(directory, step):
        params = manager.restore(step, args=ocp.args.Composite(**{STATE: args}))[STATE]["params"]
    return _int_keys(params)


def load_init_params(
    init_from: str, abstract_params: Any, model_fields: dict, grown_from: int | None = None
) -> Any:
    """Parameters of the latest checkpoint in `init_from`, placed as `abstract_params` says.

    A checkpoint of another objective (a BERT run or `bertjax import` for an ELECTRA run, an
    ELECTRA run for a BERT one, another generator width) gives only the encoder they share,
    {"bert": ...}: the caller keeps its fresh heads. `grown_from`: `init_from`'s vocabulary size
    when the run's vocabulary extends it (`vocabulary_growth.init_vocabulary`): its vocabulary
    axes grow by mean rows. Raises UserError (naming the config field to change) when
    `init_from`'s architecture differs from `model_fields`, before anything is read.
    """
    step, metadata = open_workdir(init_from)
    saved = metadata.get("model", {})
    compatibility.check_init_architecture(init_from, saved, model_fields, grown_from)
    objective = {f: compatibility.saved_value(saved, f) for f in compatibility.OBJECTIVE_FIELDS}
    encoder_only = any(
        model_fields.get(f) is not None and objective[f] != model_fields[f]
        for f in compatibility.OBJECTIVE_FIELDS
    )
    if not encoder_only:  # the generator too is read
        compatibility.check_generator_layout(saved, init_from)
    if encoder_only:
        logging.info(
            "Initialising the encoder (bert/...) from %s (step %d, %s); the %s objective's other "
            "parameters start from the seed",
            init_from, step, ", ".join(f"{k}={v}" for k, v in objective.items() if v is not None),
            model_fields.get("objective", "bert"),
        )  # fmt: skip
        abstract_params = {"bert": abstract_params["bert"]}
    else:
        logging.info("Initialising parameters from %s (step %d)", init_from, step)
    directory = as_path(init_from) / "checkpoints"
    scanned = _is_scanned(abstract_params)
    relayout = _is_scanned(_saved_params(directory, step)) != scanned
    if not relayout and grown_from is None:
        return restore_params(init_from, step, abstract_params)
    # Another encoder layout (scan_layers) or a grown vocabulary: convert on the host, then place.
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        host = restore_params(init_from, step)
        if relayout:
            host = stack_layers(host) if scanned else unstack_layers(host)
    host = {key: host[key] for key in abstract_params}
    if grown_from is not None:
        logging.info("Growing the vocabulary of %s from %d tokens", init_from, grown_from)
        host = jax.tree.map(
            lambda x, t: vocabulary_growth.grow_vocabulary_axes(np.asarray(x), t.shape, grown_from),
            host,
            abstract_params,
        )
    return jax.tree.map(
        lambda x, t: jax.make_array_from_callback(t.shape, t.sharding, lambda i: np.asarray(x)[i]),
        host,
        abstract_params,
    )


def _is_scanned(params: Any) -> bool:
    return "layers" in params["bert"]["encoder"]


def _saved_params(directory: epath.Path, step: int) -> Any:
    """The saved parameter tree's metadata (shapes, dtypes), without reading any array."""
    with _reader(directory) as manager, _damaged_step(directory, step):
        return manager.item_metadata(step)[STATE].tree["params"]


def _int_keys(tree: Any) -> Any:
    """Orbax gives list indices back as strings ("0"); the model's own trees use ints."""
    if not isinstance(tree, dict):
        return tree
    return {
        (int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v) for k, v in tree.items()
    }


def _checkpoint_steps(directory: epath.Path) -> list[int]:
    # The first read of a workdir: say if a bucket is unreachable (tf.io.gfile's exists raises
    # then; its isdir answers False).
    with remote_errors(directory):
        if not directory.exists() or not directory.is_dir():
            return []
        with _reader(directory) as manager:
            return sorted(manager.all_steps())


@contextlib.contextmanager
def _reader(directory: epath.Path):
    # Never saves; not `read_only`, which makes Orbax log a warning on every open.
    options = ocp.CheckpointManagerOptions(create=False)
    # PyTree handler (the format StandardSave writes): it can restore a part of the state.
    handlers = {STATE: ocp.PyTreeCheckpointHandler(), METADATA: ocp.JsonCheckpointHandler()}
    manager = ocp.CheckpointManager(directory, options=options, item_handlers=handlers)
    try:
        yield manager
    finally:
        manager.close()
