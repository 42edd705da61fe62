"""An ELECTRA checkpoint (bertjax/models/electra.py) as Hugging Face Electra weights and configs.

The discriminator becomes `ElectraForPreTraining` (the encoder as `electra.*`, its head as
`discriminator_predictions.*`; the BERT pooler, which ELECTRA does not train, is left out), the
generator `ElectraForMaskedLM` (the shared embeddings, `electra.embeddings_project`, its
encoder, `generator_predictions.*` and `generator_lm_head` tied to the word embeddings). Both
say the shared embeddings' width as `embedding_size` (each `electra.embeddings_project` maps it
to the network's width where they differ). Hugging Face's Electra has no pre-LN layout, so a
pre-LN run is refused with a one-line error.

A BERT-objective run with factorised embeddings (`embedding_size`, post-LN) exports as
`ElectraForMaskedLM` (`masked_lm_tensors`): Hugging Face's BERT has no `embeddings_project`,
and Electra's masked-LM head is BERT's (dense H->E, GELU, LayerNorm, the tied decoder); the
pooler and the next-sentence head are left out.

`bertjax import` reads an Electra directory (a discriminator, bertjax's export or Google's
small, base and large ones; a generator, with its masked-LM head as BERT's) as a BERT encoder
to fine-tune (`to_bert`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertjax.convert import hf
from bertjax.errors import UserError
from bertjax.models.config import BertConfig
from bertjax.models.electra import generator_config

MODEL_TYPE = "electra"
PREFIX = "electra."
MASKED_LM = "ElectraForMaskedLM"
# ElectraForMaskedLM's head under BERT's names (prefixes; the tied decoder and the bias).
MASKED_LM_HEAD = (
    ("generator_predictions.", "cls.predictions.transform."),
    ("generator_lm_head.weight", hf.TIED_DECODER),
    ("generator_lm_head.bias", hf.MLM_BIAS),
)
LEFT_OUT = ("bert.pooler.", "cls.seq_relationship.", hf.TIED_DECODER_BIAS)  # not in Electra
WORD_EMBEDDINGS = "electra.embeddings.word_embeddings.weight"
POSITION_EMBEDDINGS = "electra.embeddings.position_embeddings.weight"


def check_exportable(config: BertConfig) -> None:
    if config.layer_norm_placement == "pre":
        raise UserError(
            "this ELECTRA run has pre-LN blocks (layer_norm_placement='pre'), which Hugging "
            "Face's Electra models cannot hold; fine-tune it with `bertjax finetune --init=DIR` "
            "or pretrain with --config.layer_norm_placement=post to export"
        )
    if config.position_embedding_type == "rotary":
        raise UserError(
            "this ELECTRA run has rotary positions, which Hugging Face's Electra models cannot "
            "hold; fine-tune it with `bertjax finetune --init=DIR`, or pretrain with "
            "--config.position_embedding_type=absolute or relative_key to export"
        )


def _encoder_tensors(encoder_params: dict) -> dict[str, np.ndarray]:
    """An encoder's `hf_tensors` under `electra.` instead of its bertjax prefix."""
    return {
        "electra." + name.split(".", 1)[1]: tensor
        for name, tensor in hf.hf_tensors({"bert": encoder_params}).items()
    }


def discriminator_tensors(params: dict) -> dict[str, np.ndarray]:
    """ElectraForPreTraining's state dict from bertjax ELECTRA parameters (list layout)."""
    encoder = {k: v for k, v in params["bert"].items() if k != "pooler"}
    tensors = _encoder_tensors(encoder)
    heads = hf.hf_tensors({"discriminator_predictions": params["discriminator_predictions"]})
    return hf.with_position_table(tensors | heads, WORD_EMBEDDINGS, POSITION_EMBEDDINGS)


def generator_tensors(params: dict) -> dict[str, np.ndarray]:
    """ElectraForMaskedLM's state dict: the shared embeddings, the generator's projection,
    encoder and head, and the LM head tied to the word embeddings."""
    embeddings = _encoder_tensors({"embeddings": params["bert"]["embeddings"]})
    generator = _encoder_tensors(params["generator"])
    heads = hf.hf_tensors(
        {
            "generator_predictions": params["generator_predictions"],
            "generator_lm_head": params["generator_lm_head"],
        }
    )
    tensors = embeddings | generator | heads
    tensors["generator_lm_head.weight"] = tensors[WORD_EMBEDDINGS]
    return hf.with_position_table(tensors, WORD_EMBEDDINGS, POSITION_EMBEDDINGS)


def masked_lm_tensors(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`hf.params_to_hf` output of a BERT-objective model -> ElectraForMaskedLM's state dict."""
    kept = {name: array for name, array in tensors.items() if not name.startswith(LEFT_OUT)}
    renamed = hf.renamed_prefix(kept, "bert.", PREFIX)
    for electra_name, bert_name in MASKED_LM_HEAD:
        renamed = hf.renamed_prefix(renamed, bert_name, electra_name)
    return renamed


def hf_config(
    config: BertConfig, *, pad_token_id: int, generator_hidden_fraction: float | None = None
) -> dict[str, Any]:
    """`config.json` of ElectraForPreTraining (the discriminator) or, given the generator's
    fraction, of ElectraForMaskedLM (the generator)."""
    architecture, embedding_size = "ElectraForPreTraining", config.embedding_width
    if generator_hidden_fraction is not None:
        config = generator_config(config, generator_hidden_fraction)
        architecture = "ElectraForMaskedLM"
    return hf.hf_config(config, pad_token_id=pad_token_id) | {
        "architectures": [architecture],
        "model_type": "electra",
        "embedding_size": embedding_size,  # the shared embeddings' width
    }


def to_bert(tensors: dict[str, Any], fields: dict[str, Any]) -> tuple[dict, dict]:
    """An Electra state dict and config.json -> BERT's names and fields: the encoder (with its
    `embeddings_project` where `embedding_size` is not the hidden size) under `bert.`, a
    masked-LM head (ElectraForMaskedLM's) as BERT's; the discriminator's head, which BERT has
    no place for, keeps its name (reported as not imported)."""
    renamed = hf.renamed_prefix(tensors, PREFIX, "bert.")
    for electra_name, bert_name in MASKED_LM_HEAD:
        renamed = hf.renamed_prefix(renamed, electra_name, bert_name)
    return renamed, dict(fields, model_type="bert")
