"""The bertjax model directory: what `bertjax import` writes and what export / fine-tuning read.

It is laid out like a training workdir, so a training workdir is one too:

  DIR/checkpoints/<step>/state     Orbax: {"step", "params": BertForPreTraining parameters, ...}
  DIR/checkpoints/<step>/metadata  JSON: {"config": {BertConfig fields, lowercase, ...},
                                   "model": {architecture fields, vocab_size}}
  DIR/vocab.txt                    the vocabulary the model was trained with
  DIR/config.json                  run config (training) or the model's fields (import)

An imported directory holds one checkpoint, step 0, with parameters only (no optimizer state),
and `vocab_meta.json`, so `--config.vocab_dir=DIR` checks `--config.lowercase` against it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from bertjax import checkpointing, paths
from bertjax.convert import hf
from bertjax.data import tokenizer
from bertjax.data.sentencepiece_vocab import MODEL_FILE
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, BertForPreTraining, create_model
from bertjax.models.electra import ElectraForPreTraining, create_electra

IMPORT_STEP = 0


def model_config(metadata: dict) -> BertConfig:
    """The BertConfig a checkpoint was trained with, from its metadata item."""
    model = metadata.get("model", {})
    if "vocab_size" not in model:
        raise UserError("the checkpoint's metadata names no vocab_size; it predates export")
    return BertConfig.from_config(metadata.get("config", {}), model["vocab_size"])


def lowercase(metadata: dict) -> bool:
    """Whether the model's tokenizer lowercases (the run's --config.lowercase)."""
    return bool(metadata.get("config", {}).get("lowercase", True))


def load_model(
    directory: str | Path, step: int | None = None
) -> BertForPreTraining | ElectraForPreTraining:
    """The pretraining model (BertForPreTraining, or ElectraForPreTraining for an ELECTRA run)
    with the parameters of `directory`'s checkpoint (default: latest), on the first local
    device; a checkpoint from any mesh is gathered whole."""
    step, metadata = checkpointing.open_workdir(directory, step)
    config = model_config(metadata)
    saved = metadata.get("model", {})
    if saved.get("objective") == "electra":  # its loss weight is not needed to run it
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
    out_dir: Path, params: Any, config: BertConfig, vocab_path: Path, lower: bool, source: str
) -> None:
    """Writes `params` (BertForPreTraining's, numpy) as an imported model directory."""
    paths.make_local_dir(out_dir, "--out")
    shutil.copyfile(vocab_path, out_dir / tokenizer.VOCAB_FILE)
    spm_model = Path(vocab_path).parent / MODEL_FILE  # a SentencePiece vocabulary's model
    if spm_model.is_file():
        shutil.copyfile(spm_model, out_dir / MODEL_FILE)
    fields = {name: getattr(config, name) for name in hf.CONFIG_FIELDS}
    fields["position_embedding_type"] = config.position_embedding_type
    fields["lowercase"] = lower
    vocab_meta = {"vocab_size": config.vocab_size, "lowercase": lower, "source": source}
    (out_dir / tokenizer.META_FILE).write_text(json.dumps(vocab_meta, indent=2) + "\n")
    (out_dir / "config.json").write_text(json.dumps(fields, indent=2) + "\n")
    model = {name: getattr(config, name) for name in checkpointing.ARCHITECTURE_FIELDS}
    metadata = {"config": fields, "model": model, "imported_from": source}
    device = jax.local_devices()[0]
    state = {"step": np.int32(IMPORT_STEP), "params": jax.device_put(params, device)}
    manager = checkpointing.create_checkpoint_manager(out_dir / "checkpoints", save_every=1, keep=1)
    try:
        checkpointing.save(manager, IMPORT_STEP, state, metadata, force=True)
        manager.wait_until_finished()
    finally:
        manager.close()
