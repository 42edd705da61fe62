"""Rotary-position bertjax models in Hugging Face's layout: `RoFormerForMaskedLM`.

Hugging Face's BERT classes have no rotary positions. Its RoFormer classes compute exactly
bertjax's post-LN encoder with `position_embedding_type="rotary"` (queries and keys rotated pair
by pair, RoFormer's layout, before the scaled dot product; no position table; exact GELU; tied
MLM decoder), under other names:

* `roformer.` for `bert.`; the masked-LM head keeps BERT's `cls.predictions.*` names;
* `roformer.encoder.embed_positions.weight`: the sines and cosines RoFormer computes at init
  (not trained), written so `from_pretrained` finds every key, and not read back;
* no pooler and no next-sentence head: RoFormerModel has neither, so they are left out.

Pre-LN encoders have no RoFormer class (refused in one line), nor does a `rope_theta` other
than RoFormer's fixed 10000. `bertjax import` reads such a directory back (`to_bert`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertjax.convert import hf
from bertjax.errors import UserError
from bertjax.models import positions
from bertjax.models.bert import BertConfig

ARCHITECTURE = "RoFormerForMaskedLM"
MODEL_TYPE = "roformer"
PREFIX = "roformer."
ANGLES = PREFIX + "encoder.embed_positions.weight"
THETA = 10000.0  # RoFormer's, fixed in its code
LEFT_OUT = ("bert.pooler.", "cls.seq_relationship.")  # no place for them in RoFormer


def check_exportable(config: BertConfig) -> None:
    """UserError, before anything is written, for rotary models no RoFormer class computes."""
    if config.layer_norm_placement == "pre":
        raise UserError(
            "this model has rotary positions and pre-LN blocks, which no Hugging Face class "
            "computes (RoFormer is post-LN); train with --config.layer_norm_placement=post to "
            "export, or use it in bertjax (fine-tune, predict, fill-mask)"
        )
    if config.rope_theta != THETA:
        raise UserError(
            f"this model turns its rotary positions with rope_theta={config.rope_theta}, and "
            f"Hugging Face's RoFormer only with {THETA:g}; train with --config.rope_theta="
            f"{THETA:g} to export, or use it in bertjax"
        )


def sinusoidal_table(max_positions: int, head_size: int) -> np.ndarray:
    """RoFormer's `embed_positions` [M, D]: sin of the rotation angles (`positions.
    rotation_angles`, the ones bertjax turns by) in the first half, cos in the second
    (`RoFormerSinusoidalPositionalEmbedding`), float32."""
    cos, sin = positions.rotation_angles(max_positions, head_size, THETA)
    return np.concatenate([sin, cos], axis=1)


def tensors_from_bert(tensors: dict[str, np.ndarray], config: BertConfig) -> dict[str, Any]:
    """`hf.hf_tensors` (or `hf.params_to_hf`) output of a rotary model -> RoFormer's names."""
    check_exportable(config)
    kept = {name: array for name, array in tensors.items() if not name.startswith(LEFT_OUT)}
    renamed = hf.renamed_prefix(kept, "bert.", PREFIX)
    head_size = config.hidden_size // config.num_attention_heads
    return renamed | {ANGLES: sinusoidal_table(config.max_position_embeddings, head_size)}


def hf_config(config: BertConfig, *, pad_token_id: int) -> dict[str, Any]:
    """`config.json` of a RoFormerForMaskedLM with `config`'s architecture."""
    check_exportable(config)
    return {
        "architectures": [ARCHITECTURE],
        "model_type": MODEL_TYPE,
        **{name: getattr(config, name) for name in hf.CONFIG_FIELDS},
        "embedding_size": config.embedding_width,  # `roformer.embeddings_project` if not H
        "hidden_act": "gelu",
        "rotary_value": False,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }


def to_bert(tensors: dict[str, Any], fields: dict[str, Any], source: str) -> tuple[dict, dict]:
    """A RoFormer state dict and config.json -> BERT's names and fields with
    `position_embedding_type="rotary"`: the inverse of `tensors_from_bert` and `hf_config`.
    UserError for RoFormers bertjax does not compute: rotated values (`rotary_value`)."""
    if fields.get("rotary_value"):
        raise UserError(
            f"{source} rotates values as well as queries and keys (rotary_value=true), which "
            "bertjax does not compute; import a RoFormer with rotary_value=false"
        )
    renamed = hf.renamed_prefix(
        {name: array for name, array in tensors.items() if name != ANGLES}, PREFIX, "bert."
    )
    bert_fields = dict(fields, model_type="bert", position_embedding_type="rotary")
    return renamed, bert_fields
