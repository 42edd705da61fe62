"""Hugging Face model files: the weights of a model directory (safetensors, one file or shards;
else Flax's or TF's, `flax_weights`, `tf2_weights`) read under PyTorch's names, safetensors
written as transformers writes them, and its JSON files read with a one-line error.
Pickled weights (pytorch_model.bin, ...) are never read: loading them can run code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bertjax.convert import flax_weights, tf2_weights
from bertjax.errors import UserError

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
UNSAFE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")  # pickles: never read


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e}); pass a valid JSON file") from e


def read_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """All tensors of `model_dir/model.safetensors` (or of the shards its index names), else of
    its Flax checkpoint (`flax_weights`, one file or shards), else of its TF checkpoint
    (`tf2_weights`), under PyTorch's names.

    Pickled weights (pytorch_model.bin, ...) are never read: loading them can run code.
    """
    from safetensors.numpy import load_file  # deferred: only import and export need it

    if (model_dir / SAFETENSORS_FILE).is_file():
        files = [model_dir / SAFETENSORS_FILE]
    elif (model_dir / SAFETENSORS_INDEX).is_file():
        weight_map = read_json(model_dir / SAFETENSORS_INDEX).get("weight_map", {})
        files = [model_dir / name for name in sorted(set(weight_map.values()))]
    elif (model_dir / flax_weights.FLAX_FILE).is_file():
        return flax_weights.read_flax_msgpack(model_dir / flax_weights.FLAX_FILE)
    elif (model_dir / flax_weights.FLAX_INDEX).is_file():
        index = read_json(model_dir / flax_weights.FLAX_INDEX)
        return flax_weights.read_flax_shards(model_dir, index)
    elif (model_dir / tf2_weights.TF2_FILE).is_file():
        return tf2_weights.read_tf2_h5(model_dir / tf2_weights.TF2_FILE)
    else:
        raise UserError(_no_weights_message(model_dir))
    tensors = {}
    for path in files:
        try:
            tensors.update(load_file(path))
        except Exception as e:  # safetensors raises its own error types for bad files
            raise UserError(f"cannot read {path} ({e}); pass an intact safetensors file") from e
    return tensors


def _no_weights_message(model_dir: Path) -> str:
    """What a directory without weights bertjax reads has instead, and how to re-save it."""
    unsafe = sorted(p.name for p in model_dir.iterdir() if p.suffix in UNSAFE_WEIGHT_SUFFIXES)
    found = f" (found {', '.join(unsafe)}, which bertjax never unpickles)" if unsafe else ""
    if (model_dir / tf2_weights.TF2_INDEX).is_file():
        found = f" (found {tf2_weights.TF2_INDEX}: sharded TF weights, which bertjax does not read)"
    return (
        f"{model_dir} has no {SAFETENSORS_FILE}, {flax_weights.FLAX_FILE} or "
        f"{tf2_weights.TF2_FILE}{found}; re-save the model with transformers' "
        "save_pretrained(DIR, safe_serialization=True)"
    )


def write_safetensors(tensors: Mapping[str, np.ndarray], path: Path) -> None:
    """Writes `tensors` as safetensors with the metadata transformers expects ("format": "pt")."""
    from safetensors.numpy import save_file

    save_file(dict(tensors), path, metadata={"format": "pt"})
