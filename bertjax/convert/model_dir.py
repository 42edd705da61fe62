"""The bertjax model directory: what `bertjax import` writes and what export / fine-tuning read.

It is laid out like a training workdir, so a training workdir is one too:

  DIR/checkpoints/<step>/state     Orbax: {"step", "params": BertForPreTraining parameters, ...}
  DIR/checkpoints/<step>/metadata  JSON: {"config": {BertConfig fields, lowercase, ...},
                                   "model": {architecture fields, vocab_size}}
  DIR/vocab.txt                    the vocabulary the model was trained with
  DIR/config.json                  run config (training) or the model's fields (import)

An imported directory holds one checkpoint, step 0, with parameters only (no optimizer state),
and `vocab_meta.json`, so `--config.vocab_dir=DIR` checks `--config.lowercase` against it.

`bertjax finetune` keeps each seed's fine-tuned model as such a directory too
(`SEED_DIR/model`), and `bertjax import` of a transformers BertFor<Task> writes one
(convert/task_import.py): its parameters are {"bert": encoder, "head": the task's dense layer},
its metadata names the objective "finetuned" and holds a "task" entry (name, kind, labels,
pooling, max_seq_length, input fields). Export writes it as a Hugging Face task model
(convert/task_heads.py); `bertjax predict` runs it; fine-tuning and `--config.init_from` take
its encoder; fill-mask and evaluate refuse it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from flax import nnx

from bertjax import checkpoint_compatibility, checkpointing, paths
from bertjax.data import vocab_files
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, BertForPreTraining, create_model
from bertjax.models.electra import ElectraForPreTraining, create_electra

IMPORT_STEP = 0
FINETUNED = "finetuned"  # the metadata's objective of a fine-tuned model directory


def model_config(metadata: dict) -> BertConfig:
    """The BertConfig a checkpoint was trained with, from its metadata item."""
    model = metadata.get("model", {})
    if "vocab_size" not in model:
        raise UserError("the checkpoint's metadata names no vocab_size; it predates export")
    return BertConfig.from_config(metadata.get("config", {}), model["vocab_size"])


def lowercase(metadata: dict) -> bool:
    """Whether the model's tokenizer lowercases (the run's --config.lowercase)."""
    return bool(metadata.get("config", {}).get("lowercase", True))


def task_of(metadata: dict) -> dict | None:
    """The task a fine-tuned model directory was trained on (name, kind, labels, pooling,
    max_seq_length, ...); None for a pretraining workdir or an imported pretrained model."""
    if metadata.get("model", {}).get("objective") != FINETUNED:
        return None
    return metadata["task"]


def _pretrained_origin(metadata: dict) -> tuple[str | None, int | None]:
    """(directory, step) of the pretrained model a fine-tuned model's encoder came from,
    through fine-tunes of fine-tunes (a tagger fine-tuned from a classifier); the last one
    named where the chain cannot be read further."""
    parent, step = metadata.get("finetuned_from"), metadata.get("finetuned_from_step")
    for _ in range(16):  # a chain is a few fine-tunes long
        try:
            _, parent_metadata = checkpointing.open_workdir(parent, step)
        except (UserError, OSError, TypeError):
            break
        if task_of(parent_metadata) is None:
            break
        parent = parent_metadata.get("finetuned_from")
        step = parent_metadata.get("finetuned_from_step")
    return parent, step


# Metadata of an imported model: the name prefixes of the parts `bertjax import` initialised
# because the source lacked them (hf.OPTIONAL_PARTS: "cls.predictions.", ...). Never trained.
INITIALISED_AT_IMPORT = "initialised_at_import"


def untrained_parts(metadata: dict, prefixes: tuple[str, ...] | None = None) -> list[str]:
    """The parts of a model directory that `bertjax import` initialised (never trained), as
    Hugging Face name prefixes; only those among `prefixes` when given."""
    parts = metadata.get(INITIALISED_AT_IMPORT) or []
    return [part for part in parts if prefixes is None or part in prefixes]


def warn_if_untrained(directory, metadata: dict, prefixes: tuple[str, ...], what: str) -> None:
    """Logs that `what` (e.g. "its fill-mask answers") comes from heads `bertjax import`
    initialised and nobody trained, when any of `prefixes` is one."""
    from bertjax.convert.hf import OPTIONAL_PARTS

    if parts := untrained_parts(metadata, prefixes):
        logging.warning(
            "%s's %s %s initialised by `bertjax import` (its source had none) and never "
            "trained, so %s are random; pretrain it first: bertjax train --config.init_from=%s",
            directory, " and ".join(OPTIONAL_PARTS[part] for part in parts),
            "were" if len(parts) > 1 else "was", what, directory,
        )  # fmt: skip


def require_pretrained(directory: str | Path, metadata: dict, command: str) -> None:
    """UserError when `directory` holds a fine-tuned model: it has no pretraining heads."""
    task = task_of(metadata)
    if task is not None:
        parent, step = _pretrained_origin(metadata)
        fix = (
            f"pass the model it was fine-tuned from, {parent}"
            + (f" (--step={step})" if step is not None else "")
            if parent
            else "pass a pretraining workdir or an imported pretrained BERT"
        )
        raise UserError(
            f"{directory} is a model fine-tuned for {task['name']} ({task['kind']}), without the "
            f"masked-LM head {command} needs; {fix}"
        )


def load_model(
    directory: str | Path, step: int | None = None
) -> BertForPreTraining | ElectraForPreTraining:
    """The pretraining model (BertForPreTraining, or ElectraForPreTraining for an ELECTRA run)
    with the parameters of `directory`'s checkpoint (default: latest), on the first local
    device; a checkpoint from any mesh is gathered whole."""
    step, metadata = checkpointing.open_workdir(directory, step)
    require_pretrained(directory, metadata, "fill-mask")
    config = model_config(metadata)
    saved = metadata.get("model", {})
    if saved.get("objective") == "electra":  # its loss weight is not needed to run it
        checkpoint_compatibility.check_generator_layout(saved, str(directory))
        fraction = saved["generator_hidden_fraction"]
        abstract_model = nnx.eval_shape(lambda: create_electra(config, fraction, 1.0, 0))
    else:
        abstract_model = nnx.eval_shape(lambda: create_model(config, 0))
    graphdef, abstract = nnx.split(abstract_model, nnx.Param)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract.to_pure_dict()
    )
    return nnx.merge(graphdef, checkpointing.restore_params(directory, step, target))


def write(
    out_dir: Path,
    params: Any,
    config: BertConfig,
    vocab_path: str | os.PathLike,
    lower: bool,
    source: str,
    *,
    task: dict | None = None,
    finetuned_from: bool = False,
    source_step: int | None = None,
    flag: str = "--out",
    extra: dict | None = None,
) -> None:
    """Writes `params` as a model directory: BertForPreTraining's (numpy, from `bertjax
    import`), or with `task`, a fine-tuned model's {"bert", "head"} (arrays on any mesh; every
    process calls this, process 0 writes the files beside the checkpoint). `source` is recorded
    as what the model was imported from, or with `finetuned_from`, fine-tuned from, and
    `source_step` as the checkpoint of `source` its encoder started from (None: a random
    encoder). `vocab_path` may be in a bucket; `flag` names `out_dir` in errors; `extra`: more
    metadata entries (an imported sentence model's embedding recipe)."""
    paths.make_local_dir(out_dir, flag)
    fields = dataclasses.asdict(config) | {"lowercase": lower}
    model = {name: getattr(config, name) for name in checkpoint_compatibility.ARCHITECTURE_FIELDS}
    origin = "finetuned_from" if finetuned_from else "imported_from"
    metadata = {"config": fields, "model": model, origin: source} | (extra or {})
    if finetuned_from:
        metadata["finetuned_from_step"] = source_step
    if task is not None:
        model["objective"] = FINETUNED
        metadata["task"] = task
    if jax.process_index() == 0:
        _write_files(out_dir, fields, epath.Path(vocab_path), lower, source)
    device = jax.local_devices()[0]
    params = jax.tree.map(
        lambda x: x if isinstance(x, jax.Array) else jax.device_put(x, device), params
    )
    state = {"step": np.int32(IMPORT_STEP), "params": params}
    manager = checkpointing.create_checkpoint_manager(out_dir / "checkpoints", save_every=1, keep=1)
    try:
        checkpointing.save(manager, IMPORT_STEP, state, metadata, force=True)
        manager.wait_until_finished()
    finally:
        manager.close()


def _write_files(out_dir: Path, fields: dict, vocab_path: epath.Path, lower: bool, source: str):
    """The vocabulary (and a SentencePiece vocabulary's model), vocab_meta.json, config.json."""
    (out_dir / vocab_files.VOCAB_FILE).write_bytes(vocab_path.read_bytes())
    spm_model = vocab_path.parent / vocab_files.SENTENCEPIECE_FILE
    if spm_model.is_file():
        (out_dir / vocab_files.SENTENCEPIECE_FILE).write_bytes(spm_model.read_bytes())
    vocab_meta = {"vocab_size": fields["vocab_size"], "lowercase": lower, "source": source}
    (out_dir / vocab_files.META_FILE).write_text(json.dumps(vocab_meta, indent=2) + "\n")
    (out_dir / "config.json").write_text(json.dumps(fields, indent=2) + "\n")
