"""`bertjax predict`: a fine-tuned model (`bertjax finetune`'s SEED_DIR/model, or a
transformers BertFor<Task> through `bertjax import`) labels a file.

The input is what the model was fine-tuned on, labels or answers not needed: JSON Lines with its
text fields (classification, multilabel, regression; multiple choice: and its choices) or its
word-list field (tagging), or SQuAD JSON / JSON Lines (QA); a bertjax fine-tune records those
fields and its windows (`trainer._task_entry`), an imported model reads `text` / `tokens` and
the recipe's windows (multiple choice: `choices` too) unless told. The output is JSON Lines (where
--out ends in .json a JSON array, or for QA SQuAD's {id: answer}), a record per input record (per
question for QA), in input order:

  classification   the record + "prediction": label, "probabilities": {label: p}
  multilabel       the record + "prediction": [labels with p > the threshold: the model's,
                   0.5 unless fine-tuned with another, or --multilabel_threshold's, e.g. one
                   chosen on a dev split after fine-tuning], "probabilities": {label: p}
  regression       the record + "prediction": the number
  tagging          the record + "predicted_tags": one tag per word (cut-off words "O"); a
                   model fine-tuned on spans (--config.spans_field) reads the text and adds
                   "predicted_spans": [[start, end, label], ...] (doccano's shape); a Label
                   Studio task (its text in "data") also "predictions", its pre-annotation
  qa               {"id", "question", "prediction": answer text ("" for none: SQuAD 2.0
                   models, or --null_score_diff_threshold's)}
  multiple_choice  the record + "prediction": the chosen choice's index (from 0),
                   "predicted_choice": its text, "probabilities": [p of each choice]

Inputs are encoded, batched and decoded as fine-tuning's evaluation does
(finetune/inference.py), so a file labelled here scores what `bertjax finetune` reported on
it. The batch is split over every local device (data parallel). Every record is checked
first, then the file is read and predicted in chunks (`predict_inputs.CHUNK_RECORDS`), so memory
does not grow with it, into OUT.partial, renamed to OUT when complete.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import jax
import ml_collections
import numpy as np
import scipy.special
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from bertjax import checkpointing, paths, sharding
from bertjax.convert import model_dir
from bertjax.data import vocab, vocab_files
from bertjax.errors import UserError
from bertjax.finetune import (
    choice_records,
    inference,
    label_studio,
    model,
    predict_inputs,
    span_records,
)

# What a model records of its decoding (QA: None, or SQuAD 2.0's threshold for answering ""), and
# the QA windows of a model imported from Hugging Face (configs/finetune.py's: run_squad's).
SETTINGS = ("max_seq_length", "multilabel_threshold", "null_score_diff_threshold")
QA_DEFAULTS = {"doc_stride": 128, "max_query_length": 64, "max_answer_length": 30, "n_best": 20}


WHAT_PREDICTED = {"classification": "texts classified", "multilabel": "texts labelled",
                  "regression": "texts scored", "tagging": "sentences tagged",
                  "qa": "questions answered", "multiple_choice": "choices made"}  # fmt: skip


@dataclasses.dataclass
class Predictions:
    task: dict
    count: int
    out: Path

    def line(self) -> str:
        what = WHAT_PREDICTED[self.task["kind"]]
        return f"{self.count} {what} by a {self.task['name']} model -> {self.out}"


def predict_file(
    model_path: str,
    input_path: str,
    out: str,
    *,
    batch_size: int = 64,
    text_fields: str = "",
    tokens_field: str = "",
    multilabel_threshold: float | None = None,
    column_names: str = "",
    text_encoding: str = "",
    choices_field: str = "",
    null_score_diff_threshold: float | None = None,
) -> Predictions:
    """Writes the predictions of the fine-tuned model at `model_path` for the records of
    `input_path` to `out` (JSON Lines; .json: see `_Writer`). `text_fields` ("a" or "a,b") and
    `tokens_field` name the input's fields when they differ from the fine-tuning data's
    (recorded in the model); `multilabel_threshold` replaces a multilabel model's recorded
    threshold; `column_names` ("a,b,...") name the columns of a CSV or TSV input without a
    header row; `text_encoding` is the input's encoding (a Python codec; "" = UTF-8);
    `choices_field` a multiple-choice input's choices (a list field, or a field per choice:
    "a,b,..."); `null_score_diff_threshold` makes a QA model answer "" where a question's null
    score beats its best span's by more (SQuAD 2.0; e.g. the `best_f1_threshold` fine-tuning
    reported on a dev split).
    Raises UserError on a model that is not fine-tuned, a missing or malformed input, a batch
    size the devices do not divide, or a threshold outside (0, 1) or for another kind."""
    paths.require_local(out, "--out")
    predict_inputs.check_run_flags(batch_size, text_encoding)
    step, metadata, task = _fine_tuned(model_path)
    out_path = _checked_paths(input_path, out)
    task = predict_inputs.with_fields(task, text_fields, tokens_field, choices_field)
    task = _with_threshold(task, multilabel_threshold)
    task = _with_null_threshold(task, null_score_diff_threshold)
    paths.make_local_dir(out_path.parent, "--out")
    chunks, count = predict_inputs.checked_chunks(
        task, Path(input_path).expanduser(), column_names, text_encoding
    )
    settings = ml_collections.ConfigDict(
        QA_DEFAULTS
        | {name: task[name] for name in (*SETTINGS, *inference.QA_FIELDS) if name in task}
        | {"eval_batch_size": batch_size}
    )
    tok = vocab.load_tokenizer(
        paths.as_path(model_path) / vocab_files.VOCAB_FILE, model_dir.lowercase(metadata)
    )
    logits_of = _predictor(model_path, step, metadata, task, settings)
    numbers, cut = itertools.count(), collections.Counter()  # cut: words too long for a row
    _write(out_path, task, chunks, lambda chunk: _predicted(
        task, chunk, tok, settings, logits_of, model_path, next(numbers) == 0, cut))  # fmt: skip
    if cut["words"]:
        logging.warning(
            "%d words have more wordpieces than a row of max_seq_length=%d holds (a long URL, "
            "say): they are not predicted but tagged \"O\"",
            cut["words"], settings.max_seq_length,
        )  # fmt: skip
    return Predictions(task, count, out_path)


def _predicted(
    task, chunk, tokenizer, settings, logits_of, model_path, first: bool, cut
) -> list[dict]:
    """The output records of one chunk of (records, examples); the `first` chunk's tokens are
    checked for [UNK] (a text in a script the model's vocabulary lacks); `cut` counts the
    words of a tagging input too long for a row even alone (long records are tagged in
    windows)."""
    records, examples = chunk
    encoded, qa = inference.encode(task["kind"], examples, tokenizer, settings)
    if first:
        inference.warn_if_unknown_tokens(
            encoded, tokenizer, f"the input's tokens (its first {len(records)} records)"
        )
    for pieces in encoded.first_piece or []:  # tagging: -1 for a word cut off its window
        cut["words"] += sum(position < 0 for position in pieces)
    logits = logits_of(encoded)
    predicted = inference.decode(
        task["kind"], task["labels"], examples, encoded, qa, logits, settings,
        settings.get("null_score_diff_threshold"),  # None: every question answered (v1.1)
    )  # fmt: skip
    return _outputs(task, records, examples, predicted, logits, model_path)


def _write(out_path: Path, task: dict, chunks, predicted) -> None:
    """Writes `predicted(chunk)` of every chunk to OUT.partial, renamed to `out_path` when
    complete: an interrupted run leaves an earlier output whole and no partial one."""
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as file:
            writer = _Writer(file, task["kind"], out_path.suffix)
            for chunk in chunks():
                writer.write(predicted(chunk))
            writer.close()
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)


def _fine_tuned(model_path: str) -> tuple[int, dict, dict]:
    """(step, metadata, task entry) of the fine-tuned model at `model_path`; UserError for
    another directory."""
    step, metadata = checkpointing.open_workdir(model_path)
    task = model_dir.task_of(metadata)
    if task is None:
        raise UserError(
            f"{model_path} is not a fine-tuned model; pass a seed's model directory of bertjax "
            "finetune (FINETUNE_DIR/seed_<s>/model)"
        )
    return step, metadata, task


def _checked_paths(input_path: str, out: str) -> Path:
    """The output path, once the input file exists and the output is not a directory."""
    if not Path(input_path).expanduser().is_file():
        raise UserError(
            f"--input={input_path} does not exist; pass a JSON Lines, JSON, Parquet, Arrow, CSV, "
            "TSV, CoNLL or SQuAD file"
        )
    out_path = Path(out).expanduser()
    if out_path.is_dir():
        raise UserError(f"--out={out} is a directory; name a file, e.g. {out}/predictions.jsonl")
    return out_path


def _predictor(model_path, step, metadata, task, settings) -> Callable[[Any], list]:
    """A function giving every row's logits of encoded inputs, from the model's parameters
    replicated over a data-parallel mesh (loaded and compiled once for all chunks)."""
    config = model_dir.model_config(metadata)
    factory = model.saved_model_factory(config, task)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: factory(0)), nnx.Param)
    mesh = sharding.create_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    params = jax.device_put(
        checkpointing.restore_params(model_path, step), NamedSharding(mesh, PartitionSpec())
    )

    @jax.jit
    def predict(params, batch):
        net = nnx.merge(graphdef, params)
        return net(batch["input_ids"], batch["segment_ids"], batch["input_mask"])

    return lambda encoded: inference.predict_all(encoded, params, predict, mesh, settings)


def _with_threshold(task: dict, threshold: float | None) -> dict:
    """The task entry deciding multilabel predictions at `threshold` (None: the recorded one)."""
    if threshold is None:
        return task
    if task["kind"] != "multilabel":
        raise UserError(
            f"--multilabel_threshold does not apply to a {task['kind']} model; leave it out"
        )
    if not 0 < threshold < 1:
        raise UserError(
            f"--multilabel_threshold={threshold} must be in (0, 1): a label is predicted where "
            "its probability is over it"
        )
    return task | {"multilabel_threshold": threshold}


def _with_null_threshold(task: dict, threshold: float | None) -> dict:
    """The task entry deciding unanswerable questions at `threshold` (None: the recorded one)."""
    if threshold is None:
        return task
    if task["kind"] != "qa":
        raise UserError(
            f"--null_score_diff_threshold does not apply to a {task['kind']} model; leave it out"
        )
    return task | {"null_score_diff_threshold": threshold}


def _outputs(
    task: dict, records: list, examples: list, predicted: list, logits: list, model_path: str
) -> list[dict]:
    """The output lines: each input record with its prediction."""
    if task["kind"] == choice_records.KIND:
        return [
            record | {"prediction": p, "predicted_choice": example.choices[p],
                      "probabilities": _softmax(x[: len(example.choices)])}
            for record, example, p, x in zip(records, examples, predicted, logits, strict=True)
        ]  # fmt: skip
    if task["kind"] == "classification":
        labels = task["labels"]
        return [
            _with_classes(task, record | {"prediction": labels[p],
                                          "probabilities": _probabilities(labels, x)}, model_path)
            for record, p, x in zip(records, predicted, logits, strict=True)
        ]  # fmt: skip
    if task["kind"] == "multilabel":
        labels = task["labels"]
        return [
            _with_classes(task, record | {"prediction": [labels[i] for i in np.flatnonzero(p)],
                                          "probabilities": _sigmoids(labels, x)}, model_path)
            for record, p, x in zip(records, predicted, logits, strict=True)
        ]  # fmt: skip
    if task.get("spans_field"):
        return [
            _with_spans(task, record, tags, model_path)
            for record, tags in zip(records, predicted, strict=True)
        ]
    key = "predicted_tags" if task["kind"] == "tagging" else "prediction"
    return [record | {key: p} for record, p in zip(records, predicted, strict=True)]


class _Writer:
    """Writes the output records as they come: JSON Lines; to a .json file a JSON array, a
    record a line (what Label Studio imports), or for QA SQuAD's {id: answer} (what
    evaluate-v2.0 reads: kept until `close`, one answer per question)."""

    def __init__(self, file: TextIO, kind: str, suffix: str):
        self.file, self.answers = file, {} if (suffix, kind) == (".json", "qa") else None
        self.array, self.written = suffix == ".json", 0

    def write(self, outputs: list[dict]) -> None:
        if self.answers is not None:
            self.answers |= {output["id"]: output["prediction"] for output in outputs}
            return
        for output in outputs:
            # default=str: a Parquet input's dates and decimals are echoed as text.
            line = json.dumps(output, ensure_ascii=False, default=str)
            if self.array:
                line = ("[\n" if not self.written else ",\n") + line
            self.file.write(line if self.array else line + "\n")
            self.written += 1

    def close(self) -> None:
        if self.answers is not None:
            self.file.write(json.dumps(self.answers, ensure_ascii=False, indent=1) + "\n")
        elif self.array:
            self.file.write("\n]\n" if self.written else "[]\n")


def _with_spans(task: dict, record: dict, tags: list[str], model_path: str) -> dict:
    """A record tagged by a model fine-tuned on spans: its tags and spans; a Label Studio task
    also its pre-annotation ("predictions", naming the labeling config's tags)."""
    field = task["text_field"]
    text = str(label_studio.flattened(record)[field])
    spans = span_records.predicted_spans(text, tags)
    out = record | {"predicted_tags": tags, "predicted_spans": spans}
    if label_studio.is_task(record):
        names = tuple(task.get("label_studio_names", label_studio.NER_NAMES))
        prediction = label_studio.span_prediction(text, spans, names, model_path)
        out["predictions"] = [*record.get("predictions", []), prediction]
    return out


def _with_classes(task: dict, out: dict, model_path: str) -> dict:
    """A classified Label Studio task of a model fine-tuned on such tasks with its
    pre-annotation: the predicted class(es), scored by their probability (multilabel: the
    lowest of the chosen, or 1 minus the highest of none); any other record as it is."""
    if not (label_studio.is_task(out) and task.get("label_studio_names")):
        return out
    classes = out["prediction"] if isinstance(out["prediction"], list) else [out["prediction"]]
    probabilities = out["probabilities"]
    if classes:
        score = min(probabilities[c] for c in classes)
    else:
        score = 1 - max(probabilities.values())
    names = tuple(task["label_studio_names"])
    prediction = label_studio.class_prediction(classes, names, model_path, round(score, 6))
    return out | {"predictions": [*out.get("predictions", []), prediction]}


def _probabilities(labels: list[str], logits: np.ndarray) -> dict[str, float]:
    return dict(zip(labels, _softmax(logits), strict=True))


def _softmax(logits: np.ndarray) -> list[float]:
    """The probabilities of `logits`' classes, rounded to 6 decimals."""
    shifted = np.exp(logits - logits.max())
    return [round(float(p), 6) for p in shifted / shifted.sum()]


def _sigmoids(labels: list[str], logits: np.ndarray) -> dict[str, float]:
    """Each label's own probability (multilabel: they need not sum to 1)."""
    return {
        label: round(float(p), 6)
        for label, p in zip(labels, scipy.special.expit(logits.astype(np.float64)), strict=True)
    }
