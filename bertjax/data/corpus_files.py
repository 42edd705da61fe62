"""Corpus file formats: one file -> its raw document texts, bad input counted instead of raised.

* ``.jsonl`` / ``.json``: one JSON object per line; the text is in a named field.
* ``.txt`` and files without a suffix: ``"sentences"`` (google-research/bert: one sentence per
  line, a blank line between documents; a line of several is split further), ``"lines"`` (the
  same, each line kept as one sentence) or ``"paragraphs"`` (raw prose: the whole file is one
  document); a file that starts with ``<doc ...>`` is WikiExtractor's output, whatever
  text_format says (`text_layouts`: one document per ``<doc>``), and a suffixless file that
  starts with ``{`` is JSON Lines (WikiExtractor's ``--json``).
* ``.csv`` / ``.tsv``: one document per row, the text in a named column of the header row
  (`delimited_reader`: CSV strict, TSV unquoted).
* ``.parquet``: one document per row, the text in a named column: the format datasets are
  published in on the Hugging Face Hub (Wikipedia, FineWeb, C4 conversions) and what
  ``datasets.Dataset.to_parquet`` writes. Read one record batch of that column at a time
  (pyarrow), so a file of any size is read in bounded memory.
* ``.arrow`` / ``.feather``: the same from an Arrow IPC file, stream format (what `datasets`
  keeps in its cache and writes with ``save_to_disk``) or file format (Feather v2).

Text files are UTF-8 (a leading byte-order mark dropped), or UTF-16 or UTF-32 with their
byte-order mark: what Windows tools write as "Unicode" (PowerShell 5's ``>``, Notepad, Excel's
"Unicode Text"). A file in another encoding (GBK, Big5, ...) is skipped with how to convert it
(`text_encodings`).

``.jsonl``, ``.txt``, suffixless, ``.csv`` and ``.tsv`` files may be compressed: ``.gz``, ``.zst``
(Zstandard, the format of The Pile and SlimPajama shards; multi-frame and long-window files read
too), ``.xz`` (CC-100) or ``.bz2``. Parquet and Arrow compress inside, so a compressed one is
refused with what to do.
"""

import collections
import contextlib
import csv
import dataclasses
import html
import io
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from etils import epath

from bertjax.data import compressed_files, text_encodings, text_layouts
from bertjax.data.compressed_files import compression
from bertjax.errors import UserError

JSON_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIXES = (".txt", "")  # "": WikiExtractor's wiki_00, Spark's part-00000
DELIMITED_SUFFIXES = (".csv", ".tsv")  # one document per row under a header row
PARQUET_SUFFIXES = (".parquet",)
COLUMNAR_SUFFIXES = PARQUET_SUFFIXES + (".arrow", ".feather")  # one document per row
TEXT_FORMATS = ("sentences", "lines", "paragraphs")
_UTF8_BOM = b"\xef\xbb\xbf"
BATCH_ROWS = 1024  # rows of a Parquet file decoded at a time
_ARROW_FILE_MAGIC = b"ARROW1"  # the IPC file format's first bytes; the stream format has none
_MAX_FIELD_CHARS = 1 << 30  # a CSV field's longest text (csv's default, 131,072, cuts documents)


@dataclasses.dataclass
class SourceReport:
    """What one source gave: documents, and what was skipped or repaired, with reasons."""

    source: str
    documents: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    repaired: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    first_place: dict[str, str] = dataclasses.field(default_factory=dict)

    def skip(self, reason: str, place: str = "") -> None:
        self.skipped[reason] += 1
        self.first_place.setdefault(reason, place)

    def summary(self) -> str:
        """One line: ``a.jsonl: 10 documents; skipped 2 invalid JSON (first: line 3), ...``."""
        parts = [f"{os.path.basename(self.source)}: {self.documents} documents"]
        if not self.documents and not self.skipped:
            parts.append("no text in it")  # an empty file, or blank lines only
        if self.skipped:
            skipped = ", ".join(
                f"{count} {reason}"
                + (f" (first: {place})" if (place := self.first_place[reason]) else "")
                for reason, count in sorted(self.skipped.items())
            )
            parts.append(f"skipped {skipped}")
        if self.repaired:
            parts.append(
                "repaired " + ", ".join(f"{n} {r}" for r, n in sorted(self.repaired.items()))
            )
        return "; ".join(parts)


def format_suffix(path: str) -> str:
    """The format suffix of `path`, its compression suffix ignored, lowercased (``''`` if none)."""
    name = path.lower()
    return os.path.splitext(name[: len(name) - len(compression(name))])[1]


def check_format(path: str) -> None:
    """UserError (one line, what to do) for a file this module cannot read."""
    suffix = format_suffix(path)
    if suffix not in JSON_SUFFIXES + TEXT_SUFFIXES + DELIMITED_SUFFIXES + COLUMNAR_SUFFIXES:
        raise UserError(
            f"corpus file {path!r} has an unsupported suffix; use .jsonl, .json, .txt, .csv, "
            ".tsv or none (each optionally .gz, .zst, .xz or .bz2), .parquet, .arrow, or tfds:NAME"
        )
    if suffix in COLUMNAR_SUFFIXES and compression(path):
        raise UserError(
            f"corpus file {path!r} is a compressed {suffix} file; decompress it (Parquet and "
            "Arrow files compress inside)"
        )


def _lines(path: str, report: SourceReport, encoding: str = "") -> Iterator[str]:
    """Decoded lines of a (possibly compressed) local or gs:// file, line ends kept; a leading
    BOM dropped; UTF-16/32 read as such (undecodable bytes become U+FFFD, counted); a file
    in another encoding raises NotUtf8Error before any line. A given `encoding` (a Python codec:
    gb18030, big5, ...) is read instead of all that."""
    with (
        epath.Path(path).open("rb") as raw,
        compressed_files.decompressed(raw, compression(path)) as f,
    ):
        f = f if hasattr(f, "peek") else io.BufferedReader(SeekableFile(f))
        if encoding and not text_encodings.ascii_compatible(encoding):  # UTF-16/32 given
            yield from text_encodings.lines_in(f, encoding, report)
            return
        marked = text_encodings.bom_encoding(f.peek(4)[:4])
        if marked:
            yield from text_encodings.stream_lines(f, marked, report)
            return
        head, broken = text_encodings.head_lines(f)
        encoding = text_encodings.head_encoding(head, encoding, report)
        for number, line in enumerate(head if broken else itertools.chain(head, f)):
            if number == 0 and line.startswith(_UTF8_BOM):
                line = line[len(_UTF8_BOM) :]
            yield text_encodings.decode(line, report, encoding)
        if broken:
            raise broken


def _json_documents(
    lines: Iterable[str], path: str, text_field: str, report: SourceReport, unescape: bool = False
):
    """Yields the `text_field` string of each JSON object line (`unescape`: its HTML escapes
    undone); bad lines are skipped."""
    first = True
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if first and line.lstrip().startswith("["):  # a JSON array, the other common layout
            stem = re.sub(r"\.jsonl?(\.gz|\.zst|\.xz|\.bz2)?$", "", Path(path).name, flags=re.I)
            report.skip(
                "JSON array files (JSON Lines expected)",
                f"convert with jq -c '.[]' {path} > {stem}.jsonl",
            )
            return
        first = False
        place = f"line {line_number}"
        try:
            record = json.loads(line, strict=False)  # raw control characters in strings
        except json.JSONDecodeError as e:
            report.skip("invalid JSON", f"{place}, {e.msg}")
            continue
        if not isinstance(record, dict):
            report.skip("lines not a JSON object", f"{place}, {type(record).__name__}")
        elif text_field not in record:
            fields = ", ".join(sorted(record)) or "none"
            report.skip(f"without field {text_field!r}", f"{place}, fields: {fields}")
        elif not isinstance(text := record[text_field], str):
            report.skip(f"with non-string {text_field!r}", f"{place}, {type(text).__name__}")
        else:
            yield html.unescape(text) if unescape else text


@contextlib.contextmanager
def delimited_reader(lines: Iterable[str], tsv: bool) -> Iterator:
    """A `csv.reader` of `lines` (line ends kept): CSV as Python reads Excel's, strict (an
    unclosed quote is a `csv.Error`, not the rest of the file read as one field); TSV unquoted,
    as google-research/bert reads GLUE's .tsv files (a quote is text). Fields of any length
    while it reads."""
    limit = csv.field_size_limit(_MAX_FIELD_CHARS)
    try:
        dialect = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else dict(strict=True)
        yield csv.reader(lines, **dialect)
    finally:
        csv.field_size_limit(limit)


def _read_delimited(path: str, text_field: str, report: SourceReport, encoding: str):
    """Yields the `text_field` column of each row of a CSV or TSV file under its header row; a
    row of the wrong width is skipped and counted, invalid CSV ends the file, counted."""
    lines = _lines(path, report, encoding)
    with delimited_reader(lines, format_suffix(path) == ".tsv") as reader:
        try:
            header = next(reader, [])
            if text_field not in header:
                report.skip(f"without field {text_field!r}", f"columns: {', '.join(header)}")
                return
            column = header.index(text_field)
            for values in reader:
                if values and len(values) != len(header):
                    place = f"line {reader.line_num}, {len(values)} values for {len(header)}"
                    report.skip("rows of the wrong width", place)
                elif values:
                    yield values[column]
        except csv.Error as e:
            report.skip("invalid CSV", f"line {reader.line_num}, {e}")


def _text_documents(path: str, text_field: str, text_format: str, report: SourceReport, encoding):
    """Yields the documents of a text file (.txt or no suffix) in the layout its first line
    shows: WikiExtractor's ``<doc>`` (`text_layouts`), JSON Lines for a suffixless file that
    starts with ``{`` (WikiExtractor's ``--json``), else `text_format`'s: ``"sentences"``,
    ``"lines"`` (`text_layouts`) or ``"paragraphs"`` (the whole file, raw prose, blank lines
    ending paragraphs). A lone CR ends a line, as in Python's text files (a classic Mac OS file
    was one line: its documents one)."""
    lines, head = _split_lone_cr(_lines(path, report, encoding)), []
    for line in lines:  # up to the first line with text; blank lines kept (paragraphs)
        head.append(line)
        if line.strip():
            break
    first, lines = (head[-1] if head else ""), itertools.chain(head, lines)
    if text_layouts.starts_wiki_document(first):
        yield from text_layouts.wiki_documents(lines, report)
    elif not format_suffix(path) and first.lstrip().startswith("{"):
        wiki = text_layouts.is_wiki_json(first)  # WikiExtractor's --json: HTML-escaped text
        yield from _json_documents(lines, path, text_field, report, unescape=wiki)
    elif text_format == "paragraphs":
        yield "".join(line[:-1] + "\n" if line.endswith("\r") else line for line in lines)
    elif text_format == "lines":
        yield from text_layouts.given_sentences(lines)
    else:
        yield from text_layouts.sentence_documents(lines)


_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def _split_lone_cr(lines: Iterator[str]) -> Iterator[str]:
    """`lines`, each cut after every CR not followed by LF (its line ends kept)."""
    for line in lines:
        if line.find("\r", 0, len(line) - 2) >= 0:  # a CRLF or a CR at the end: a line end
            yield from (part for part in _LONE_CR.split(line) if part)
        else:
            yield line


def _column_texts(schema, columns: Iterator, text_field: str, report: SourceReport):
    """Yields the `text_field` strings of a columnar file with `schema` (a `pyarrow.Schema`)
    from `columns`, that column a batch at a time (not read until the schema has it); a file
    without that text column, or a row without text, is skipped and counted."""
    import pyarrow as pa

    if text_field not in schema.names:
        report.skip(f"without field {text_field!r}", f"columns: {', '.join(schema.names)}")
        return
    kind = schema.field(text_field).type
    text_types = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    binary_types = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
    if not any(is_type(kind) for is_type in text_types + binary_types):
        report.skip(f"with non-string {text_field!r}", f"column type {kind}")
        return
    row = 0
    for column in columns:
        for value in column.to_pylist():
            row += 1
            if value is None:
                report.skip(f"with non-string {text_field!r}", f"row {row}, null")
            else:
                yield text_encodings.decode(value, report) if isinstance(value, bytes) else value


class SeekableFile(io.RawIOBase):
    """An open epath file as a standard raw binary file (what pyarrow reads and io.BufferedReader
    buffers): tf.io.gfile's GFile (epath's gs:// backend where TensorFlow is installed) has no
    `closed`, `readinto` or `peek`, and its `seek` returns None."""

    def __init__(self, f):
        super().__init__()
        self._file = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._file.seek(offset, whence)
        return self._file.tell()

    def tell(self) -> int:
        return self._file.tell()


def _parquet_columns(f, text_field: str):
    """(schema, text column batches) of a Parquet file: only the text column is read."""
    import pyarrow.parquet as pq  # only Parquet corpora need it

    parquet = pq.ParquetFile(f)

    def columns() -> Iterator:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[text_field]):
            yield batch.column(0)

    return parquet.schema_arrow, columns()


def arrow_batches(f) -> tuple:
    """(schema, record batches) of an open Arrow IPC file: the stream format that `datasets`
    writes (`save_to_disk`, its cache) or the file format (Feather v2); batches read lazily."""
    import pyarrow as pa

    is_file_format = f.read(len(_ARROW_FILE_MAGIC)) == _ARROW_FILE_MAGIC
    f.seek(0)
    reader = pa.ipc.open_file(f) if is_file_format else pa.ipc.open_stream(f)

    def batches() -> Iterator:
        if is_file_format:
            yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            yield from reader

    return reader.schema, batches()


def _arrow_columns(f, text_field: str):
    """(schema, text column batches) of an Arrow IPC file (`arrow_batches`)."""
    schema, batches = arrow_batches(f)
    return schema, (batch.column(text_field) for batch in batches)


def _read_columnar(path: str, text_field: str, report: SourceReport) -> Iterator[str]:
    """Yields the text of each row of a Parquet or Arrow file (local or gs://); a file pyarrow
    cannot read ends it as an OSError (documents before the break are kept)."""
    import pyarrow as pa

    columns_of = _parquet_columns if format_suffix(path) in PARQUET_SUFFIXES else _arrow_columns
    try:
        with epath.Path(path).open("rb") as f:  # as fast as pyarrow's own local reads (measured)
            schema, columns = columns_of(SeekableFile(f), text_field)
            yield from _column_texts(schema, columns, text_field, report)
    except pa.ArrowException as e:  # ArrowInvalid: not Parquet/Arrow, a bad footer or page
        raise OSError(" ".join(str(e).split())[:200]) from e


def read_file(
    path: str, text_field: str, text_format: str, report: SourceReport, encoding: str = ""
) -> Iterator[str]:
    """Yields the raw documents of one corpus file; an unreadable file ends it, counted. Text
    files are read in `encoding` when one is given (`_lines`)."""
    try:
        suffix = format_suffix(path)
        if suffix in JSON_SUFFIXES:
            yield from _json_documents(_lines(path, report, encoding), path, text_field, report)
        elif suffix in DELIMITED_SUFFIXES:
            yield from _read_delimited(path, text_field, report, encoding)
        elif suffix in COLUMNAR_SUFFIXES:
            yield from _read_columnar(path, text_field, report)
        else:
            yield from _text_documents(path, text_field, text_format, report, encoding)
    except (OSError, EOFError) as e:
        # Missing or unreadable files, corrupt or truncated archives and Parquet files land here.
        report.skip("unreadable file", f"{type(e).__name__}: {e}")
    except text_encodings.NotUtf8Error as e:
        report.skip(
            "file not in UTF-8",
            f"{e}; or read it as it is: --config.text_encoding=gb18030 (big5, ...)",
        )
    except text_encodings.NotInEncodingError as e:
        report.skip("file not in the given encoding", f"{e}; check --config.text_encoding")
