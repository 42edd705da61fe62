"""A task's records (JSON objects: a JSON Lines line, a Parquet, CSV or TSV row, a CoNLL
sentence, a TFDS example) read as the examples of its kind, every malformed value a one-line
error that names the record and the fix.

- classification, multilabel, regression -> `TextExample` (one text or a pair, and the label:
  an id, a multi-hot tuple, a number);
- tagging -> `TaggedExample` (words and one tag per word);
- multiple_choice -> `choice_records.ChoiceExample` (a context, its choices, the right one).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bertjax.data import corpus_files, text_encodings
from bertjax.errors import UserError
from bertjax.finetune import label_studio
from bertjax.finetune.conll_records import CONLL_SUFFIXES, conll_records, require_tagging
from bertjax.finetune.table_records import TABLE_SUFFIXES, table_records

if TYPE_CHECKING:  # tasks imports this module
    from bertjax.finetune.tasks import TaskSpec

# The kinds whose examples are `TextExample`s: one text or a pair -> one output vector per
# example, from the pooled encoding.
TEXT_KINDS = ("classification", "multilabel", "regression")


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


def read_records(
    path: Path, name: str, kind: str, column_names: Sequence[str] = (), encoding: str = ""
) -> Iterator[dict]:
    """The records of a task file for a task of `kind`: a Parquet or Arrow file's rows
    (`table_records`), a CoNLL file's sentences (`conll_records`: .conll, .txt, .bio, .iob,
    .bmes; tagging only), a CSV or TSV file's (`delimited_records`; a .txt file for any other
    kind is TSV, as LCQMC's and THUCNews' are, unless it starts with JSON), else the objects of
    a JSON Lines file or JSON array (`json_records`); `name` is the file as the user wrote it.
    `column_names` name the columns of a CSV or TSV file without a header row; `encoding` is a
    text file's (a Python codec; "" = UTF-8, or UTF-16/32 by a byte-order mark: sniffed once
    here, `text_encodings.text_encoding`, and handed to the reader)."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        encoding = text_encodings.text_encoding(path, encoding)
    if suffix == ".txt" and kind != "tagging" and _starts_json(path, encoding):
        suffix = ".jsonl"  # JSON Lines named .txt
    delimited = suffix in corpus_files.DELIMITED_SUFFIXES or (
        suffix == ".txt" and kind != "tagging"
    )
    if column_names and not delimited:
        raise UserError(
            f"column names ({','.join(column_names)}) are for CSV and TSV files without a "
            f"header row; {name} is not one: leave them out"
        )
    if delimited:
        return delimited_records(path, name, column_names, encoding)
    if suffix in TABLE_SUFFIXES:
        return table_records(path, name)
    if suffix in CONLL_SUFFIXES:
        require_tagging(path, kind)
        return conll_records(path, name, encoding)
    return json_records(path, name, encoding)


def delimited_records(
    path: Path, name: str, column_names: Sequence[str] = (), encoding: str = ""
) -> Iterator[dict]:
    """The rows of a CSV file (.csv) or TSV file (any other suffix) as dicts of strings, keyed
    by `column_names` (a first row of just those names is a header row, skipped) or, when
    there are none, by the file's header row; read as
    `corpus_files.delimited_reader` reads (CSV strict, with Excel's quoting; TSV unquoted as
    GLUE's files are). A row with more or fewer values than there are columns, or invalid CSV,
    is a one-line error naming the line."""
    tsv = path.suffix.lower() != ".csv"
    # A byte-order mark (Excel's) is not part of the first column's name; Excel's "Unicode
    # Text" is UTF-16 TSV.
    with (
        path.open(
            encoding=text_encodings.text_encoding(path, encoding), errors="replace", newline=""
        ) as f,
        corpus_files.delimited_reader(f, tsv) as reader,
    ):
        try:
            rows = (values for values in reader if any(v.strip() for v in values))  # not blank
            header = list(column_names) or next(rows, [])
            named_by = "the column names given" if column_names else "its header"
            for values in rows:
                if values == header and reader.line_num == 1:  # a header row of those names
                    continue
                if len(values) != len(header):
                    raise UserError(
                        f"{name}:{reader.line_num} has {len(values)} values, {named_by} "
                        f"{len(header)} ({', '.join(header)}); fix the row"
                    )
                yield dict(zip(header, values, strict=True))
        except csv.Error as e:
            kind = "TSV" if tsv else "CSV"
            raise UserError(f"{name}:{reader.line_num} is not valid {kind} ({e}); fix it") from None


def _starts_json(path: Path, encoding: str) -> bool:
    """Whether the text file `path` (in `encoding`) starts with a JSON object or array (JSON
    Lines named .txt)."""
    with path.open(encoding=encoding, errors="replace") as f:
        return f.read(4096).lstrip()[:1] in ("{", "[")


def parse_column_names(value: str) -> tuple[str, ...]:
    """The column names of a comma-separated `--config.column_names` (or predict's
    `--column_names`); a repeated name is a UserError (two columns cannot share a field)."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"column names {value!r} repeat {', '.join(repeated)}; name each once")
    return names


def headerless_hint(source: str, flag: str) -> str:
    """The end of a missing-field error for a CSV or TSV source: how to name the columns of a
    file without a header row (whose first row was read as the names); "" for other files."""
    if not source.lower().endswith((*corpus_files.DELIMITED_SUFFIXES, ".txt")):
        return ""
    return f"; if {source} has no header row, name its columns: {flag}=A,B,..."


def json_records(path: Path, name: str, encoding: str = "") -> Iterator[dict]:
    """The objects of a JSON Lines file, or of a file holding one JSON array of objects (what
    pandas' `to_json(orient="records")` writes; Hugging Face's json loader reads both), in
    `encoding` ("" = UTF-8, or UTF-16/32 by a byte-order mark)."""
    encoding = text_encodings.text_encoding(path, encoding)
    with path.open(encoding=encoding, errors="replace") as f:
        is_array = f.read(4096).lstrip().startswith("[")
    if not is_array:
        return json_lines(path, name, encoding)
    try:
        records = json.loads(path.read_text(encoding=encoding, errors="replace"))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{name} is not valid JSON (line {e.lineno}: {e.msg}); write one JSON array of "
            "objects or JSON Lines"
        ) from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise UserError(f"{name}: item {number} of its JSON array is not a JSON object")
    return iter(records)


def json_lines(path: Path, name: str, encoding: str) -> Iterator[dict]:
    """The JSON objects of a JSON Lines file in `encoding` (`text_encodings.text_encoding`'s),
    blank lines skipped; `name` is the file as the user wrote it, for errors that point at the
    line."""
    with path.open(encoding=encoding, errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(
                    f"{name}:{number} is not valid JSON; fix or remove the line (a CoNLL "
                    "file of tokens and tags: name it .conll)"
                ) from None
            if not isinstance(record, dict):
                raise UserError(f"{name}:{number} is not a JSON object")
            yield record


def field_value(record: dict, field: str, source: str, where: str = ""):
    """`record[field]`; a missing field is a UserError that names the record (`where`: "record
    N of FILE") and the flag to set."""
    if field not in record:
        studio = label_studio.is_task(record) and "annotations" in record
        raise UserError(
            f"{where or 'a record of ' + source} has no field {field!r} (it has {sorted(record)}); "
            f"set the matching --config.*_field, or fix the record if the others have it"
            f"{headerless_hint(source, '--config.column_names')}"
            + (label_studio.EXPORT_HINT if studio else "")
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
    where = f"record {number + 1} of {source}"
    value = field_value(record, field, source, where)
    if not isinstance(value, list):
        raise UserError(
            f"{where}: {field!r} must be a list, one entry per word "
            f"(it is a {type(value).__name__})"
        )
    return value


def _text_list(record: dict, field: str, source: str, number: int) -> tuple[str, ...]:
    """A tagging record's words or tags, each checked by `text_value`."""
    where = f"record {number + 1} of {source}"
    values = _list_field(record, field, source, number)
    return tuple(text_value(v, f"{field}[{i}]", where) for i, v in enumerate(values))


def _label(record: dict, spec: TaskSpec, source: str, number: int) -> str:
    """A classification record's label as a string (1 and "1" are one class); a list of one
    label is that label (doccano's classification export lists it even in single-label
    projects); null (an unlabelled record, e.g. a TFDS test split's -1), other lists and objects
    are refused."""
    where = f"record {number + 1} of {source}"
    value = field_value(record, spec.label_field, source, where)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    elif isinstance(value, list):
        raise UserError(
            f"{where}: {spec.label_field!r} is a JSON array of {len(value)} labels, not one; for "
            "several labels (or none) per text, fine-tune with --config.kind=multilabel"
        )
    label = text_value(value, spec.label_field, where)
    if not label.strip():  # an empty CSV cell: an unlabelled record, not a class named ""
        raise UserError(f"{where}: {spec.label_field!r} is empty; label the record or drop it")
    return label


def label_names(spec: TaskSpec, records: Sequence[dict]) -> list[str]:
    """The task's label (tagging: tag) names in the training `records`, sorted: id = index."""
    names_of = {
        "regression": lambda record, i: (),
        "multiple_choice": lambda record, i: (),  # choices are the record's own
        "classification": lambda record, i: (_label(record, spec, spec.train, i),),
        "multilabel": lambda record, i: _label_set(record, spec, spec.train, i),
        "tagging": lambda record, i: _text_list(record, spec.tags_field, spec.train, i),
    }[spec.kind]
    return sorted({name for i, record in enumerate(records) for name in names_of(record, i)})


def example(spec: TaskSpec, labels, record, source: str, number: int, training: bool):
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
    return tuple(
        text_value(field_value(record, f, source, where), f, where) for f in spec.text_fields
    )


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
    value = field_value(record, spec.label_field, source, where)
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
    value = field_value(record, spec.label_field, source, where)
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
