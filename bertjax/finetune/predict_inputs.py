"""The input of `bertjax predict`: a file's records read as the fine-tuned model's task reads
them (its recorded fields, or those the user names), the examples inference encodes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import jax

from bertjax.data import text_encodings
from bertjax.errors import UserError
from bertjax.finetune import choice_records, label_studio, span_records, squad
from bertjax.finetune.choice_records import ChoiceExample
from bertjax.finetune.records import (
    TEXT_KINDS,
    TaggedExample,
    TextExample,
    headerless_hint,
    parse_column_names,
    read_records,
    text_value,
)

# Records read, encoded and predicted at a time (a record's example, features and output take ~7 KB
# in memory: 300,000 short texts at once peaked at 2.7 GB).
CHUNK_RECORDS = 8192

# The flags that name an input's fields, for errors.
TEXT_FLAG = "--text_fields=NAME (a pair: a,b)"
CHOICE_FLAGS = "--text_fields=NAME and --choices_field=NAME (or a,b,...)"

# The input fields of a model imported from Hugging Face (bertjax fine-tunes record theirs).
DEFAULT_FIELDS = {"text_fields": ["text"], "tokens_field": "tokens",
                  "choice_fields": [choice_records.DEFAULT_CHOICES_FIELD]}  # fmt: skip


def with_fields(task: dict, text_fields: str, tokens_field: str, choices_field: str) -> dict:
    """The task entry with the input field names the user gave in place of the recorded ones."""
    recorded = task.get("text_fields")  # None: imported, one text or a pair may be meant
    if task.get("spans_field"):  # a tagger fine-tuned on spans reads one text field
        recorded = [task["text_field"]]
    task, kind = DEFAULT_FIELDS | task, task["kind"]
    text_kinds = (
        *TEXT_KINDS,
        choice_records.KIND,
        *(("tagging",) if task.get("spans_field") else ()),
    )
    for flag, value, kinds in (
        ("--text_fields", text_fields, text_kinds),
        ("--tokens_field", tokens_field, ("tagging",)),
        ("--choices_field", choices_field, (choice_records.KIND,)),
    ):
        if value and kind not in kinds:
            raise UserError(f"{flag} does not apply to a {kind} model; leave it out")
    if text_fields:
        fields = [f.strip() for f in text_fields.split(",") if f.strip()]
        if recorded is not None and len(fields) != len(recorded):
            raise UserError(
                f"--text_fields={text_fields} names {len(fields)} fields; the model reads "
                f"{len(recorded)} ({', '.join(recorded)} when fine-tuned)"
            )
        if not fields or (kind in TEXT_KINDS and len(fields) > 2):
            raise UserError(f"--text_fields={text_fields} must name one field or a pair: a or a,b")
        task |= {"text_field": fields[0]} if kind == "tagging" else {"text_fields": fields}
    if tokens_field and task.get("spans_field"):
        raise UserError(
            "--tokens_field does not apply to a tagger fine-tuned on spans: it reads the text "
            f"field {task['text_field']!r} and splits its words itself; leave it out"
        )
    if tokens_field:
        task |= {"tokens_field": tokens_field}
    if choices_field:
        task |= {"choice_fields": list(choice_records.parse_choice_fields(choices_field))}
    return task


def check_run_flags(batch_size: int, text_encoding: str) -> None:
    """UserError for a batch size the devices do not divide or an unknown text encoding."""
    if batch_size <= 0 or batch_size % jax.device_count():
        raise UserError(
            f"--batch_size={batch_size} must be a positive multiple of the "
            f"{jax.device_count()} devices"
        )
    text_encodings.check_encoding_name(text_encoding, "--text_encoding")


def checked_chunks(
    task: dict, path: Path, column_names: str, encoding: str
) -> tuple[Callable[[], Iterator[tuple[list, list]]], int]:
    """(a function giving `input_chunks` of the file anew, the number of examples), after a
    first pass that reads and checks every record: a bad one anywhere is a UserError before
    a model runs or an output is opened."""
    chunks = functools.partial(input_chunks, task, path, column_names, encoding)
    return chunks, sum(len(examples) for _, examples in chunks())


def input_chunks(
    task: dict, path: Path, column_names: str, encoding: str
) -> Iterator[tuple[list, list]]:
    """(records to echo, examples to encode) of the input file, CHUNK_RECORDS records (QA:
    questions) at a time, so memory does not grow with the file. UserError for an input with
    no record, or naming a record that lacks the model's fields."""
    size = CHUNK_RECORDS
    if task["kind"] == "qa":
        if column_names:
            raise UserError(
                "--column_names does not apply to a qa model (SQuAD input); leave it out"
            )
        questions = squad.read_squad(path, answers_required=False, encoding=encoding)
        for start in range(0, len(questions), size):
            part = questions[start : start + size]
            yield [{"id": e.id, "question": e.question} for e in part], part
        return
    names = parse_column_names(column_names)
    records, examples, number = [], [], 0
    for number, record in enumerate(
        read_records(path, str(path), task["kind"], names, encoding), 1
    ):
        records.append(record)
        examples.append(_example(task, label_studio.flattened(record), path, number))
        if len(records) == size:
            yield records, examples
            records, examples = [], []
    if not number:
        raise UserError(
            f"--input={path} has no record{headerless_hint(str(path), '--column_names')}"
        )
    if records:
        yield records, examples


def _example(task: dict, record: dict, path: Path, number: int):
    """Record `number`'s example of the model's kind (labels not needed: 0)."""
    if task["kind"] in TEXT_KINDS:
        fields = task["text_fields"]
        texts = tuple(_text(record, f, path, number, fields, TEXT_FLAG) for f in fields)
        return TextExample(texts, label=0)
    if task["kind"] == choice_records.KIND:
        return _choice_example(task, record, path, number)
    if task.get("spans_field"):  # fine-tuned on spans of a text: tag its words
        return _text_tagging_example(task, record, path, number)
    field = task["tokens_field"]
    words = _field(record, field, path, number, [field], "--tokens_field=NAME")
    if not isinstance(words, list):
        raise UserError(
            f"record {number} of {path}: {field!r} must be a list of words (it is a "
            f"{type(words).__name__})"
        )
    where = f"record {number} of {path}"
    words = tuple(text_value(w, f"{field}[{i}]", where) for i, w in enumerate(words))
    return TaggedExample(words, (0,) * len(words))


def _text_tagging_example(task: dict, record: dict, path: Path, number: int) -> TaggedExample:
    """The input of a tagger fine-tuned on spans: the record's text in words, as fine-tuning
    split it (`span_records.text_words`)."""
    field = task["text_field"]
    text = _text(record, field, path, number, [field], "--text_fields=NAME")
    words = tuple(text[a:b] for a, b in span_records.text_words(text))
    return TaggedExample(words, (0,) * len(words))


def _choice_example(task: dict, record: dict, path: Path, number: int) -> ChoiceExample:
    """A multiple-choice input: the record's context and choices (the answer not needed)."""
    fields, choice_fields = task["text_fields"], task["choice_fields"]
    for name in (*fields, *choice_fields):  # missing: the error names the model's fields
        _field(record, name, path, number, [*fields, *choice_fields], CHOICE_FLAGS)
    where = f"record {number} of {path}"
    texts = choice_records.context_texts(record, fields, str(path), where)
    choices, _ = choice_records.choices_of(
        record, tuple(choice_fields), str(path), where, "--choices_field"
    )
    return ChoiceExample(texts, choices, label=0)


def _field(record: dict, field: str, path: Path, number: int, fields: list[str], flag: str):
    """record[field]; UserError naming the fields the model reads and `flag`, which names
    others."""
    if field not in record:
        raise UserError(
            f"record {number} of {path} has no field {field!r}; the model reads "
            f"{', '.join(map(repr, fields))} (the record has {sorted(record)}): name yours with "
            f"{flag}{headerless_hint(str(path), '--column_names')}"
        )
    return record[field]


def _text(record: dict, field: str, path: Path, number: int, fields: list[str], flag: str) -> str:
    return text_value(_field(record, field, path, number, fields, flag), field,
                      f"record {number} of {path}")  # fmt: skip
