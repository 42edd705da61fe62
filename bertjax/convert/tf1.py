"""TF1 google-research/bert checkpoints: find, read, and name their variables as Hugging Face does.

A TF1 BERT directory holds `bert_model.ckpt.{index,data-*}`, `bert_config.json` and `vocab.txt`.
Variables are named as in google-research/bert's modeling.py (`bert/encoder/layer_0/attention/
self/query/kernel`, `cls/predictions/output_bias`, ...). Dense kernels are [in, out], so they are
transposed to Hugging Face's [out, in]; everything then goes through the Hugging Face mapping.
The checkpoint is read with TensorFlow's own checkpoint reader (no pickles involved).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bertjax import startup
from bertjax.errors import UserError

CONFIG_FILE = "bert_config.json"
DEFAULT_PREFIX = "bert_model.ckpt"
_EMBEDDING_TABLE = re.compile(r"bert/embeddings/(word|position|token_type)_embeddings")
_LAYER = re.compile(r"layer_(\d+)")
# Variables whose names do not follow the module/leaf pattern.
_SPECIAL_NAMES = {
    "cls/predictions/output_bias": "cls.predictions.bias",
    "cls/seq_relationship/output_weights": "cls.seq_relationship.weight",  # already [2, H]
    "cls/seq_relationship/output_bias": "cls.seq_relationship.bias",
}
_LEAF_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def hf_name(tf1_name: str) -> str | None:
    """TF1 variable name -> Hugging Face key, or None for what is not a model weight
    (global_step, optimizer slots such as `.../kernel/adam_m`)."""
    if tf1_name in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[tf1_name]
    match = _EMBEDDING_TABLE.fullmatch(tf1_name)
    if match:
        return f"bert.embeddings.{match[1]}_embeddings.weight"
    *modules, leaf = tf1_name.split("/")
    if leaf not in _LEAF_NAMES or not modules or modules[0] not in ("bert", "cls"):
        return None
    modules = [_LAYER.sub(r"layer.\1", module) for module in modules]
    return ".".join([*modules, _LEAF_NAMES[leaf]])


def find_checkpoint(source: Path) -> Path | None:
    """The checkpoint prefix `source` names (a prefix, or a directory holding one), or None."""
    if Path(f"{source}.index").is_file():
        return source
    if not source.is_dir():
        return None
    if (source / f"{DEFAULT_PREFIX}.index").is_file():
        return source / DEFAULT_PREFIX
    prefixes = sorted(path.with_suffix("") for path in source.glob("*.index"))
    if len(prefixes) > 1:
        names = ", ".join(path.name for path in prefixes)
        raise UserError(
            f"{source} holds several TF checkpoints ({names}); pass one as --from=DIR/PREFIX"
        )
    return prefixes[0] if prefixes else None


def read_checkpoint(prefix: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Reads a TF1 BERT checkpoint -> (tensors under Hugging Face names and layout, ignored names).

    Ignored: variables that are not model weights (global_step, Adam slots, ...).
    """
    try:  # deferred: importing TensorFlow takes seconds
        tf = startup.import_tensorflow_quietly()
    except ImportError as e:  # a machine with JAX alone (an accelerator host)
        raise UserError(
            f"reading the TF1 checkpoint {prefix} needs TensorFlow ({e}); install "
            "requirements.txt's tensorflow, or import the model's Hugging Face directory"
        ) from e

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as e:  # TF raises several error types for unreadable checkpoints
        detail = " ".join(str(e).split())[:200]
        raise UserError(f"cannot read TF checkpoint {prefix} ({detail})") from e
    tensors, ignored = {}, []
    for name in sorted(reader.get_variable_to_shape_map()):
        target = hf_name(name)
        if target is None:
            ignored.append(name)
            continue
        array = np.asarray(reader.get_tensor(name), np.float32)
        tensors[target] = np.ascontiguousarray(array.T if name.endswith("/kernel") else array)
    return tensors, ignored
