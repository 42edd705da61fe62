"""A fine-tuned bertjax model in Hugging Face's layout: its BertFor<Task> class.

`bertjax finetune` keeps each seed's model as {"bert": encoder, "head": dense layer} with the
task it learned (convert/model_dir.py). Hugging Face has a class for each head bertjax
trains (pre-LN encoders in RoBERTa-PreLayerNorm's layout, prelayernorm.py):

* classification: BertForSequenceClassification (`bert.pooler` + `classifier`); pre-LN,
  RobertaPreLayerNormForSequenceClassification (`classifier.dense`, the pooler, then
  `classifier.out_proj`); regression: the same classes with one output and
  `problem_type: "regression"` (their loss is then the mean squared error, as bertjax's);
  multilabel: the same classes with `problem_type: "multi_label_classification"` (binary
  cross-entropy per label, as bertjax's; pipelines then apply a sigmoid per label) and the
  fine-tune's `multilabel_threshold` (transformers keeps the field; `bertjax import` reads it);
* tagging: BertForTokenClassification / RobertaPreLayerNormForTokenClassification
  (`classifier`);
* qa: BertForQuestionAnswering / RobertaPreLayerNormForQuestionAnswering (`qa_outputs`: start,
  end);
* multiple_choice: BertForMultipleChoice / RobertaPreLayerNormForMultipleChoice (the pooler
  kept in the encoder, `classifier` with one output: a score per choice).

A rotary-position encoder (roformer.py) exports as RoFormerFor<Task>, an encoder with
factorised embeddings (`embedding_size`) and absolute or relative_key positions as
ElectraFor<Task> (Electra's `embeddings_project`). Their tagging and QA heads are BERT's; their
sequence-level heads are a GELU head (`--config.sequence_head=gelu`, finetune/model.py):
`classifier.dense` and `classifier.out_proj` (ForSequenceClassification), for multiple choice
`sequence_summary.summary` (first token, dense, GELU; config.json's `summary_*` fields say so)
and `classifier`. So a sequence-level model fine-tuned on such an encoder with BERT's pooler head
is refused (the message names the flag), and a post-LN BERT encoder fine-tuned with the GELU
head exports as Electra's class (Electra with `embedding_size` = `hidden_size` is BERT's
encoder). Pre-LN with factorised embeddings, and a pre-LN encoder with the GELU head (RoBERTa's
head is the tanh pooler), have no class and are refused.

The RoBERTa classification head is dropout, dense, tanh, dropout, dense on the first token:
BERT's pooler and classifier, so in eval mode the two compute the same. The task's labels go
to `config.json` as `id2label` / `label2id`, so pipelines name them. A classifier trained on
mean-pooled states (`--config.pooling=mean`) has no Hugging Face class and is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertjax.convert import electra, hf, prelayernorm, roformer
from bertjax.errors import UserError
from bertjax.finetune.choice_records import KIND as CHOICE_KIND
from bertjax.finetune.choice_records import POOLED_KINDS
from bertjax.finetune.records import TEXT_KINDS
from bertjax.models.bert import BertConfig

HEAD_PREFIXES = {"classification": "classifier.", "multilabel": "classifier.",
                 "regression": "classifier.", "tagging": "classifier.",
                 "qa": "qa_outputs.", "multiple_choice": "classifier."}  # fmt: skip
TASK_CLASSES = {
    "classification": "ForSequenceClassification",
    "multilabel": "ForSequenceClassification",
    "regression": "ForSequenceClassification",
    "tagging": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
    "multiple_choice": "ForMultipleChoice",
}
POOLER = "bert.pooler.dense."
TOKEN_KINDS = ("tagging", "qa")  # the heads RoFormer's and Electra's classes share with BERT
# The families whose sequence-level heads are the GELU head, and why an encoder is one.
GELU_HEAD_FAMILIES = {"RoFormer": "rotary positions",
                      "Electra": "factorised embeddings (embedding_size)"}  # fmt: skip
# Multiple choice's GELU head as Hugging Face's sequence summary reads it from config.json.
SUMMARY_FIELDS = {"summary_type": "first", "summary_use_proj": True,
                  "summary_proj_to_labels": False, "summary_activation": "gelu"}  # fmt: skip


def gelu_head(task: dict) -> bool:
    """Whether `task`'s model has the GELU sequence head (finetune/model.py)."""
    return task["kind"] in POOLED_KINDS and task.get("sequence_head", "pooler") == "gelu"


def family(config: BertConfig, task: dict | None = None) -> str:
    """The Hugging Face model family of `config`'s encoder (fine-tuned on `task`): Bert,
    RobertaPreLayerNorm (pre-LN), RoFormer (rotary positions) or Electra (factorised
    embeddings, or a post-LN BERT encoder with the GELU sequence head)."""
    if config.position_embedding_type == "rotary":
        return "RoFormer"
    if config.layer_norm_placement == "pre":
        return "RobertaPreLayerNorm"
    factorised = config.embedding_width != config.hidden_size
    return "Electra" if factorised or (task is not None and gelu_head(task)) else "Bert"


def architecture(config: BertConfig, task: dict) -> str:
    """The Hugging Face class of a model fine-tuned on `task` with `config`'s encoder."""
    return family(config, task) + TASK_CLASSES[task["kind"]]


def check_exportable(task: dict, config: BertConfig) -> None:
    """UserError, before anything is written, for fine-tuned models no Hugging Face class
    computes."""
    name, kind = family(config, task), task["kind"]
    if name == "RoFormer":
        roformer.check_exportable(config)
    elif name != "Electra":
        hf.check_unfactorised(config, name)
    if name in GELU_HEAD_FAMILIES and kind in POOLED_KINDS and not gelu_head(task):
        raise UserError(
            f"this {kind} model has {GELU_HEAD_FAMILIES[name]} and BERT's pooler head, and "
            f"Hugging Face's {name}{TASK_CLASSES[kind]} has a GELU head; fine-tune with "
            "--config.sequence_head=gelu to export it, or use it with `bertjax predict`"
        )
    if name == "RobertaPreLayerNorm" and gelu_head(task):
        raise UserError(
            f"this {kind} model has a pre-LN encoder and the GELU head, and Hugging "
            f"Face's RobertaPreLayerNorm{TASK_CLASSES[kind]} has BERT's tanh pooler; fine-tune "
            "with --config.sequence_head=pooler to export it, or use it with `bertjax predict`"
        )
    if task["kind"] in POOLED_KINDS and task.get("pooling", "cls") != "cls":
        raise UserError(
            f"this {task['kind']} model was fine-tuned on mean-pooled states "
            f"(pooling={task['pooling']}), which no Hugging Face class computes; fine-tune with "
            "--config.pooling=cls to export it"
        )


def tensors(params: Any, config: BertConfig, task: dict, *, pad_token_id: int) -> dict:
    """The fine-tuned parameters {"bert", "head"} -> the state dict of `architecture`."""
    check_exportable(task, config)
    kind, name = task["kind"], family(config, task)
    encoder = hf.hf_tensors({"bert": params["bert"]})
    head = {k.removeprefix("head."): v for k, v in hf.hf_tensors({"head": params["head"]}).items()}
    # RoFormer's and Electra's: BERT's token heads or the GELU sequence head, no pooler.
    named_head = (
        _gelu_head_tensors(kind, head) if gelu_head(task) else _prefixed(HEAD_PREFIXES[kind], head)
    )
    if name == "RoFormer":
        return roformer.tensors_from_bert(encoder, config) | named_head
    encoder = hf.with_position_table(encoder, hf.WORD_EMBEDDINGS, hf.POSITION_EMBEDDINGS)
    pooler = {k.removeprefix(POOLER): encoder.pop(k) for k in list(encoder) if k.startswith(POOLER)}
    if name == "Electra":
        return hf.renamed_prefix(encoder, "bert.", electra.PREFIX) | named_head
    pre_ln = name == "RobertaPreLayerNorm"
    if kind == CHOICE_KIND:  # the pooler stays the encoder's (pre-LN: renamed with it)
        encoder |= _prefixed(POOLER, pooler)
    if pre_ln:
        encoder = prelayernorm.tensors_from_bert(encoder, pad_token_id=pad_token_id)
    if kind in TEXT_KINDS and pre_ln:
        return (
            encoder
            | _prefixed("classifier.dense.", pooler)
            | _prefixed("classifier.out_proj.", head)
        )
    if kind in TEXT_KINDS:  # BertForSequenceClassification keeps the pooler
        encoder |= _prefixed(POOLER, pooler)
    return encoder | _prefixed(HEAD_PREFIXES[kind], head)


def hf_config(config: BertConfig, task: dict, *, pad_token_id: int) -> dict[str, Any]:
    """`config.json` of `architecture`, with the task's labels."""
    family_config = {
        "RoFormer": roformer.hf_config,
        "Electra": electra.hf_config,
        "RobertaPreLayerNorm": prelayernorm.hf_config,
        "Bert": hf.hf_config,
    }
    fields = family_config[family(config, task)](config, pad_token_id=pad_token_id)
    fields["architectures"] = [architecture(config, task)]
    if task["kind"] == CHOICE_KIND and gelu_head(task):  # dropout before and after, as bertjax's
        dropout = config.hidden_dropout_prob
        fields |= SUMMARY_FIELDS | {"summary_first_dropout": dropout,
                                    "summary_last_dropout": dropout}  # fmt: skip
    fields["finetuning_task"] = task["name"]
    if task["kind"] in ("classification", "multilabel", "tagging"):
        labels = task["labels"]
        fields["id2label"] = {str(i): label for i, label in enumerate(labels)}
        fields["label2id"] = {label: i for i, label in enumerate(labels)}
    if task["kind"] == "classification":
        fields["problem_type"] = "single_label_classification"
    if task["kind"] == "multilabel":  # the threshold: transformers keeps unknown config fields
        fields["problem_type"] = "multi_label_classification"
        fields["multilabel_threshold"] = task.get("multilabel_threshold", 0.5)
    if task["kind"] == "qa" and task.get("null_score_diff_threshold") is not None:  # SQuAD 2.0
        fields["null_score_diff_threshold"] = task["null_score_diff_threshold"]
    if task["kind"] == "regression":  # one output: config.num_labels is len(id2label)
        fields |= {"problem_type": "regression", "id2label": {"0": "LABEL_0"},
                   "label2id": {"LABEL_0": 0}}  # fmt: skip
    return fields


def _gelu_head_tensors(kind: str, head: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The GELU head's {"dense.*", "out_proj.*"} under Hugging Face's names: the classification
    head's, or multiple choice's sequence summary (the dense layer) and classifier."""
    if kind != CHOICE_KIND:
        return _prefixed("classifier.", head)
    renamed = {name.replace("dense.", "sequence_summary.summary.", 1): value
               for name, value in head.items()}  # fmt: skip
    return {name.replace("out_proj.", "classifier.", 1): value for name, value in renamed.items()}


def _prefixed(prefix: str, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + name: value for name, value in tensors.items()}
