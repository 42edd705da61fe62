"""The sample of a corpus that `bertjax vocab` trains a vocabulary on: every file gives a share
of the sample in proportion to the text it holds (`text_sizes`: sizes on disk for files of one
kind, else estimated from their contents), read from its start and cut at the share, so a
sorted corpus is not sampled from its first files only and no file is read past its share.
"""

import hashlib
import os
from collections.abc import Iterator, Sequence

from etils import epath

from bertjax.data import compressed_files, corpus, corpus_files, tfds_corpus
from bertjax.errors import UserError

DEFAULT_SAMPLE_BYTES = 1 << 30  # 1 GiB of text: plenty for a 30k-32k vocabulary


def text_sizes(sources: Sequence[str], text_field: str) -> list[int]:
    """About how many bytes of text each corpus source holds, for shares in proportion to it.
    Files of one kind (format and compression) compare by their sizes on disk; a corpus that
    mixes kinds is estimated from the contents (`text_bytes`: 4 MiB decompressed per compressed
    file, 6-125 ms each, a Parquet file's metadata). A TFDS source, whose text is not known
    before reading, counts as the files' mean (1 when there is no file: equal shares); before,
    it counted 0 and gave the sample nothing beside a file."""
    files = [s for s in sources if not tfds_corpus.is_tfds(s)]
    kinds = {corpus_files.format_suffix(f) + compressed_files.compression(f) for f in files}
    measure = corpus.source_size if len(kinds) <= 1 else (lambda f: text_bytes(f, text_field))
    file_sizes = {f: measure(f) for f in files}
    tfds_size = max(1, sum(file_sizes.values()) // len(files)) if files else 1
    return [file_sizes.get(s, tfds_size) for s in sources]


def text_bytes(path: str, text_field: str) -> int:
    """About how many bytes of text a file holds, to share a sample between files in proportion
    to their text: its size; a compressed file's size times the ratio of its first 4 MiB; a
    Parquet file's text column uncompressed. A file this cannot read counts its size (0 when
    not even that can be read: a dangling link)."""
    size = corpus.source_size(path)
    if not size:  # empty, or unreadable: reading it reports the problem
        return 0
    try:
        if corpus_files.format_suffix(path) in corpus_files.PARQUET_SUFFIXES:
            return _parquet_column_bytes(path, text_field) or size
        if not compressed_files.compression(path):
            return size
        with epath.Path(path).open("rb") as raw:
            return compressed_files.estimated_size(raw, size, compressed_files.compression(path))
    except (OSError, EOFError):
        return size  # reading it reports the problem


def _parquet_column_bytes(path: str, text_field: str) -> int:
    """The uncompressed bytes of a Parquet file's `text_field` column (0 without one, or for a
    file pyarrow cannot read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with epath.Path(path).open("rb") as f:
            metadata = pq.ParquetFile(corpus_files.SeekableFile(f)).metadata
    except pa.ArrowException:
        return 0
    return sum(
        group.column(i).total_uncompressed_size
        for group in map(metadata.row_group, range(metadata.num_row_groups))
        for i in range(group.num_columns)
        if group.column(i).path_in_schema == text_field
    )


def sample_documents(
    patterns: str,
    text_field: str = "text",
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    text_format: str = "sentences",
    text_encoding: str = "",
) -> Iterator[str]:
    """Documents from every file, each file giving a share of `sample_bytes` (UTF-8 bytes of
    text) in proportion to the text it holds (`text_sizes`), so a sorted corpus is not sampled
    from its first files only (a TFDS source as a mean file, read from its start). The
    document that reaches a file's share is cut there, at a line break or space (a book read as
    one document took the whole book whatever the share: 50 MB of a 200 KB sample). A file
    without a document is skipped (its warning logged); UserError when no file has one."""
    files = corpus.resolve_files(patterns)
    sizes = text_sizes(files, text_field)
    total = sum(sizes)
    empty = []  # files without a document (empty, another encoding): skipped, as training does
    for path, size in zip(files, sizes, strict=True):
        quota = sample_bytes * size / total if total else sample_bytes / len(files)
        taken = 0
        read = dict(text_format=text_format, text_encoding=text_encoding)
        try:
            for text in corpus.read_documents([path], text_field, **read):
                if taken >= quota:  # no share (an empty file is still read: its warning)
                    break
                sampled = _cut_to(text, quota - taken)
                taken += len(sampled.encode("utf-8"))
                if sampled:
                    yield sampled
                if sampled is not text or taken >= quota:
                    break
        except UserError as e:  # raised only once the file has yielded nothing
            empty.append(str(e))
    if len(empty) == len(files):  # the same reason for every file (a bad setting): said once
        raise UserError(empty[0] if len(set(empty)) == 1 else f"no file has documents: {empty[0]}")


def sample_fingerprint(files: list[str], texts: list[str]) -> str:
    """Hex sha256 over the corpus files' base names and sizes and the sampled texts: what the
    vocabulary was trained on, found without reading the rest of the corpus (the whole corpus's
    `corpus.corpus_fingerprint` read all of it for a sampled vocabulary)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{os.path.basename(path)}\0{corpus.source_size(path)}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _cut_to(text: str, budget: float) -> str:
    """`text`, or its start up to about `budget` UTF-8 bytes, ended at the last line break or
    space there (at a character when there is none) when it is longer."""
    if 4 * len(text) <= budget or len(text.encode("utf-8")) <= budget:
        return text
    start = text.encode("utf-8")[: max(1, int(budget))].decode("utf-8", errors="ignore")
    end = max(start.rfind("\n"), start.rfind(" "))
    return start[:end] if end > 0 else start
