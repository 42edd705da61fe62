"""Hugging Face's Flax BERT checkpoints (``flax_model.msgpack``, written by transformers' Flax
classes up to v4 and shipped beside the PyTorch weights of many Hub models) read into the
PyTorch state-dict names and layouts that `hf.params_from_hf` converts.

Flax names a parameter by its module path with a last part of ``kernel`` (a Dense layer, stored
[in, out]: PyTorch's weight transposed), ``embedding`` (an Embed table) or ``scale`` (LayerNorm),
where PyTorch says ``weight``. msgpack is data, not code: reading it runs nothing, unlike a
pickled ``pytorch_model.bin``."""

from pathlib import Path

import jax
import numpy as np

from bertjax.errors import UserError

FLAX_FILE = "flax_model.msgpack"
FLAX_INDEX = "flax_model.msgpack.index.json"  # sharded: its weight_map names the shard files
_WEIGHT_NAMES = {"kernel": "weight", "embedding": "weight", "scale": "weight"}


def read_flax_shards(model_dir: Path, index: dict) -> dict[str, np.ndarray]:
    """`read_flax_msgpack` of every shard a sharded checkpoint's index (its parsed
    `FLAX_INDEX`) names, in one dict: each shard is a part of the same parameter tree."""
    shards = sorted(set(index.get("weight_map", {}).values()))
    if not shards:
        raise UserError(f"{model_dir / FLAX_INDEX} names no shard files; pass an intact index")
    return {name: t for shard in shards for name, t in read_flax_msgpack(model_dir / shard).items()}


def read_flax_msgpack(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a transformers Flax checkpoint under PyTorch names ("bert.encoder.layer.0
    .attention.self.query.weight"), Dense kernels transposed to [out, in]."""
    from flax import serialization  # deferred: only import reads Flax files

    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises its own error types for bad files
        raise UserError(f"cannot read {path} ({e}); pass an intact {path.name}") from e
    tensors = {}
    for keys, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
        names = [str(key.key) for key in keys]
        last = names[-1]
        array = np.asarray(value)
        if last == "kernel" and array.ndim == 2:
            array = array.T
        tensors[".".join([*names[:-1], _WEIGHT_NAMES.get(last, last)])] = array
    return tensors
