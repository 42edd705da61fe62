"""Hugging Face's TensorFlow 2 checkpoints (``tf_model.h5``, written by transformers' TF classes
up to v4, which v5 removed, and shipped beside the PyTorch weights of many Hub models) read into
the PyTorch state-dict names and layouts that `hf.params_from_hf` converts.

The file is Keras's HDF5 weights format: a group per top-level layer (``bert``, ``mlm___cls``,
``classifier``, ...) listed in the file's ``layer_names``, each listing its ``weight_names``
("tf_bert_for_pre_training/bert/encoder/layer_._0/attention/self/query/kernel:0"). transformers
named them so that PyTorch's name follows: drop the model's own name and ":0", ``_._`` is a list
index, ``mlm___cls`` is PyTorch's ``cls``, and ``kernel`` (a Dense layer, stored [in, out]),
``embeddings`` and ``gamma`` are ``weight``, ``beta`` is ``bias``. HDF5 is data, not code:
reading it runs nothing, unlike a pickled ``pytorch_model.bin``."""

import re
from pathlib import Path

import numpy as np

from bertjax.errors import UserError

TF2_FILE = "tf_model.h5"
TF2_INDEX = "tf_model.h5.index.json"  # sharded: not read
_WEIGHT_NAMES = {"kernel": "weight", "embeddings": "weight", "gamma": "weight", "beta": "bias"}


def pytorch_name(weight_name: str) -> str:
    """transformers' PyTorch name of a TF weight: "tf_bert_model/bert/encoder/layer_._0/output/
    LayerNorm/gamma:0" -> "bert.encoder.layer.0.output.LayerNorm.weight"."""
    parts = weight_name.removesuffix(":0").replace("_._", "/").split("/")[1:]
    parts = [re.sub(r"^.*___", "", part) for part in parts]  # "mlm___cls" -> "cls"
    return ".".join([*parts[:-1], _WEIGHT_NAMES.get(parts[-1], parts[-1])])


def read_tf2_h5(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a transformers TF checkpoint under PyTorch names, Dense kernels transposed
    to [out, in]. A weight listed by two layers (the word embeddings the MLM head shares) is
    read once."""
    try:
        import h5py  # deferred: only import reads TF files (h5py comes with TensorFlow)
    except ImportError as e:
        raise UserError(
            f"reading {path} needs h5py ({e}); install requirements.txt's h5py, or import the "
            "model's safetensors"
        ) from e

    tensors = {}
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" not in f.attrs:
                raise UserError(
                    f"{path} is not a transformers TF checkpoint (no Keras layer_names); re-save "
                    "the model with transformers' save_pretrained"
                )
            for layer in f.attrs["layer_names"]:
                group = f[_text(layer)]
                for listed in group.attrs["weight_names"]:
                    weight = _text(listed)
                    name = pytorch_name(weight)
                    if name not in tensors:
                        array = np.asarray(group[weight])
                        kernel = weight.endswith("/kernel:0") and array.ndim == 2
                        tensors[name] = array.T if kernel else array
    except (OSError, KeyError) as e:
        raise UserError(f"cannot read {path} ({e}); pass an intact {TF2_FILE}") from e
    return tensors


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
