"""A task's records from a Parquet or Arrow file, the files Hugging Face `datasets` writes
(the Hub's Parquet, `to_parquet`; the Arrow of `save_to_disk` and its cache): one record (dict)
per row.

Hugging Face stores a class label as its index and the names in the file's schema metadata
(``huggingface`` -> ``info.features``: a ``ClassLabel`` with ``names``, or a ``List`` /
``Sequence`` of one, e.g. ``ner_tags``). Those columns become their names, as TFDS class labels
do in `tasks`, so tags keep their BIO names for the entity scores; -1 (no label, e.g. GLUE's test
splits) becomes None, which the records reader refuses with the record's number.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from bertjax.data import corpus_files
from bertjax.errors import UserError

_LIST_TYPES = ("List", "Sequence", "LargeList")  # `datasets` >= 4 writes List, before Sequence


def class_label_names(metadata: dict[bytes, bytes] | None) -> dict[str, list[str]]:
    """{column: label names} of the class-label columns (or lists of class labels) that a
    Parquet schema's Hugging Face metadata declares; {} when there is none."""
    try:
        features = json.loads((metadata or {})[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError):
        return {}
    names = {}
    for column, feature in features.items() if isinstance(features, dict) else ():
        if isinstance(feature, dict) and feature.get("_type") in _LIST_TYPES:
            feature = feature.get("feature")
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
            if isinstance(feature.get("names"), list):
                names[column] = [str(name) for name in feature["names"]]
    return names


def _label_name(index, names: list[str], where: str) -> str | None:
    """The name of class label `index`; None for -1 or null (no label)."""
    if index is None or index < 0:
        return None
    if index >= len(names):
        raise UserError(
            f"{where}: class label {index} is beyond its {len(names)} names {names}; fix the file"
        )
    return names[index]


def _named(row: dict, names: dict[str, list[str]], where: str) -> dict:
    """`row` with each class-label column's index (or list of indices) replaced by names."""
    for column, column_names in names.items():
        value = row.get(column)
        if isinstance(value, list):
            row[column] = [_label_name(v, column_names, where) for v in value]
        elif column in row:
            row[column] = _label_name(value, column_names, where)
    return row


TABLE_SUFFIXES = corpus_files.COLUMNAR_SUFFIXES  # .parquet, .arrow, .feather


def table_records(path: Path, name: str) -> Iterator[dict]:
    """The rows of a Parquet or Arrow file as dicts, class labels named; `name` is the file as
    the user wrote it. A file pyarrow cannot read is a one-line UserError."""
    import pyarrow as pa

    kind = "Parquet" if path.suffix.lower() == ".parquet" else "Arrow"
    try:
        with path.open("rb") as f:
            schema, batches = _batches(f, kind)
            names = class_label_names(schema.metadata)
            number = 0
            for batch in batches:
                for row in batch.to_pylist():
                    number += 1
                    yield _named(row, names, f"record {number} of {name}")
    except (pa.ArrowException, OSError) as e:
        reason = " ".join(str(e).split())[:200]
        raise UserError(f"{name} is not a readable {kind} file ({reason})") from None


def _batches(f, kind: str) -> tuple:
    """(schema, record batches) of an open Parquet or Arrow file."""
    if kind == "Arrow":
        return corpus_files.arrow_batches(f)
    import pyarrow.parquet as pq  # only Parquet task files need it

    parquet = pq.ParquetFile(f)
    return parquet.schema_arrow, parquet.iter_batches(batch_size=corpus_files.BATCH_ROWS)
