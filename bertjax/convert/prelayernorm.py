"""Pre-LN bertjax models in Hugging Face's layout: `RobertaPreLayerNormForMaskedLM`.

Hugging Face's BERT classes are post-LN only. Its RoBERTa-PreLayerNorm classes compute exactly
bertjax's pre-LN encoder (LayerNorm after the embeddings, before each attention and
feed-forward block, and once after the last layer; exact GELU; tied MLM decoder), with two
differences in layout that the export bridges:

* names: `roberta_prelayernorm.` for `bert.`, `lm_head.{dense,layer_norm,bias}` for
  `cls.predictions.{transform.dense,transform.LayerNorm,bias}`; the next-sentence head has no
  place there and is left out;
* positions: RoBERTa numbers real tokens from `pad_token_id + 1` (positions of [PAD] tokens
  are `pad_token_id`), so bertjax's position table is shifted down by `pad_token_id + 1` rows
  (zeros above it) and `max_position_embeddings` grows by as much. Inputs padded on the right,
  as every tokenizer call pads them, then see the same position vectors as in bertjax. With
  relative positions only the size changes: the distance tables gain `pad_token_id + 1` rows of
  zeros at both ends (distances no input of bertjax's length reaches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertjax.convert import hf
from bertjax.models.bert import BertConfig

ARCHITECTURE = "RobertaPreLayerNormForMaskedLM"
PREFIX = "roberta_prelayernorm."
POSITIONS = PREFIX + "embeddings.position_embeddings.weight"
HEAD_NAMES = {
    "cls.predictions.transform.dense.": "lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
}


def _renamed(name: str) -> str | None:
    """BertForPreTraining key of a pre-LN bertjax model -> RobertaPreLayerNorm key (None: no
    place there)."""
    if name.startswith("bert."):
        return PREFIX + name.removeprefix("bert.")
    for old, new in HEAD_NAMES.items():
        if name.startswith(old):
            return new + name.removeprefix(old)
    if name in (hf.MLM_BIAS, hf.TIED_DECODER_BIAS):
        return "lm_head.bias" if name == hf.MLM_BIAS else "lm_head.decoder.bias"
    if name == hf.TIED_DECODER:
        return "lm_head.decoder.weight"
    return None  # cls.seq_relationship.*


def tensors_from_bert(tensors: dict[str, np.ndarray], *, pad_token_id: int) -> dict[str, Any]:
    """`hf.params_to_hf` output of a pre-LN model -> RobertaPreLayerNormForMaskedLM state dict."""
    renamed = {}
    for name, array in tensors.items():
        new = _renamed(name)
        if new is not None:
            renamed[new] = array
    for name, table in renamed.items():
        if name == POSITIONS or ".distance_embedding." in name:
            offset = np.zeros((pad_token_id + 1, table.shape[1]), table.dtype)
            ends = [offset, table] if name == POSITIONS else [offset, table, offset]
            renamed[name] = np.concatenate(ends)
    return renamed


def hf_config(config: BertConfig, *, pad_token_id: int) -> dict[str, Any]:
    """`config.json` of a RobertaPreLayerNormForMaskedLM with `config`'s architecture."""
    fields = {name: getattr(config, name) for name in hf.CONFIG_FIELDS}
    fields["max_position_embeddings"] = config.max_position_embeddings + pad_token_id + 1
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "roberta-prelayernorm",
        **fields,
        "hidden_act": "gelu",
        "position_embedding_type": config.position_embedding_type,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }
