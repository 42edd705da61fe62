"""Downstream tasks: what to read (JSON Lines, SQuAD files or TensorFlow Datasets) and as what.

Six kinds of task, each with its own example type (`records` reads a record as one):
- "classification": one text or a text pair -> one label (MR, TREC, RTE, GLUE);
- "multilabel": one text or a text pair -> any number of labels, each one a yes/no decision
  (topics, toxicity types, emotions; the label field is a JSON list of label names);
- "regression": one text or a text pair -> one number (GLUE STS-B: similarity 0-5);
- "tagging": words -> one tag per word (CoNLL-2000 chunking, NER);
- "qa": question + context -> an answer span (SQuAD format, see `squad`);
- "multiple_choice": a context + two or more choices -> the right choice (SWAG, RACE, COPA;
  see `choice_records`).

`--task=NAME` picks a preset (`PRESETS`: files under `config.data_dir`), `glue/NAME` (TFDS), or
`jsonl` / `squad` for files the user names with `config.train_file` / `config.eval_file`.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import ml_collections
import numpy as np
from absl import logging

from bertjax.data import text_encodings
from bertjax.errors import UserError
from bertjax.finetune import annotated_records, choice_records, label_studio, records, squad
from bertjax.finetune.records import TaggedExample

KINDS = ("classification", "multilabel", "regression", "tagging", "qa", choice_records.KIND)
DEV_SPLIT_SEED = 0  # the permutation `hold_out_dev` takes the dev examples from


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
    spans_field: str = ""  # tagging: character spans of text_fields[0] in place of tokens/tags
    choice_fields: tuple[str, ...] = (choice_records.DEFAULT_CHOICES_FIELD,)  # multiple choice
    column_names: tuple[str, ...] = ()  # a headerless CSV/TSV file's columns; () = its header
    text_encoding: str = ""  # the files' encoding (a Python codec); "" = UTF-8


@dataclasses.dataclass
class TaskData:
    name: str
    kind: str
    labels: list[str]  # class or tag names, index = id ([] for regression, QA, multiple choice)
    train: list
    eval: list
    eval_split: str
    dev: list = dataclasses.field(default_factory=list)  # examples that choose the epoch
    # Label Studio tasks (spans or classes): (from_name, to_name) of their results, the tags
    # predict's pre-annotations name; () for other data.
    label_studio_names: tuple[str, ...] = ()


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
            ("spans_field", config.get("spans_field", "")),
            ("choice_fields", _choice_fields(config.get("choices_field", ""))),
            ("column_names", records.parse_column_names(config.get("column_names", ""))),
            ("text_encoding", _encoding(config.get("text_encoding", ""))),
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
            given = f"--config.kind={kind!r} is not a kind" if kind else "--config.kind is unset"
            raise UserError(f"--task=jsonl needs --config.kind, one of {KINDS}; {given}")
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
        if spec.column_names:
            raise UserError(
                "--config.column_names does not apply to QA (SQuAD files); leave it out"
            )
        examples = {
            split: squad.read_squad(source, encoding=spec.text_encoding)
            for split, source in sources.items()
        }
        return _task_data(name, spec, [], examples)
    raw = {split: list(_records(source, split, spec)) for split, source in sources.items()}
    raw, studio_names = annotated_records.readable(raw, spec, sources)
    for split, split_records in raw.items():
        if not split_records:
            raise UserError(
                f"the {split} data of --task={name} ({sources[split]}) has no record"
                f"{records.headerless_hint(sources[split], '--config.column_names')}"
            )
    labels = records.label_names(spec, raw["train"])
    _warn_of_near_duplicate_labels(labels)
    if spec.kind == "multilabel" and not labels:
        raise UserError(
            f"no training record of --task={name} ({spec.train}) has a label in "
            f"{spec.label_field!r}; a multilabel task needs at least one"
        )
    examples = {
        split: [_example(spec, labels, r, sources[split], i, split == "train")
                for i, r in enumerate(rs)]
        for split, rs in raw.items()
    }  # fmt: skip
    for split, split_examples in examples.items():
        if not split_examples:
            raise UserError(f"the {split} data of --task={name} ({sources[split]}) has no example")
        if spec.kind == "tagging" and split != "train":
            _log_unseen_tags(split_examples, labels, sources[split])
    logging.info("Task %s (%s): %s examples%s", name, spec.kind,
                 ", ".join(f"{len(v)} {k}" for k, v in examples.items()),
                 f", labels {labels}" if labels else "")  # fmt: skip
    return _task_data(name, spec, labels, examples, studio_names)


def _example(
    spec: TaskSpec, labels: list[str], record: dict, source: str, number: int, training: bool
):
    """Record `number` of `source` as its kind's example type."""
    if spec.kind == choice_records.KIND:
        return choice_records.choice_example(spec, record, source, number)
    return records.example(spec, labels, record, source, number, training)


def _task_data(
    name: str, spec: TaskSpec, labels: list[str], examples: dict, studio_names: tuple = ()
) -> TaskData:
    return TaskData(name, spec.kind, labels, examples["train"], examples["eval"],
                    _split_name(spec.eval), dev=examples.get("dev", []),
                    label_studio_names=studio_names)  # fmt: skip


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
    logging.info(
        "Dev split (dev_fraction=%s): %d of the %d training examples held out, %d left to train on",
        fraction, len(dev), len(task.train), len(task.train) - len(dev),
    )  # fmt: skip
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


def _choice_fields(value: str) -> tuple[str, ...]:
    """`--config.choices_field` as field names; () when not given (the spec's default)."""
    return choice_records.parse_choice_fields(value) if value.strip() else ()


def _encoding(name: str) -> str:
    text_encodings.check_encoding_name(name, "--config.text_encoding")
    return name


def _records(source: str, split: str, spec: TaskSpec) -> Iterator[dict]:
    """Dicts from task files (JSON Lines, Parquet, CSV, TSV, CoNLL for tagging) or a TFDS split
    ("tfds:NAME:SPLIT", labels as names); `split` ("train" or "eval") names the flag of a
    missing file."""
    if source.startswith("tfds:"):
        for flag, value in (
            ("column_names", spec.column_names),
            ("text_encoding", spec.text_encoding),
        ):
            if value:
                raise UserError(f"--config.{flag} is for task files, not {source}; leave it out")
        yield from _tfds_records(*source[len("tfds:") :].rsplit(":", 1))
        return
    for path in _task_paths(source, split):
        yield from map(  # a Label Studio task's data fields read as the record's own
            label_studio.flattened,
            records.read_records(path, str(path), spec.kind, spec.column_names, spec.text_encoding),
        )


def _task_paths(source: str, split: str) -> list[Path]:
    """The files of a task split: comma-separated files or globs (a split a dataset keeps in
    several files, e.g. ``train-*.parquet``), each glob's matches sorted. A name that matches no
    file is a UserError naming the flag."""
    found = []
    for pattern in (p.strip() for p in source.split(",") if p.strip()):
        path = Path(pattern).expanduser()
        matches = [path] if path.is_file() else sorted(
            Path(p) for p in glob.glob(str(path)) if Path(p).is_file()
        )  # fmt: skip
        if not matches:
            raise UserError(
                f"task file {pattern!r} does not exist; check --config.data_dir/{split}_file"
            )
        found.extend(matches)
    return found


def _tfds_records(name: str, split: str) -> Iterator[dict]:
    """Examples of a TFDS split as dicts of Python values; class labels become their names."""
    import tensorflow_datasets as tfds  # deferred: slow import, only for TFDS tasks

    try:  # never a download at run time: a dataset is built beforehand, as a TFDS corpus is
        dataset, info = tfds.load(name, split=split, with_info=True, download=False)
    except (AssertionError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(
            f"TFDS dataset {name} (split {split}) cannot be read: {first_line}; build it first "
            f"with `tfds build {name}` (TFDS_DATA_DIR is honoured) or pass its files with "
            "--task=jsonl"
        ) from None
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


def _log_unseen_tags(examples: Sequence[TaggedExample], tags: Sequence[str], source: str) -> None:
    unseen = collections.Counter(t for e in examples for t in e.gold if t not in tags)
    if unseen:
        logging.warning(
            "%s has tags never seen in training (scored, never predicted): %s",
            source, dict(unseen),
        )  # fmt: skip


def _warn_of_near_duplicate_labels(labels: list[str]) -> None:
    """Logs labels that differ only in surrounding spaces or case ("positive", "positive "):
    each is a class of its own, which is rarely what the data meant."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.strip().casefold(), []).append(label)
    for names in groups.values():
        if len(names) > 1:
            logging.warning(
                "labels %s differ only in spaces or case and are %d classes; clean the task "
                "files if they are one",
                ", ".join(map(repr, names)),
                len(names),
            )
