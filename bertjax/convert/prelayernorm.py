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

`bertjax import` reads such a directory back (`to_bert`): the renames reversed, those rows
dropped, and the fine-tuned classes' heads (task_heads.py) renamed to BERT's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertjax.convert import hf
from bertjax.models.bert import BertConfig

ARCHITECTURE = "RobertaPreLayerNormForMaskedLM"
MODEL_TYPE = "roberta-prelayernorm"
PREFIX = "roberta_prelayernorm."
POSITIONS = PREFIX + "embeddings.position_embeddings.weight"
# BertForPreTraining names -> RobertaPreLayerNorm's; a key ending in "." renames a prefix. The
# next-sentence head (cls.seq_relationship.*) has no place there. Import reads it backwards.
NAMES = {
    "bert.": PREFIX,
    "cls.predictions.transform.dense.": "lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
    hf.MLM_BIAS: "lm_head.bias",
    hf.TIED_DECODER_BIAS: "lm_head.decoder.bias",
    hf.TIED_DECODER: "lm_head.decoder.weight",
}
# The fine-tuned classes' heads (task_heads.py) -> BertFor<Task>'s; RoBERTa's classification
# head is BERT's pooler then its classifier.
TASK_HEAD_NAMES = {"classifier.dense.": "bert.pooler.dense.", "classifier.out_proj.": "classifier."}
BERT_NAMES = {new: old for old, new in NAMES.items()} | TASK_HEAD_NAMES


def _renamed(name: str, names: dict[str, str]) -> str | None:
    """`name` renamed by the first entry of `names` that matches it (None: none does)."""
    for old, new in names.items():
        if name == old or (old.endswith(".") and name.startswith(old)):
            return new + name.removeprefix(old)
    return None


def tensors_from_bert(tensors: dict[str, np.ndarray], *, pad_token_id: int) -> dict[str, Any]:
    """`hf.params_to_hf` output of a pre-LN model -> RobertaPreLayerNormForMaskedLM state dict."""
    renamed = {}
    for name, array in tensors.items():
        new = _renamed(name, NAMES)
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
        "model_type": MODEL_TYPE,
        **fields,
        "hidden_act": "gelu",
        "position_embedding_type": config.position_embedding_type,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }


def to_bert(tensors: dict[str, Any], fields: dict[str, Any]) -> tuple[dict, dict]:
    """A RobertaPreLayerNorm state dict and config.json -> BERT's names, position tables and
    fields, with `layer_norm_placement="pre"`: the inverse of `tensors_from_bert` and
    `hf_config` (exact for inputs of up to the returned max_position_embeddings tokens)."""
    shift = int(fields.get("pad_token_id", 1)) + 1
    # Unknown keys stay as they are: the reader reports them.
    renamed = {_renamed(name, BERT_NAMES) or name: array for name, array in tensors.items()}
    for name, table in renamed.items():
        if name == hf.POSITION_EMBEDDINGS:
            renamed[name] = table[shift:]
        elif ".distance_embedding." in name:
            renamed[name] = table[shift:-shift]
    bert_fields = dict(fields, model_type="bert", layer_norm_placement="pre")
    if fields.get("max_position_embeddings") is not None:  # else refused as a missing field
        bert_fields["max_position_embeddings"] = int(fields["max_position_embeddings"]) - shift
    return renamed, bert_fields
