"""Compressed corpus files: a file's compression from its suffix, and its bytes decompressed.

``.gz`` (gzip), ``.zst`` (Zstandard: Python 3.14's `compression.zstd`, its backport
`backports.zstd` before 3.14; multi-frame and ``zstd --long=31`` files read), ``.xz`` (lzma) and
``.bz2``: every one raises EOFError on a truncated file and OSError on corrupt data, so a reader
handles them alike. (The `zstandard` package's stream reader ends a truncated file silently:
half a file gave 0 documents and no error.)
"""

import bz2
import contextlib
import gzip
import io
import lzma
import os
from collections.abc import Iterator

COMPRESSION_SUFFIXES = (".gz", ".zst", ".xz", ".bz2")
_ZSTD_MAX_WINDOW_LOG = 31  # `zstd --long=31` files read (the decoder's default limit: 2**27)
_RATIO_SAMPLE_BYTES = 1 << 22  # decompressed bytes that estimate a file's compression ratio


def compression(path: str) -> str:
    """The compression suffix of `path` (one of COMPRESSION_SUFFIXES), lowercased; ``''`` if
    none."""
    suffix = os.path.splitext(path.lower())[1]
    return suffix if suffix in COMPRESSION_SUFFIXES else ""


def zstd_module():
    """Python's `compression.zstd` (3.14+) or its backport (`backports.zstd`, the same code)."""
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd


def _decompressor(raw: io.IOBase, kind: str) -> tuple[io.IOBase, tuple]:
    """A reader of `raw`'s decompressed bytes, and the errors other than OSError and EOFError
    that its corrupt data raises."""
    if kind == ".gz":
        return gzip.GzipFile(fileobj=raw), ()
    if kind == ".bz2":
        return bz2.BZ2File(raw), ()
    if kind == ".xz":
        return lzma.LZMAFile(raw), (lzma.LZMAError,)
    zstd = zstd_module()
    window = {zstd.DecompressionParameter.window_log_max: _ZSTD_MAX_WINDOW_LOG}
    return zstd.ZstdFile(raw, options=window), (zstd.ZstdError,)


@contextlib.contextmanager
def decompressed(raw: io.IOBase, kind: str) -> Iterator[io.IOBase]:
    """`raw` read through the decompressor of `kind` (none for ``''``); a truncated stream
    raises EOFError and a corrupt one OSError, whatever the compression."""
    if not kind:
        yield raw
        return
    reader, corrupt = _decompressor(raw, kind)
    with reader:
        try:
            yield reader
        except corrupt as e:
            raise OSError(f"{kind[1:]}: {e}") from e


def estimated_size(raw: io.IOBase, size: int, kind: str) -> int:
    """About how many bytes a compressed file of `size` bytes, open as `raw`, holds
    decompressed: `size` times the ratio of its first 4 MiB (all of it when smaller)."""
    with decompressed(raw, kind) as f:
        read = len(f.read(_RATIO_SAMPLE_BYTES))
        return round(size * read / raw.tell()) if raw.tell() else size
