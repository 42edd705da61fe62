"""Fine-tuning's inference: a task's examples encoded into model inputs, logits computed row
by row over a mesh, decoded into predictions (label ids, tags per word, answer texts) and
scored. Fine-tuning evaluates with it after every epoch; `bertjax predict` labels files with it
(finetune/predict.py), so a file labelled there scores what fine-tuning reported.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np
from absl import logging

from bertjax import sharding
from bertjax.data import documents
from bertjax.finetune import (
    cmrc_scores,
    features,
    recipe,
    scores,
    squad,
    tagging_windows,
    tasks,
)
from bertjax.finetune.choice_records import KIND as CHOICE_KIND
from bertjax.finetune.records import TEXT_KINDS

# QA decoding and window settings a fine-tuned model records (configs/finetune.py fields).
QA_FIELDS = ("doc_stride", "max_query_length", "max_answer_length", "n_best")


@dataclasses.dataclass
class Prepared:
    """A task's encoded data, ready to batch."""

    task: tasks.TaskData
    train: features.Encoded
    eval: features.Encoded
    qa_eval: squad.QAFeatures | tagging_windows.Windows | None = None  # QA's, tagging's windows
    dev: features.Encoded | None = None  # when the task has dev examples
    qa_dev: squad.QAFeatures | tagging_windows.Windows | None = None

    def split(self, name: str) -> tuple[list, features.Encoded, squad.QAFeatures | None]:
        """The examples, model inputs and QA windows of the "eval" or "dev" split."""
        if name == "dev":
            return self.task.dev, self.dev, self.qa_dev
        return self.task.eval, self.eval, self.qa_eval


def prepare(task: tasks.TaskData, tokenizer, config: ml_collections.ConfigDict) -> Prepared:
    """Tokenizes the task's examples (QA: sliding windows over the contexts)."""
    train, _ = encode(task.kind, task.train, tokenizer, config)
    evaluation, qa_eval = encode(task.kind, task.eval, tokenizer, config)
    dev, qa_dev = encode(task.kind, task.dev, tokenizer, config) if task.dev else (None, None)
    return Prepared(task, train, evaluation, qa_eval=qa_eval, dev=dev, qa_dev=qa_dev)


def encode(
    kind: str, examples: list, tokenizer, config
) -> tuple[features.Encoded, squad.QAFeatures | tagging_windows.Windows | None]:
    """Model inputs of `examples` of a task of `kind`; QA also gives its windows' features,
    tagging where its rows' words come from (a long example's windows). `config`:
    max_seq_length, and for QA doc_stride and max_query_length."""
    length = config.max_seq_length
    if kind in TEXT_KINDS:
        return features.encode_texts(examples, tokenizer, max_seq_length=length), None
    if kind == "tagging":  # a long example in windows (`tagging_windows`), merged by `decode`
        windows, located = tagging_windows.split(examples, tokenizer, length)
        return features.encode_tagged(windows, tokenizer, max_seq_length=length), located
    if kind == CHOICE_KIND:
        return features.encode_choices(examples, tokenizer, max_seq_length=length), None
    qa = squad.make_features(
        examples, tokenizer, max_seq_length=length, doc_stride=config.doc_stride,
        max_query_length=config.max_query_length,
    )  # fmt: skip
    return _qa_encoded(qa), qa


def warn_if_unknown_tokens(encoded: features.Encoded, tokenizer, tokens: str) -> None:
    """Logs pretraining's [UNK] warning when the rows' text (not [CLS], [SEP]) is [UNK] at its
    share or more: the model's vocabulary is another language's or script's. `tokens` names
    what was counted ("the training examples' tokens")."""
    rows = encoded.input_ids
    if encoded.num_choices is not None:  # an example's rows are its choices'
        rows = [row for choices in rows for row in choices]
    ids = np.concatenate([np.asarray(row, np.int64) for row in rows]) if rows else np.zeros(0)
    text = ids[~np.isin(ids, [tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id])]
    unknown = int(np.sum(text == tokenizer.unk_id))
    if warning := documents.unknown_tokens_warning(text.size, unknown, tokenizer.kind, tokens):
        logging.warning("%s", warning)


def _qa_encoded(qa: squad.QAFeatures) -> features.Encoded:
    lengths = qa.input_mask.sum(axis=1)
    return features.Encoded(
        input_ids=[row[:n].tolist() for row, n in zip(qa.input_ids, lengths, strict=True)],
        segment_ids=[row[:n].tolist() for row, n in zip(qa.segment_ids, lengths, strict=True)],
        labels=[
            np.array([s, e]) for s, e in zip(qa.start_positions, qa.end_positions, strict=True)
        ],
    )


def predict_all(prepared_eval: features.Encoded, params, predict, mesh, config) -> list:
    """Logits of every eval row (host numpy), in order."""
    outputs = [None] * len(prepared_eval)
    for rows, batch in features.batches(
        prepared_eval, config.eval_batch_size, config.max_seq_length
    ):
        logits = np.asarray(
            jax.device_get(predict(params, sharding.global_batch_from_local(batch, mesh)))
        )
        for i, row in enumerate(rows):
            outputs[row] = logits[i]
    return outputs


def evaluate(
    prepared: Prepared, params, predict, mesh, config, split: str = "eval"
) -> dict[str, float]:
    """Task scores on the eval (or dev) split (`scores`: fractions in [0, 1], correlations
    in [-1, 1])."""
    task = prepared.task
    examples, encoded, qa = prepared.split(split)
    logits = predict_all(encoded, params, predict, mesh, config)
    if task.kind == "qa":
        return _qa_scores(task, examples, qa, logits, config)
    predicted = decode(task.kind, task.labels, examples, encoded, qa, logits, config)
    if task.kind == "classification":
        return scores.classification_scores(predicted, encoded.labels, len(task.labels))
    if task.kind == "multilabel":
        return scores.multilabel_scores(predicted, encoded.labels, task.labels)
    if task.kind == CHOICE_KIND:
        return {"accuracy": scores.accuracy(predicted, encoded.labels)}
    if task.kind == "regression":
        return scores.regression_scores(predicted, encoded.labels)
    true = [list(e.gold) or [task.labels[t] for t in e.tags] for e in examples]
    return scores.chunk_scores(true, predicted)


def _qa_scores(task: tasks.TaskData, examples: list, qa, logits: list, config) -> dict:
    """Exact match and F1 of the answers decoded as `decode` does; with SQuAD 2.0 data also
    `scores.squad2_scores`' (answerable / unanswerable, the best null threshold), with Chinese
    answers also CMRC 2018's own (`cmrc_scores`)."""
    start, end = _qa_logits(qa, logits)
    spans, null_diffs = squad.best_spans(examples, qa, start, end, n_best=config.n_best,
                                         max_answer_length=config.max_answer_length)  # fmt: skip
    threshold = null_score_diff_threshold(task, config)
    answers = squad.null_answered(spans, null_diffs, threshold)
    gold = {e.id: [text for text, _ in e.answers] for e in examples}
    result = scores.squad_scores(answers, gold)
    if threshold is not None:  # SQuAD 2.0: some questions unanswerable
        return result | scores.squad2_scores(answers, spans, null_diffs, gold)
    if all(gold.values()) and any(map(scores.is_chinese_answer, gold.values())):
        result |= cmrc_scores.cmrc_scores(answers, gold)  # CMRC 2018, DRCD: their script's
    return result


def null_score_diff_threshold(task: tasks.TaskData, config) -> float | None:
    """The null-answer threshold a QA task decodes with: `config`'s when some training question
    has no answer (SQuAD 2.0), else None (SQuAD v1.1: every question is answered)."""
    if task.kind != "qa" or all(example.answers for example in task.train):
        return None
    return float(recipe.field(config, "null_score_diff_threshold"))


def decode(
    kind: str,
    labels: list[str],
    examples: list,
    encoded: features.Encoded,
    qa: squad.QAFeatures | None,
    logits: list,
    config,
    null_threshold: float | None = None,
) -> list:
    """Each example's prediction from its rows' logits: the label id (classification), 1/0 for
    each label (multilabel: 1 where the label's probability, sigmoid(logit), is over `config`'s
    multilabel_threshold), the number (regression), the tag of every word (tagging: from its
    window of most context; a word of more pieces than a row is "O"), the answer text (QA:
    the best span over the example's windows, `config`: n_best, max_answer_length; "" where
    `null_threshold` says there is none, `squad.decode`), the index of the highest-scoring
    choice (multiple choice)."""
    if kind == CHOICE_KIND:
        return [int(np.argmax(x[:n])) for x, n in zip(logits, encoded.num_choices, strict=True)]
    if kind == "classification":
        return [int(np.argmax(x)) for x in logits]
    if kind == "multilabel":
        threshold = recipe.field(config, "multilabel_threshold")
        logit = np.log(threshold / (1 - threshold))  # sigmoid(x) > t  <=>  x > logit(t)
        return [(x > logit).astype(np.int32) for x in logits]
    if kind == "regression":
        return [float(x[0]) for x in logits]
    if kind == "tagging":  # `qa`: the windows' `tagging_windows.Windows`
        return qa.merge([
            [labels[int(np.argmax(row_logits[p]))] if p >= 0 else "O" for p in first]
            for first, row_logits in zip(encoded.first_piece, logits, strict=True)
        ])  # fmt: skip
    start, end = _qa_logits(qa, logits)
    answers = squad.decode(
        examples, qa, start, end, n_best=config.n_best, max_answer_length=config.max_answer_length,
        null_score_diff_threshold=null_threshold,
    )  # fmt: skip
    return [answers[e.id] for e in examples]


def _qa_logits(qa: squad.QAFeatures, logits: list) -> tuple[np.ndarray, np.ndarray]:
    """[windows, L] start and end logits of the QA windows from their rows' [n, 2] logits (-1e9
    past a row's end)."""
    length = qa.input_ids.shape[1]
    start = np.full((len(logits), length), -1e9, np.float32)
    end = np.full((len(logits), length), -1e9, np.float32)
    for i, row_logits in enumerate(logits):
        start[i, : len(row_logits)] = row_logits[:, 0]
        end[i, : len(row_logits)] = row_logits[:, 1]
    return start, end
