"""Tagging task files in the CoNLL layout, as NER and chunking sets are distributed (CoNLL-2000
and -2003, and the character-per-line BIO/BMES files of Chinese NER sets such as MSRA, Weibo and
Resume NER): one token per line, its first column the token and its last the tag, whitespace
between, a blank line between sentences, ``-DOCSTART-`` lines skipped. Each sentence becomes
the record ``{"tokens": [...], "tags": [...]}`` (no "tags" when its lines hold only the token,
as files to label with `bertjax predict` do)."""

import re
from collections.abc import Iterator
from pathlib import Path

from bertjax.data import text_encodings
from bertjax.errors import UserError

CONLL_SUFFIXES = (".conll", ".txt", ".bio", ".iob", ".bmes")
_DOCUMENT_START = "-DOCSTART-"
_SEPARATORS = re.compile("[ \t\r\n\f\v]+")  # ASCII whitespace: the columns' separators


def conll_records(path: Path, name: str, encoding: str = "") -> Iterator[dict]:
    """The sentences of a CoNLL-layout file as records; `name` is the file as the user wrote it,
    for the one-line error of a sentence whose tokens are tagged only in part."""
    tokens, tags, untagged = [], [], []  # untagged: the sentence's lines of a token alone
    with path.open(encoding=text_encodings.text_encoding(path, encoding), errors="replace") as f:
        for number, line in enumerate(f, 1):
            columns = columns_of(line)
            if columns[:1] == [_DOCUMENT_START]:
                continue
            if columns:
                tokens.append(columns[0])
                tags.extend(columns[-1:] if len(columns) > 1 else [])
                untagged.extend([] if len(columns) > 1 else [number])
            elif tokens:
                yield _sentence(tokens, tags, untagged, name)
                tokens, tags, untagged = [], [], []
    if tokens:
        yield _sentence(tokens, tags, untagged, name)


def columns_of(line: str) -> list[str]:
    """A line's columns, split at ASCII spaces and tabs only: a token may be a character that
    Python's str.split() takes for a separator (the ideographic space U+3000 of Chinese NER
    files, which made its tag the token and the sentence "tagged in part")."""
    return [column for column in _SEPARATORS.split(line) if column]


def _sentence(tokens: list[str], tags: list[str], untagged: list[int], name: str) -> dict:
    if tags and untagged:
        raise UserError(
            f"{name}:{untagged[0]}: this line has a token but no tag, in a sentence whose other "
            f"tokens are tagged ({len(tags)} of {len(tokens)}); put each token's tag in its "
            "line's last column"
        )
    return {"tokens": tokens, "tags": tags} if tags else {"tokens": tokens}


def require_tagging(path: Path, kind: str) -> None:
    """UserError when the CoNLL file `path` is given to a task `kind` other than tagging: its
    records are tokens and tags, which no other kind reads."""
    if kind != "tagging":
        raise UserError(
            f"{path} is read as a CoNLL file of tokens and tags (its suffix), which only "
            f"tagging takes; give a {kind} task's texts as JSON Lines, CSV, TSV or Parquet"
        )
