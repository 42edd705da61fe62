"""Corpus reader: files/globs or TFDS datasets -> an iterator of document texts.

Sources (comma-separated in ``--config.corpus``):

* files: ``.jsonl``/``.json`` (one JSON object per line), ``.txt`` or no suffix (one sentence
  per line, or raw prose: ``text_format``; WikiExtractor's output is recognised),
  ``.csv``/``.tsv``/``.parquet``/``.arrow`` (one document per row); all but Parquet and Arrow
  optionally compressed. How each is read: `corpus_files`.
* ``tfds:NAME[@SPLIT]``: a prepared TensorFlow Datasets dataset read with ``tfds.load``, e.g.
  ``tfds:wikipedia/20230601.en`` (split ``train`` by default) or ``tfds:c4/en:3.1.0@train[:1%]``,
  or a part of its split (`tfds_corpus`).

Bad input never crashes a run: invalid UTF-8 bytes are replaced (U+FFFD) and control characters
removed (both counted); empty documents, malformed JSON lines, a missing field, an unreadable
file or an unloadable dataset are skipped and counted per source with the first place each
happened; a pattern that matches nothing is skipped with a warning when other patterns match.
Each source logs one line of counts. Only a corpus with no document at all is an error (one
line, listing why things were skipped).
"""

import collections
import contextlib
import glob
import hashlib
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from absl import logging
from etils import epath

from bertjax import paths
from bertjax.data import compressed_files, corpus_files, text_encodings, tfds_corpus
from bertjax.data.corpus_files import SourceReport
from bertjax.data.sentences import GIVEN_SENTENCES
from bertjax.errors import UserError, flags_renamed

# The public-domain sample corpus that ships inside the package (US inaugural addresses, State
# of the Union addresses 1945-2006, Genesis KJV + WEB), read like any user's JSON Lines files.
SAMPLE_CORPUS = str(Path(__file__).resolve().parent.parent / "assets" / "corpus" / "*.jsonl.gz")
# The Chinese sample (configs/cpu_smoke_zh.py): 西游记 Journey to the West (Wu Cheng'en, 16th
# century, public domain), 100 chapters and the appendix, one document per chapter, 0.72 M
# characters; from ../shared/data/zh/pretrain/xiyouji.jsonl (hexhero/book-txt @ b46b8dd).
SAMPLE_CORPUS_ZH = str(
    Path(__file__).resolve().parent.parent / "assets" / "corpus_zh" / "*.jsonl.gz"
)
TEXT_FORMATS = corpus_files.TEXT_FORMATS
_HASH_CHUNK_BYTES = 1 << 20
# C0/C1 control characters but tab, newline and CR: the tokenizer drops them anyway; dropping them
# here keeps sentence splitting and emptiness checks in step with what gets tokenized. And lone
# surrogates (JSON's "\ud83d", an emoji cut in half), which UTF-8 cannot hold and
# google-research/bert deletes as control characters.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_CHARS_BUT_SEPARATOR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1d\x1f\x7f-\x9f\ud800-\udfff]")
_MAX_LISTED_SOURCES = 3  # in the one-line "no documents" error


def _split_patterns(patterns: str | Sequence[str]) -> list[str]:
    """Accepts a comma-separated string or a list of patterns; drops empty entries."""
    if isinstance(patterns, str | os.PathLike):
        patterns = str(patterns).split(",")
    return [str(p).strip() for p in patterns if str(p).strip()]


def _expand(pattern: str) -> list[str]:
    """Files of one pattern (an existing path is taken literally, so names with '[' work); a
    URI pattern (gs://...) is listed where it is."""
    if paths.is_uri(pattern):
        matches = paths.glob_uri(pattern)
    else:
        expanded = os.path.expanduser(pattern)
        matches = [expanded] if os.path.exists(expanded) else glob.glob(expanded, recursive=True)
    with paths.remote_errors(pattern):
        _check_files(matches)
    return [str(paths.as_path(path)) for path in matches]


def _corpus_glob_in(directory: str) -> str:
    """A glob of the corpus files in `directory`: ``*`` and the full suffix (e.g. ``.jsonl.gz``,
    ``.arrow``) of the readable files that hold the most bytes (not a ``save_to_disk`` folder's
    small .json files beside its .arrow data), ``*.jsonl`` when there is none; a directory of
    directories only (WikiExtractor's AA/, AB/, ...) looks one level down (``*/*``)."""
    children = list(epath.Path(directory).iterdir())
    files = [child for child in children if child.is_file()]
    if not files and children:
        files, prefix = [f for child in children for f in child.iterdir() if f.is_file()], "*/"
    else:
        prefix = ""
    sizes: collections.Counter[str] = collections.Counter()
    for child in files:
        with contextlib.suppress(UserError, OSError):
            corpus_files.check_format(child.name)
            name = child.name.lower()
            length = len(corpus_files.format_suffix(name) + compressed_files.compression(name))
            suffix = child.name[len(name) - length :]  # as written: globs are case-sensitive
            sizes[suffix] += child.stat().length
    return prefix + "*" + max(sorted(sizes), key=sizes.get, default=".jsonl")


def _check_files(matches: list[str]) -> None:
    """UserError for a directory or a file of an unknown format among a pattern's matches."""
    for path in matches:
        if epath.Path(path).is_dir():
            raise UserError(
                f"corpus path {path!r} is a directory; pass files or a glob such as "
                f"--config.corpus='{path.rstrip('/')}/{_corpus_glob_in(path)}'"
            )
        corpus_files.check_format(path)


CORPUS_FLAG = "--config.corpus"  # the flag this module's errors name
# Where one document ends and the next begins, for errors that ask for more documents.
DOCUMENT_BOUNDARIES = (
    "one per .jsonl record or .parquet row; in .txt, blank lines between them with text_format "
    "'sentences', one per file with 'paragraphs', one per <doc> in WikiExtractor's output"
)


@contextlib.contextmanager
def corpus_flag(flag: str, named: str = CORPUS_FLAG) -> Iterator[None]:
    """Within it, errors that name the flag `named` (this module's: CORPUS_FLAG) name `flag`
    instead (e.g. `bertjax vocab --input`, ``--config.eval_corpus``)."""
    with flags_renamed({named: flag}):
        yield


def resolve_files(patterns: str | Sequence[str], *, warn: bool = True) -> list[str]:
    """Expands comma-separated (or listed) paths and globs into a sorted, deduplicated list.

    ``tfds:`` sources are kept as given (after the files). A pattern that matches nothing is
    skipped with a warning (`warn`) when another one matches. Raises UserError when there is no
    pattern, nothing matches at all, or a file has a suffix the reader does not know.
    """
    pattern_list = _split_patterns(patterns)
    if not pattern_list:
        raise UserError("no corpus given; pass files or globs with --config.corpus=a.jsonl,b/*.txt")
    files: set[str] = set()
    datasets: list[str] = []
    unmatched = []
    for pattern in pattern_list:
        if tfds_corpus.is_tfds(pattern):
            datasets.extend([pattern] if pattern not in datasets else [])
            continue
        matches = _expand(pattern)
        if not matches:
            unmatched.append(pattern)
        files.update(matches)
    if not files and not datasets:
        raise UserError(
            f"corpus pattern {unmatched[0]!r} matched no files; "
            "pass existing files or globs with --config.corpus=..."
        )
    for pattern in unmatched if warn else ():
        logging.warning("Corpus pattern %r matched no files; skipped", pattern)
    return sorted(files) + datasets


def check_local_patterns(data) -> None:
    """`resolve_files`' errors for a run's corpus and held-out corpus (`data`: its DataSpec; none
    with a prepared_dir), where every pattern is a local path or glob (gs:// and tfds: sources
    are listed once, by the run): the command line checks them before TensorFlow loads."""
    checked = {} if data.prepared_dir else {CORPUS_FLAG: data.corpus}
    checked |= {"--config.eval_corpus": data.eval_corpus} if data.eval_corpus else {}
    for flag, patterns in checked.items():
        listed = _split_patterns(patterns)
        if any(paths.is_uri(p) or tfds_corpus.is_tfds(p) for p in listed):
            continue
        with corpus_flag(flag):
            resolve_files(listed, warn=False)


def source_size(source: str) -> int:
    """Bytes of a corpus file (local or gs://); 0 for a TFDS source (size unknown here) and for
    a file that cannot be read (a dangling link, no permission: reading it skips and counts it;
    this was a traceback before)."""
    if tfds_corpus.is_tfds(source):
        return 0
    try:
        return epath.Path(source).stat().length
    except OSError:
        return 0


def is_file(source: str) -> bool:
    """Whether a corpus file (local or gs://) exists; False for a TFDS source."""
    return not tfds_corpus.is_tfds(source) and epath.Path(source).is_file()


def corpus_fingerprint(files: Sequence[str]) -> str:
    """Hex sha256 over each file's base name, size and bytes (a TFDS source: its name), in order.

    Base names rather than full paths, so moving a checkout keeps the vocabulary cache valid.
    Pin a TFDS version (``tfds:name:1.0.0``) for the fingerprint to follow its data.
    """
    digest = hashlib.sha256()
    for path in files:
        if tfds_corpus.is_tfds(path):
            digest.update(path.encode("utf-8") + b"\0")
            continue
        digest.update(os.path.basename(path).encode("utf-8") + b"\0")
        digest.update(str(source_size(path)).encode("ascii") + b"\0")
        try:
            with epath.Path(path).open("rb") as f:
                while chunk := f.read(_HASH_CHUNK_BYTES):
                    digest.update(chunk)
        except OSError:  # unreadable: its reading skips and counts it; it counts as unreadable
            digest.update(b"\0unreadable\0")
    return digest.hexdigest()


def _read_source(
    source: str, text_field: str, text_format: str, report: SourceReport, encoding: str
) -> Iterator[str]:
    """Yields the raw documents of one source (a file or a ``tfds:`` dataset)."""
    if tfds_corpus.is_tfds(source):
        for text in tfds_corpus.read_texts(source, text_field, report):
            yield text_encodings.decode(text, report) if isinstance(text, bytes) else str(text)
    else:
        yield from corpus_files.read_file(source, text_field, text_format, report, encoding)


def is_held_out(text: str, fraction: float) -> bool:
    """Whether `text` is held out for evaluation at `fraction`: when the CRC32 of its UTF-8
    text, as a fraction of 2**32, is below `fraction`. The split depends on the text alone, not
    on file order or the number of hosts, so training and evaluation agree without
    coordination."""
    return zlib.crc32(text.encode("utf-8")) < fraction * 2**32


def read_documents(
    patterns: str | Sequence[str],
    text_field: str = "text",
    *,
    text_format: str = "sentences",
    reports: list[SourceReport] | None = None,
    sources: list[str] | None = None,
    record_numbers: list[int] | None = None,
    text_encoding: str = "",
) -> Iterator[str]:
    """Yields every non-empty document text of the corpus, sources in `resolve_files` order.

    Args:
      patterns: comma-separated string or list of paths/globs/``tfds:`` sources.
      text_field: the JSON field, table column or TFDS feature of the text (unused for ``.txt``).
      text_format: layout of ``.txt`` files, one of TEXT_FORMATS.
      reports: if given, receives one SourceReport per source as it is finished.
      sources: if given, receives the source of each document just before it is yielded.
      record_numbers: if given, receives each document's number among its source's text
        records (1-based, empty ones counted: for a TFDS source, its example number) just
        before it is yielded.
      text_encoding: the text files' encoding (a Python codec: gb18030, big5, ...); "" = UTF-8
        (UTF-16/32 by their byte-order mark), a file in another encoding skipped.

    Raises UserError (one line) when the whole corpus yields no document.
    """
    if text_format not in TEXT_FORMATS:
        raise UserError(f"text_format={text_format!r} is unknown; use one of {TEXT_FORMATS}")
    finished = []
    total = 0
    for source in resolve_files(patterns):
        report = SourceReport(source)
        texts = _read_source(source, text_field, text_format, report, text_encoding)
        for number, text in enumerate(texts, 1):
            text, removed = _without_control_characters(text)
            if removed:
                report.repaired["documents with control characters"] += 1
            if not text.strip():
                report.skip("empty documents", f"document {number}")
                continue
            report.documents += 1
            total += 1
            if sources is not None:
                sources.append(source)
            if record_numbers is not None:
                record_numbers.append(number)
            yield text
        log = logging.warning if report.skipped or not report.documents else logging.info
        log("Corpus source %s", report.summary())
        finished.append(report)
        if reports is not None:
            reports.append(report)
    if total == 0:
        raise _no_documents(patterns, finished)


def _without_control_characters(text: str) -> tuple[str, int]:
    """`text` without its control characters (but tab, newline and CR), and how many there were;
    a document of given sentences (text_format="lines") keeps the separators its reader put in."""
    if text.startswith(GIVEN_SENTENCES):
        return _CONTROL_CHARS_BUT_SEPARATOR.subn("", text)
    return _CONTROL_CHARS.subn("", text)


def _no_documents(patterns, reports: Sequence[SourceReport]) -> UserError:
    """The one-line error of a corpus without a document: what its sources skipped, and the
    setting to check."""
    problems = [r.summary() for r in reports if r.skipped] or [r.summary() for r in reports]
    more = len(problems) - _MAX_LISTED_SOURCES
    listed = " | ".join(problems[:_MAX_LISTED_SOURCES]) + (
        f" | and {more} more" if more > 0 else ""
    )
    return UserError(f"corpus {patterns!r} has no documents ({listed}); check {to_check(reports)}")


def to_check(reports: Sequence[SourceReport]) -> str:
    """The setting to check when `reports`' sources gave too few documents: the text field
    when records lacked it, the encoding when files were not UTF-8, else the corpus."""
    if any(reason.startswith("without field") for r in reports for reason in r.skipped):
        return "--config.text_field (the JSON field or the column that holds the text)"
    if any("file not in UTF-8" in r.skipped for r in reports):
        return "--config.text_encoding (the files' encoding: gb18030, big5, ...)"
    return CORPUS_FLAG


def log_totals(reports: Sequence[SourceReport]) -> None:
    """Logs one line of corpus-wide totals of what was skipped or repaired, if anything."""
    skipped = sum((r.skipped for r in reports), collections.Counter())
    repaired = sum((r.repaired for r in reports), collections.Counter())
    if skipped or repaired:
        logging.warning(
            "Corpus: %d sources, %d documents; skipped %s; repaired %s",
            len(reports),
            sum(r.documents for r in reports),
            dict(skipped) or "nothing",
            dict(repaired) or "nothing",
        )
