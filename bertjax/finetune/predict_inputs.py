"""The input of `bertjax predict`: a file's records read as the fine-tuned model's task reads
them (its recorded fields, or those the user names), the examples inference encodes."""

from __future__ import annotations

from pathlib import Path

from bertjax.errors import UserError
from bertjax.finetune import choice_records, span_records, squad
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


def read_inputs(task: dict, path: Path, column_names: str, encoding: str) -> tuple[list, list]:
    """(records to echo, examples to encode) of the input file."""
    if task["kind"] == "qa":
        if column_names:
            raise UserError(
                "--column_names does not apply to a qa model (SQuAD input); leave it out"
            )
        examples = squad.read_squad(path, answers_required=False, encoding=encoding)
        return [{"id": e.id, "question": e.question} for e in examples], examples
    names = parse_column_names(column_names)
    records = list(read_records(path, str(path), task["kind"], names, encoding))
    if not records:
        raise UserError(
            f"--input={path} has no record{headerless_hint(str(path), '--column_names')}"
        )
    if task["kind"] in TEXT_KINDS:
        fields = task["text_fields"]
        examples = [
            TextExample(tuple(_text(r, f, path, n, fields) for f in fields), label=0)
            for n, r in enumerate(records, 1)
        ]
        return records, examples
    if task["kind"] == choice_records.KIND:
        return records, _choice_examples(task, records, path)
    if task.get("spans_field"):  # fine-tuned on spans of a text: tag its words
        return records, _text_tagging_examples(task, records, path)
    field = task["tokens_field"]
    examples = []
    for number, record in enumerate(records, 1):
        words = _field(record, field, path, number, [field])
        if not isinstance(words, list):
            raise UserError(
                f"record {number} of {path}: {field!r} must be a list of words (it is a "
                f"{type(words).__name__})"
            )
        where = f"record {number} of {path}"
        words = tuple(text_value(w, f"{field}[{i}]", where) for i, w in enumerate(words))
        examples.append(TaggedExample(words, (0,) * len(words)))
    return records, examples


def _text_tagging_examples(task: dict, records: list[dict], path: Path) -> list[TaggedExample]:
    """Inputs of a tagger fine-tuned on spans: each record's text in words, as fine-tuning
    split it (`span_records.text_words`)."""
    field, examples = task["text_field"], []
    for number, record in enumerate(records, 1):
        text = _text(span_records.text_holder(record, field), field, path, number, [field])
        words = tuple(text[a:b] for a, b in span_records.text_words(text))
        examples.append(TaggedExample(words, (0,) * len(words)))
    return examples


def _choice_examples(task: dict, records: list[dict], path: Path) -> list[ChoiceExample]:
    """Multiple-choice inputs: each record's context and choices (the answer not needed)."""
    fields, choice_fields = task["text_fields"], task["choice_fields"]
    examples = []
    for number, record in enumerate(records, 1):
        for name in (*fields, *choice_fields):  # missing: the error names the model's fields
            _field(record, name, path, number, [*fields, *choice_fields])
        where = f"record {number} of {path}"
        texts = choice_records.context_texts(record, fields, str(path), where)
        choices, _ = choice_records.choices_of(
            record, tuple(choice_fields), str(path), where, "--choices_field"
        )
        examples.append(ChoiceExample(texts, choices, label=0))
    return examples


def _field(record: dict, field: str, path: Path, number: int, fields: list[str]):
    if field not in record:
        raise UserError(
            f"record {number} of {path} has no field {field!r}; the model was fine-tuned on "
            f"records with {', '.join(map(repr, fields))} (it has {sorted(record)})"
            f"{headerless_hint(str(path), '--column_names')}"
        )
    return record[field]


def _text(record: dict, field: str, path: Path, number: int, fields: list[str]) -> str:
    return text_value(_field(record, field, path, number, fields), field,
                            f"record {number} of {path}")  # fmt: skip
