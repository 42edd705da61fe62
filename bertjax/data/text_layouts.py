"""The documents of text files in the two layouts that mark where documents end:

* google-research/bert's: one sentence per line, a blank line between documents
  (`sentence_documents`: lines never joined, split further where the sentence rules find an
  end; `given_sentences`: each line one sentence, as create_pretraining_data.py reads it);
* WikiExtractor's, the layout attardi/wikiextractor writes Wikipedia in (``text/AA/wiki_00``,
  ``--compress``: ``wiki_00.bz2``), the tool google-research/bert and NVIDIA's BERT recipe
  extract Wikipedia with: per article a ``<doc id=".." url=".." title="..">`` line, the title,
  its paragraphs one per line, and ``</doc>`` (`wiki_documents`; its ``--json`` output is JSON
  Lines of ``{"id", "url", "title", "text"}``, `is_wiki_json`). Both escape the text for HTML
  (``&amp;``, ``&lt;``: its ``--html-safe`` default), which is undone.
"""

import html
import json
import re
from collections.abc import Iterable, Iterator

from bertjax.data.sentences import GIVEN_SENTENCES

_DOC_START = re.compile(r"<doc\b[^>]*>$")
_TITLE = re.compile(r'\btitle="([^"]*)"')
_DOC_END = "</doc>"


def sentence_documents(lines: Iterable[str]) -> Iterator[str]:
    """Yields documents of a one-sentence-per-line file (blank line = document boundary).

    Sentences are joined with blank lines so that `split_sentences` keeps each given line as
    its own sentence (it never joins across blank lines).
    """
    sentences: list[str] = []
    for line in lines:
        line = line.strip()
        if line:
            sentences.append(line)
        elif sentences:
            yield "\n\n".join(sentences)
            sentences = []
    if sentences:
        yield "\n\n".join(sentences)


def given_sentences(lines: Iterable[str]) -> Iterator[str]:
    """Yields documents of a one-sentence-per-line file (blank line = document boundary) whose
    lines `split_sentences` keeps as they are: `GIVEN_SENTENCES` starts each line (the character
    itself becomes a space inside a line), lines end with a newline as in the file (what is
    left where a tokenizer drops the control character)."""
    for document in sentence_documents(lines):
        sentences = document.replace(GIVEN_SENTENCES, " ").split("\n\n")
        yield "\n".join(GIVEN_SENTENCES + sentence for sentence in sentences)


def starts_wiki_document(line: str) -> bool:
    """Whether `line` is the ``<doc ...>`` line that opens a WikiExtractor article."""
    return bool(_DOC_START.match(line.strip()))


def wiki_documents(lines: Iterable[str], report) -> Iterator[str]:
    """Yields the articles of a WikiExtractor output file's `lines`: each ``<doc ...>`` ...
    ``</doc>`` is a document, its lines paragraphs (joined by blank lines, so sentences are
    split within them, never across; their HTML escapes undone), the title line that opens it
    left out (the ``title`` attribute repeats it). Text outside a document is skipped and
    counted in `report` (a `corpus_files.SourceReport`); a file cut inside its last document
    yields what it has."""
    title, paragraphs = None, []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if title is None:
            if _DOC_START.match(text):
                title, paragraphs = _title(text), []
            elif text:
                report.skip("lines outside <doc> ... </doc>", f"line {number}")
        elif text == _DOC_END:
            yield "\n\n".join(paragraphs)
            title = None
        elif text and (paragraphs or html.unescape(text) != title):
            paragraphs.append(html.unescape(text))
    if title is not None:
        yield "\n\n".join(paragraphs)


def is_wiki_json(line: str) -> bool:
    """Whether `line` is a record of WikiExtractor's ``--json`` output (whose "text" is
    HTML-escaped)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and {"id", "url", "title", "text"} <= record.keys()


def _title(start: str) -> str:
    """The title attribute of a ``<doc ...>`` line, its entities unescaped ("" without one)."""
    found = _TITLE.search(start)
    return html.unescape(found.group(1)) if found else ""
