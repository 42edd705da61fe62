"""Downstream tasks: what to read (JSON Lines, SQuAD files or TensorFlow Datasets) and as what.

Five kinds of task, each with its own example type:
- "classification": one text or a text pair -> one label (MR, TREC, RTE, GLUE);
- "multilabel": one text or a text pair -> any number of labels, each one a yes/no decision
  (topics, toxicity types, emotions; the label field is a JSON list of label names);
- "regression": one text or a text pair -> one number (GLUE STS-B: similarity 0-5);
- "tagging": words -> one tag per word (CoNLL-2000 chunking, NER);
- "qa": question + context -> an answer span (SQuAD format, see `squad`).

`--task=NAME` picks a preset (`PRESETS`: files under `config.data_dir`), `glue/NAME` (TFDS), or
`jsonl` / `squad` for files the user names with `config.train_file` / `config.eval_file`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import ml_collections
import numpy as np
from absl import logging

from bertjax.errors import UserError
from bertjax.finetune import squad

KINDS = ("classification", "multilabel", "regression", "tagging", "qa")
# one text or a pair -> one output vector per example, from the pooled encoding
TEXT_KINDS = ("classification", "multilabel", "regression")
DEV_SPLIT_SEED = 0  # the permutation `hold_out_dev` takes the dev examples from


@dataclasses.dataclass(frozen=True)
class TextExample:
    texts: tuple[str, ...]  # one text, or a pair
    # classification: the label id; regression: the target number; multilabel: 1.0 for each
    # label the example has, 0.0 for the others (multi-hot, one entry per label)
    label: int | float | tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class TaggedExample:
    words: tuple[str, ...]
    tags: tuple[int, ...]  # label ids; an eval tag never seen in training gets "O"'s (or 0)
    gold: tuple[str, ...] = ()  # the tags as written: what the eval scores compare against


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Where a task's data lives and which fields hold what."""

    kind: str
    train: str  # file path, or "tfds:NAME:SPLIT"
    eval: str
    dev: str = ""  # for choosing the epoch (config.select_epoch); "" = none, or a part of train
    text_fields: tuple[str, ...] = ("text",)
    label_field: str = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"


@dataclasses.dataclass
class TaskData:
    name: str
    kind: str
    labels: list[str]  # class or tag names, index = id ([] for regression and QA)
    train: list
    eval: list
    eval_split: str
    dev: list = dataclasses.field(default_factory=list)  # examples that choose the epoch


# Presets over the layout of the repo's shared task data: DATA_DIR/NAME/{train,dev,test}.jsonl.
PRESETS = {
    "mr": ("classification", "test", {"text_fields": ("text",)}),
    "trec": ("classification", "test", {"text_fields": ("text",)}),
    "trec_fine": (
        "classification",
        "test",
        {"text_fields": ("text",), "label_field": "fine_label"},
    ),
    "rte": ("classification", "dev", {"text_fields": ("text_a", "text_b")}),
    "chunking": ("tagging", "test", {}),
}

# GLUE in TensorFlow Datasets: text features and the split that has labels for evaluation.
GLUE = {
    "stsb": (("sentence1", "sentence2"), "validation"),  # regression (GLUE_REGRESSION)
    "cola": (("sentence",), "validation"),
    "sst2": (("sentence",), "validation"),
    "mrpc": (("sentence1", "sentence2"), "validation"),
    "qqp": (("question1", "question2"), "validation"),
    "mnli": (("premise", "hypothesis"), "validation_matched"),
    "qnli": (("question", "sentence"), "validation"),
    "rte": (("sentence1", "sentence2"), "validation"),
    "wnli": (("sentence1", "sentence2"), "validation"),
}
GLUE_REGRESSION = ("stsb",)


def task_spec(name: str, config: ml_collections.ConfigDict) -> TaskSpec:
    """The TaskSpec for `--task=name`; config fields override a preset's files and fields."""
    overrides = {
        key: value
        for key, value in (
            ("train", config.train_file),
            ("eval", config.eval_file),
            ("dev", config.get("dev_file", "")),
            ("text_fields", tuple(f for f in config.text_fields.split(",") if f)),
            ("label_field", config.label_field),
            ("tokens_field", config.tokens_field),
            ("tags_field", config.tags_field),
        )
        if value
    }
    if name in PRESETS:
        kind, eval_split, fields = PRESETS[name]
        root = Path(config.data_dir).expanduser() / name
        files = {"train": str(root / "train.jsonl"), "eval": str(root / f"{eval_split}.jsonl")}
        return TaskSpec(kind=kind, **{**files, **fields, **overrides})
    if name.startswith("glue/"):
        glue_name = name.split("/", 1)[1]
        if glue_name not in GLUE:
            raise UserError(f"--task={name} is not supported; GLUE tasks: {sorted(GLUE)}")
        fields, eval_split = GLUE[glue_name]
        files = {"train": f"tfds:{name}:train", "eval": f"tfds:{name}:{eval_split}"}
        kind = "regression" if glue_name in GLUE_REGRESSION else "classification"
        return TaskSpec(kind=kind, text_fields=fields, **{**files, **overrides})
    if name in ("jsonl", "squad"):
        kind = "qa" if name == "squad" else config.kind
        if kind not in KINDS:
            raise UserError(f"--task=jsonl needs --config.kind, one of {KINDS}")
        if not config.train_file or not config.eval_file:
            raise UserError(f"--task={name} needs --config.train_file=F and --config.eval_file=F")
        return TaskSpec(kind=kind, **overrides)
    choices = sorted(PRESETS) + ["glue/NAME", "jsonl", "squad"]
    raise UserError(f"--task={name!r} is unknown; use one of {choices}")


def load_task(name: str, config: ml_collections.ConfigDict) -> TaskData:
    """Reads the train, eval and (when the spec names one) dev examples of task `name` (see
    `task_spec`). Labels and tags come from the training data; dev is read as eval is."""
    spec = task_spec(name, config)
    sources = {"train": spec.train, "eval": spec.eval, "dev": spec.dev}
    sources = {split: source for split, source in sources.items() if source}
    if spec.kind == "qa":
        examples = {split: squad.read_squad(source) for split, source in sources.items()}
        return _task_data(name, spec, [], examples)
    records = {split: list(_records(source, split)) for split, source in sources.items()}
    for split, split_records in records.items():
        if not split_records:
            raise UserError(f"the {split} data of --task={name} ({sources[split]}) has no record")
    labels = _label_names(spec, records["train"])
    if spec.kind == "multilabel" and not labels:
        raise UserError(
            f"no training record of --task={name} ({spec.train}) has a label in "
            f"{spec.label_field!r}; a multilabel task needs at least one"
        )
    examples = {
        split: [
            _example(spec, labels, r, sources[split], i, split == "train") for i, r in enumerate(rs)
        ]
        for split, rs in records.items()
    }
    for split, split_examples in examples.items():
        if not split_examples:
            raise UserError(f"the {split} data of --task={name} ({sources[split]}) has no example")
        if spec.kind == "tagging" and split != "train":
            _log_unseen_tags(split_examples, labels, sources[split])
    logging.info("Task %s (%s): %s examples, labels %s", name, spec.kind,
                 ", ".join(f"{len(v)} {k}" for k, v in examples.items()), labels)  # fmt: skip
    return _task_data(name, spec, labels, examples)


def _task_data(name: str, spec: TaskSpec, labels: list[str], examples: dict) -> TaskData:
    return TaskData(name, spec.kind, labels, examples["train"], examples["eval"],
                    _split_name(spec.eval), dev=examples.get("dev", []))  # fmt: skip


def hold_out_dev(task: TaskData, fraction: float) -> TaskData:
    """`task` with `fraction` of its training examples moved to its dev examples (at least one,
    at least one left to train on), chosen by a fixed permutation: every seed and every run of
    the same data gets the same split. QA questions move with every other question on their
    context, so no dev answer is read in training. A task that has dev examples already is
    returned as it is."""
    if task.dev or fraction <= 0:
        return task
    groups = _dev_groups(task.train)
    if len(groups) < 2:
        count = len(task.train)
        needs = (f"at least 2 training examples (there is {count})" if count < 2
                 else f"questions on 2 contexts or more (all {count} share one)")  # fmt: skip
        raise UserError(f"dev_fraction={fraction} needs {needs}; give a --config.dev_file instead")
    wanted, dev = max(1, round(fraction * len(task.train))), set()
    for group in np.random.default_rng(DEV_SPLIT_SEED).permutation(len(groups)):
        size = len(dev) + len(groups[group])
        closer = not dev or abs(size - wanted) < abs(len(dev) - wanted)
        if closer and size < len(task.train):  # and some left to train on
            dev.update(groups[group])
    return dataclasses.replace(
        task,
        train=[e for i, e in enumerate(task.train) if i not in dev],
        dev=[e for i, e in enumerate(task.train) if i in dev],
    )


def _dev_groups(examples: Sequence) -> list[list[int]]:
    """Indices of the examples that go to the dev split together: the questions of one QA
    context, every other example alone."""
    by_key: dict = {}
    for i, example in enumerate(examples):
        key = example.context if isinstance(example, squad.QAExample) else i
        by_key.setdefault(key, []).append(i)
    return list(by_key.values())


def _split_name(source: str) -> str:
    return source.rsplit(":", 1)[-1] if source.startswith("tfds:") else Path(source).stem


def _records(source: str, split: str) -> Iterator[dict]:
    """Dicts from a JSON Lines file or a TFDS split ("tfds:NAME:SPLIT", labels as names);
    `split` ("train" or "eval") names the flag of a missing file."""
    if source.startswith("tfds:"):
        yield from _tfds_records(*source[len("tfds:") :].rsplit(":", 1))
        return
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(
            f"task file {source!r} does not exist; check --config.data_dir/{split}_file"
        )
    yield from json_lines(path, source)


def json_lines(path: Path, name: str) -> Iterator[dict]:
    """The JSON objects of a JSON Lines file (blank lines skipped); `name` is the file as the
    user wrote it, for errors that point at the line."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(
                    f"{name}:{number} is not valid JSON; fix or remove the line"
                ) from None
            if not isinstance(record, dict):
                raise UserError(f"{name}:{number} is not a JSON object")
            yield record


def _tfds_records(name: str, split: str) -> Iterator[dict]:
    """Examples of a TFDS split as dicts of Python values; class labels become their names."""
    import tensorflow_datasets as tfds  # deferred: slow import, only for TFDS tasks

    dataset, info = tfds.load(name, split=split, with_info=True)
    label_names = {
        key: feature.names
        for key, feature in info.features.items()
        if isinstance(feature, tfds.features.ClassLabel)
    }
    for example in tfds.as_numpy(dataset):
        record = {}
        for key, value in example.items():
            if key in label_names:
                record[key] = label_names[key][int(value)] if int(value) >= 0 else None
            elif isinstance(value, bytes):
                record[key] = value.decode("utf-8", errors="replace")
            else:
                record[key] = value.tolist() if hasattr(value, "tolist") else value
        yield record


def _field(record: dict, field: str, source: str):
    if field not in record:
        raise UserError(
            f"a record of {source} has no field {field!r} (it has {sorted(record)}); set the "
            "matching --config.*_field"
        )
    return record[field]


NOT_TEXT = {type(None): "null", list: "a JSON array", dict: "a JSON object"}  # JSON's types


def text_value(value, field: str, where: str) -> str:
    """A text field's value as a string (numbers become their digits); null, lists and objects
    are refused: str() would make "None" or "['a', 'b']" the text. `where`: "record N of FILE"."""
    if type(value) in NOT_TEXT:
        raise UserError(
            f"{where}: {field!r} is {NOT_TEXT[type(value)]}, not text; fix the record or drop it"
        )
    return str(value)


def _list_field(record: dict, field: str, source: str, number: int) -> list:
    """A tagging record's word or tag list (a string would be split into characters)."""
    value = _field(record, field, source)
    if not isinstance(value, list):
        raise UserError(
            f"record {number + 1} of {source}: {field!r} must be a list, one entry per word "
            f"(it is a {type(value).__name__})"
        )
    return value


def _text_list(record: dict, field: str, source: str, number: int) -> tuple[str, ...]:
    """A tagging record's words or tags, each checked by `text_value`."""
    where = f"record {number + 1} of {source}"
    values = _list_field(record, field, source, number)
    return tuple(text_value(v, f"{field}[{i}]", where) for i, v in enumerate(values))


def _label(record: dict, spec: TaskSpec, source: str, number: int) -> str:
    """A classification record's label as a string (1 and "1" are one class); null (an
    unlabelled record, e.g. a TFDS test split's -1), lists and objects are refused."""
    value = _field(record, spec.label_field, source)
    where = f"record {number + 1} of {source}"
    if isinstance(value, list):
        raise UserError(
            f"{where}: {spec.label_field!r} is a JSON array, not one label; for several labels "
            "per text, fine-tune with --config.kind=multilabel"
        )
    return text_value(value, spec.label_field, where)


def _label_names(spec: TaskSpec, records: Sequence[dict]) -> list[str]:
    """The task's label (tagging: tag) names in the training `records`, sorted: id = index."""
    names_of = {
        "regression": lambda record, i: (),
        "classification": lambda record, i: (_label(record, spec, spec.train, i),),
        "multilabel": lambda record, i: _label_set(record, spec, spec.train, i),
        "tagging": lambda record, i: _text_list(record, spec.tags_field, spec.train, i),
    }[spec.kind]
    return sorted({name for i, record in enumerate(records) for name in names_of(record, i)})


def _example(spec: TaskSpec, labels, record, source: str, number: int, training: bool):
    """Record `number` (from 0) of `source` as its kind's example type."""
    if spec.kind == "regression":
        return _scored_example(record, spec, source, number)
    if spec.kind == "classification":
        return _text_example(record, spec, labels, source, number)
    if spec.kind == "multilabel":
        return _multilabel_example(record, spec, labels, source, number)
    return _tagged_example(record, spec, labels, source, number, training)


def _texts(record: dict, spec: TaskSpec, where: str, source: str) -> tuple[str, ...]:
    """A text record's one text or pair, each checked by `text_value`."""
    return tuple(text_value(_field(record, f, source), f, where) for f in spec.text_fields)


def _text_example(record, spec: TaskSpec, labels, source: str, number: int) -> TextExample:
    where = f"record {number + 1} of {source}"
    texts = _texts(record, spec, where, source)
    label = _label(record, spec, source, number)
    if label not in labels:
        raise UserError(
            f"record {number + 1} of {source} has label {label!r}, not seen in the training "
            f"data (labels: {labels})"
        )
    return TextExample(texts=texts, label=labels.index(label))


def _label_set(record: dict, spec: TaskSpec, source: str, number: int) -> tuple[str, ...]:
    """A multilabel record's label names: a JSON list (empty: none of the labels applies), each
    name checked by `text_value`; a single string is refused (it would be one label or its
    characters, and which is meant cannot be told)."""
    where = f"record {number + 1} of {source}"
    value = _field(record, spec.label_field, source)
    if not isinstance(value, list):
        shown = NOT_TEXT.get(type(value)) or json.dumps(value, ensure_ascii=False)
        one = f"[{json.dumps(value, ensure_ascii=False)}] for one label, " * isinstance(value, str)
        raise UserError(
            f"{where}: {spec.label_field!r} is {shown}, not a JSON list of label names "
            f"(--config.kind=multilabel); write {one}[] for none"
        )
    return tuple(text_value(v, f"{spec.label_field}[{i}]", where) for i, v in enumerate(value))


def _multilabel_example(record, spec: TaskSpec, labels, source: str, number: int) -> TextExample:
    where = f"record {number + 1} of {source}"
    texts = _texts(record, spec, where, source)
    names = set(_label_set(record, spec, source, number))
    unknown = sorted(names - set(labels))
    if unknown:
        raise UserError(
            f"{where} has labels {unknown}, not seen in the training data (labels: {labels})"
        )
    return TextExample(texts=texts, label=tuple(float(name in names) for name in labels))


def _scored_example(record, spec: TaskSpec, source: str, number: int) -> TextExample:
    """A regression record: its texts and its target, a finite number (JSON number or numeric
    string; true/false, null, NaN and infinities are refused)."""
    where = f"record {number + 1} of {source}"
    texts = _texts(record, spec, where, source)
    value = _field(record, spec.label_field, source)
    try:
        target = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        target = math.nan
    if not math.isfinite(target):
        raise UserError(
            f"{where}: {spec.label_field!r} is {json.dumps(value)}, not a finite number "
            "(--config.kind=regression); fix the record or drop it"
        )
    return TextExample(texts=texts, label=target)


def _tagged_example(
    record, spec: TaskSpec, tags, source: str, number: int, training: bool = True
) -> TaggedExample:
    """Training tags must be known (they are the label set); an eval tag the training data never
    has (CoNLL-2000's test set has I-LST) cannot be predicted but still counts in the scores."""
    words = _text_list(record, spec.tokens_field, source, number)
    names = list(_text_list(record, spec.tags_field, source, number))
    if len(words) != len(names):
        raise UserError(
            f"record {number + 1} of {source} has {len(words)} tokens but {len(names)} tags"
        )
    unknown = set(names) - set(tags)
    if unknown and training:
        raise UserError(f"record {number + 1} of {source} has tags {sorted(unknown)} not in train")
    fallback = tags.index("O") if "O" in tags else 0
    ids = tuple(tags.index(t) if t in tags else fallback for t in names)
    return TaggedExample(words=words, tags=ids, gold=tuple(names))


def _log_unseen_tags(examples: Sequence[TaggedExample], tags: Sequence[str], source: str) -> None:
    unseen = collections.Counter(t for e in examples for t in e.gold if t not in tags)
    if unseen:
        logging.warning(
            "%s has tags never seen in training (scored, never predicted): %s",
            source, dict(unseen),
        )  # fmt: skip
