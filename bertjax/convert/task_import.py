"""A Hugging Face fine-tuned BERT (BertFor{SequenceClassification,TokenClassification,
QuestionAnswering,MultipleChoice}, the RobertaPreLayerNorm classes of a pre-LN export, or the
RoFormer and Electra ones) read as a bertjax fine-tuned model directory: the inverse of
`task_heads.py`, so `bertjax predict` runs it and fine-tuning continues from it.

The head is `classifier.*` (classification, tagging, multiple choice: one output) or
`qa_outputs.*` (start, end); RoFormer's and Electra's sequence-level heads are their GELU
head (finetune/model.py): `classifier.dense.*` and `classifier.out_proj.*`, for multiple choice
`sequence_summary.summary.*` (config.json must say first token, projection, GELU: other
summaries are refused) and `classifier.*`. The labels are config.json's `id2label` (or LABEL_0,
LABEL_1, ... without it). What the head was trained to compute must be bertjax's: single-label
softmax classification, multi-label classification (`problem_type:
"multi_label_classification"`: a sigmoid per label), or regression (one output, or
`problem_type: "regression"`, Hugging Face's own rule); a multi-label model decides at
config.json's `multilabel_threshold` (a bertjax export writes it) or 0.5; a QA model answers ""
by `null_score_diff_threshold` (a bertjax export of a SQuAD 2.0 fine-tune writes it), without it
every question. The input field names are not in a Hugging Face directory: `bertjax predict`
reads `text` (`--text_fields=a,b` for a pair) or `tokens` (multiple choice: `choices` too)
unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bertjax.convert.task_heads import GELU_HEAD_FAMILIES, SUMMARY_FIELDS
from bertjax.errors import UserError
from bertjax.finetune.choice_records import POOLED_KINDS
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
# Rotary-position exports (roformer.py) and Electra's: their encoders arrive renamed by
# roformer.to_bert and electra.to_bert; their token heads are BERT's.
ARCHITECTURES |= {
    family + suffix: entry
    for family in ("RoFormer", "Electra")
    for suffix, entry in {
        "ForTokenClassification": ("tagging", "classifier."),
        "ForQuestionAnswering": ("qa", "qa_outputs."),
        "ForSequenceClassification": ("classification", "classifier.out_proj."),
        "ForMultipleChoice": ("multiple_choice", "classifier."),
    }.items()
}
# The GELU head's dense layer (before the output layer `ARCHITECTURES` names), by kind.
GELU_HEAD_DENSE = {"classification": "classifier.dense.",
                   "multiple_choice": "sequence_summary.summary."}  # fmt: skip
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
    """(head parameters: {"kernel", "bias"}, the GELU head's {"dense", "out_proj"}; the task
    entry of a fine-tuned model directory; the source names they came from). Raises UserError on
    a head bertjax does not compute."""
    kind, prefix = ARCHITECTURES[architecture]
    # RoFormer's and Electra's sequence-level classes: the dense layer before, by kind.
    gelu_dense = None
    if architecture.startswith(tuple(GELU_HEAD_FAMILIES)):
        gelu_dense = GELU_HEAD_DENSE.get(kind)
    weight, bias, names = _dense(tensors, prefix, architecture, source)
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
    head = {"kernel": weight.T.copy(), "bias": bias}
    if kind in POOLED_KINDS:  # as a fine-tune records it (finetune/trainer.py)
        task["sequence_head"] = "gelu" if gelu_dense else "pooler"
    if gelu_dense:
        head, dense_names = _gelu_head_params(
            tensors, config_fields, config, head, gelu_dense, architecture, source
        )
        names += dense_names
    if kind == "multilabel":  # a bertjax export's; transformers' own leave it to the user
        task["multilabel_threshold"] = _threshold(config_fields, source)
    if kind == "qa":  # a bertjax export of a SQuAD 2.0 fine-tune's; None: every question answered
        task["null_score_diff_threshold"] = _null_threshold(config_fields, source)
    return head, task, names


def _dense(tensors, prefix: str, architecture: str, source: str):
    """(weight [out, in], bias, their names) of the dense layer `prefix` names."""
    names = [prefix + "weight", prefix + "bias"]
    absent = [name for name in names if name not in tensors]
    if absent:
        raise UserError(f"{source} is a {architecture} without {absent[0]}; the head is missing")
    weight, bias = (np.asarray(tensors[name], np.float32) for name in names)
    return weight, bias, names


def _gelu_head_params(tensors, config_fields, config, out_proj, prefix, architecture, source):
    """The GELU head {"dense", "out_proj"} of a RoFormer or Electra sequence-level model (its
    dense layer named by `prefix`) and the names of that layer; UserError for a multiple-choice
    summary that is not it."""
    if prefix == GELU_HEAD_DENSE["multiple_choice"]:
        # Hugging Face's sequence summary: "last" without a summary_type; the flags by truth.
        summary = {name: config_fields.get(name) for name in SUMMARY_FIELDS}
        summary["summary_type"] = summary["summary_type"] or "last"
        for flag in ("summary_use_proj", "summary_proj_to_labels"):
            summary[flag] = bool(summary[flag])
        wrong = [f"{k}={v!r}" for k, v in summary.items() if v != SUMMARY_FIELDS[k]]
        if wrong:
            raise UserError(
                f"{source}: config.json's sequence summary ({', '.join(wrong)}) is not the one "
                f"bertjax computes ({', '.join(f'{k}={v!r}' for k, v in SUMMARY_FIELDS.items())}"
                ": the first token, a dense layer, GELU); set those fields if the weights were "
                "trained so"
            )
    weight, bias, names = _dense(tensors, prefix, architecture, source)
    width = config.hidden_size
    if weight.shape != (width, width) or bias.shape != (width,):
        raise UserError(
            f"{source}: {names[0]} has shape {list(weight.shape)}, not [{width}, {width}]; the "
            "config.json does not describe these weights"
        )
    return {"dense": {"kernel": weight.T.copy(), "bias": bias}, "out_proj": out_proj}, names


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
