"""Corpus reader: files/globs -> an iterator of document texts.

Two formats, each optionally gzip-compressed (``.gz``):

* ``.jsonl`` / ``.json``: one JSON object per line; the document text is in a named field.
* ``.txt``: the google-research/bert format, one sentence per line and a blank line between
  documents.
"""

import glob
import gzip
import hashlib
import json
import os
from collections.abc import Iterator, Sequence

from bertjax.errors import UserError

JSON_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIXES = (".txt",)
_HASH_CHUNK_BYTES = 1 << 20


def _split_patterns(patterns: str | Sequence[str]) -> list[str]:
    """Accepts a comma-separated string or a list of patterns; drops empty entries."""
    if isinstance(patterns, str | os.PathLike):
        patterns = str(patterns).split(",")
    return [str(p).strip() for p in patterns if str(p).strip()]


def _format_suffix(path: str) -> str:
    """The format suffix of `path` with a trailing ``.gz`` ignored, lowercased (``''`` if none)."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    return os.path.splitext(name)[1]


def resolve_files(patterns: str | Sequence[str]) -> list[str]:
    """Expands comma-separated (or listed) paths and globs into a sorted, deduplicated file list.

    Raises UserError when there is no pattern, a pattern matches no files, or a file has a suffix
    the reader does not know, so a bad corpus is reported before any work starts.
    """
    pattern_list = _split_patterns(patterns)
    if not pattern_list:
        raise UserError("no corpus given; pass files or globs with --config.corpus=a.jsonl,b/*.txt")
    files = set()
    for pattern in pattern_list:
        expanded = os.path.expanduser(pattern)
        # An existing path is taken literally so names with glob characters ('[', '*') still work.
        matches = [expanded] if os.path.exists(expanded) else glob.glob(expanded, recursive=True)
        if not matches:
            raise UserError(
                f"corpus pattern {pattern!r} matched no files; "
                "pass existing files or globs with --config.corpus=..."
            )
        for path in matches:
            if os.path.isdir(path):
                raise UserError(
                    f"corpus path {path!r} is a directory; pass files or a glob such as "
                    f"--config.corpus='{path.rstrip('/')}/*.jsonl'"
                )
            if _format_suffix(path) not in JSON_SUFFIXES + TEXT_SUFFIXES:
                raise UserError(
                    f"corpus file {path!r} has an unsupported suffix; "
                    "use .jsonl, .json or .txt (each optionally .gz)"
                )
            files.add(os.path.abspath(path))
    return sorted(files)


def corpus_fingerprint(files: Sequence[str]) -> str:
    """Hex sha256 over each file's base name, size and bytes, in the given order.

    Base names rather than full paths, so moving a checkout keeps the vocabulary cache valid.
    """
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.basename(path).encode("utf-8") + b"\0")
        digest.update(str(os.path.getsize(path)).encode("ascii") + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: str):
    """Opens a (possibly gzipped) file as UTF-8 text; bad bytes become U+FFFD instead of crashing.

    ``utf-8-sig`` also drops a leading byte-order mark that some editors write.
    """
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


def _read_json_lines(path: str, text_field: str) -> Iterator[str]:
    """Yields the `text_field` string of each JSON object line of `path`."""
    with _open_text(path) as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{where}: invalid JSON ({e.msg}); write one JSON object per line"
                ) from None
            if not isinstance(record, dict):
                raise UserError(
                    f"{where}: expected a JSON object, got {type(record).__name__}; "
                    "write one object per line"
                )
            if text_field not in record:
                raise UserError(
                    f"{where}: JSON object has no field {text_field!r} (fields: "
                    f"{', '.join(sorted(record)) or 'none'}); set --config.text_field=..."
                )
            text = record[text_field]
            if not isinstance(text, str):
                raise UserError(
                    f"{where}: field {text_field!r} is {type(text).__name__}, not a string; "
                    "point --config.text_field at the document text"
                )
            yield text


def _read_sentence_lines(path: str) -> Iterator[str]:
    """Yields documents of a one-sentence-per-line file (blank line = document boundary).

    Sentences are joined with blank lines so that `split_sentences` keeps each given line as
    its own sentence (it never joins across blank lines).
    """
    sentences: list[str] = []
    with _open_text(path) as f:
        for line in f:
            line = line.strip()
            if line:
                sentences.append(line)
            elif sentences:
                yield "\n\n".join(sentences)
                sentences = []
    if sentences:
        yield "\n\n".join(sentences)


def _read_file(path: str, text_field: str) -> Iterator[str]:
    """Yields the documents of one file, whatever its format; unreadable files -> UserError."""
    try:
        if _format_suffix(path) in JSON_SUFFIXES:
            yield from _read_json_lines(path, text_field)
        else:
            yield from _read_sentence_lines(path)
    except (OSError, EOFError) as e:
        # gzip.BadGzipFile, truncated archives and permission errors land here.
        raise UserError(f"cannot read corpus file {path!r} ({e}); check the file") from None


def read_documents(patterns: str | Sequence[str], text_field: str = "text") -> Iterator[str]:
    """Yields every non-empty document text of the corpus, files in sorted order.

    Args:
      patterns: comma-separated string or list of paths/globs (see `resolve_files`).
      text_field: the JSON field holding the text (ignored for ``.txt`` files).
    """
    for path in resolve_files(patterns):
        for text in _read_file(path, text_field):
            if text.strip():
                yield text
