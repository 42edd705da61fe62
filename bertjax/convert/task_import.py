"""A Hugging Face fine-tuned BERT (BertFor{SequenceClassification,TokenClassification,
QuestionAnswering,MultipleChoice}, the RobertaPreLayerNorm classes of a pre-LN export, or
{RoFormer,Electra}For{TokenClassification,QuestionAnswering}) read
as a bertjax fine-tuned model directory: the inverse of `task_heads.py`, so `bertjax predict`
runs it and fine-tuning continues from it.

The head is `classifier.*` (classification, tagging, multiple choice: one output) or
`qa_outputs.*` (start, end); the labels are config.json's `id2label` (or LABEL_0, LABEL_1, ...
without it). What the head was trained to compute must be bertjax's: single-label softmax
classification, multi-label classification (`problem_type: "multi_label_classification"`: a
sigmoid per label), or regression (one output, or `problem_type: "regression"`, Hugging Face's
own rule); a multi-label model decides at config.json's `multilabel_threshold` (a bertjax export
writes it) or 0.5; a QA model answers "" by `null_score_diff_threshold` (a bertjax export of a
SQuAD 2.0 fine-tune writes it), without it every question. The input field names are not in a
Hugging Face directory: `bertjax predict` reads `text` (`--text_fields=a,b` for a pair) or
`tokens` (multiple choice: `choices` too) unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bertjax.errors import UserError
from bertjax.models.bert import BertConfig

ARCHITECTURES = {
    "BertForSequenceClassification": ("classification", "classifier."),
    "BertForTokenClassification": ("tagging", "classifier."),
    "BertForQuestionAnswering": ("qa", "qa_outputs."),
    "BertForMultipleChoice": ("multiple_choice", "classifier."),
}
# Pre-LN exports: their heads arrive renamed to BERT's (prelayernorm.to_bert).
ARCHITECTURES |= {
    name.replace("Bert", "RobertaPreLayerNorm", 1): entry for name, entry in ARCHITECTURES.items()
}
# Rotary-position exports (roformer.py): their encoders arrive renamed by roformer.to_bert; the
# RoFormer heads that are BERT's.
ARCHITECTURES |= {
    "RoFormerForTokenClassification": ("tagging", "classifier."),
    "RoFormerForQuestionAnswering": ("qa", "qa_outputs."),
}
# Electra's (electra.to_bert), likewise; its sequence classification and multiple-choice heads
# are two layers, not BERT's one.
ARCHITECTURES |= {
    "ElectraForTokenClassification": ("tagging", "classifier."),
    "ElectraForQuestionAnswering": ("qa", "qa_outputs."),
}
NO_LABELS = ("qa", "regression", "multiple_choice")  # heads whose outputs are not classes
MAX_SEQ_LENGTH = 512  # predict's window when the model allows it (BERT's released length)


def task_architecture(config_fields: Mapping[str, Any]) -> str | None:
    """The fine-tuned class config.json names, None for a pretraining or base model."""
    for name in config_fields.get("architectures") or ():
        if name in ARCHITECTURES:
            return name
    return None


def head_and_task(
    tensors: Mapping[str, np.ndarray],
    config_fields: Mapping[str, Any],
    config: BertConfig,
    architecture: str,
    *,
    source: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    """(head parameters {"kernel", "bias"}, the task entry of a fine-tuned model directory,
    the source names they came from). Raises UserError on a head bertjax does not compute."""
    kind, prefix = ARCHITECTURES[architecture]
    names = [prefix + "weight", prefix + "bias"]
    absent = [name for name in names if name not in tensors]
    if absent:
        raise UserError(f"{source} is a {architecture} without {absent[0]}; the head is missing")
    weight, bias = (np.asarray(tensors[name], np.float32) for name in names)
    outputs = weight.shape[0]
    problem = config_fields.get("problem_type")
    if kind == "classification" and problem == "multi_label_classification":
        kind = "multilabel"
    if kind == "classification" and (outputs == 1 or problem == "regression"):
        kind = "regression"
        if outputs != 1:
            raise UserError(f"{source} is a regression model with {outputs} outputs, not 1")
    if kind == "qa" and outputs != 2:
        raise UserError(f"{source}: {names[0]} has {outputs} outputs, not 2 (start, end)")
    if kind == "multiple_choice" and outputs != 1:
        raise UserError(f"{source}: {names[0]} has {outputs} outputs, not 1 (a choice's score)")
    if weight.shape != (outputs, config.hidden_size) or bias.shape != (outputs,):
        raise UserError(
            f"{source}: {names[0]} has shape {list(weight.shape)}, not [labels, "
            f"{config.hidden_size}]; the config.json does not describe these weights"
        )
    task = {
        "name": config_fields.get("finetuning_task") or "imported",
        "kind": kind,
        "labels": [] if kind in NO_LABELS else _labels(config_fields, outputs),
        "pooling": "cls",
        "max_seq_length": min(MAX_SEQ_LENGTH, config.max_position_embeddings),
    }
    if kind == "multilabel":  # a bertjax export's; transformers' own leave it to the user
        task["multilabel_threshold"] = _threshold(config_fields, source)
    if kind == "qa":  # a bertjax export of a SQuAD 2.0 fine-tune's; None: every question answered
        task["null_score_diff_threshold"] = _null_threshold(config_fields, source)
    return {"kernel": weight.T.copy(), "bias": bias}, task, names


def _threshold(config_fields: Mapping[str, Any], source: str) -> float:
    threshold = config_fields.get("multilabel_threshold", 0.5)
    number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not number or not 0 < threshold < 1:
        raise UserError(
            f"{source}: config.json's multilabel_threshold {threshold!r} is not a number in "
            "(0, 1); fix or remove it (0.5 is used without it)"
        )
    return float(threshold)


def _null_threshold(config_fields: Mapping[str, Any], source: str) -> float | None:
    threshold = config_fields.get("null_score_diff_threshold")
    if threshold is None:
        return None
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        raise UserError(
            f"{source}: config.json's null_score_diff_threshold {threshold!r} is not a number; "
            "fix or remove it (without it every question is answered)"
        )
    return float(threshold)


def _labels(config_fields: Mapping[str, Any], count: int) -> list[str]:
    """Label names by id: config.json's id2label (keys are strings there), else LABEL_<i>."""
    id2label = {str(k): str(v) for k, v in (config_fields.get("id2label") or {}).items()}
    return [id2label.get(str(i), f"LABEL_{i}") for i in range(count)]
