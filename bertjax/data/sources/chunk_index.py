"""The text stream's chunk index: per process and epoch, each chunk's row count and the
position where it ends, so a resume skips what it knows unread (bertjax/data/sources/
text_stream.py's docstring says how the stream uses it)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from typing import TYPE_CHECKING

from etils import epath

from bertjax.data import corpus

if TYPE_CHECKING:
    from bertjax.data.sources.text_stream import TextStream

# Bump when a line's meaning or a chunk's rows change, so older indexes are not misread.
# 3: NSP pairs draw their short target per pair; 2: positions count a file's text records (1:
# its training documents).
INDEX_FORMAT = 3
_END = "end"  # last line of an epoch's index file once the epoch is complete
Position = tuple[int, int]  # (file in the epoch's order, text records read of it)


class ChunkIndex:
    """Lines ``rows end_file end_record`` per chunk and ``end`` after an epoch's last chunk,
    one file per (process, epoch), under a key of everything the counts depend on."""

    def __init__(self, stream: TextStream, seed: int, process_index: int, process_count: int):
        sizes = [  # a tfds source (or a missing file) by its whole name; P gives a tfds part
            (os.path.basename(f), corpus.source_size(f)) if corpus.is_file(f) else (f, 0)
            for f in stream.files
        ]
        key = [sizes, stream.settings, seed, process_count, INDEX_FORMAT]
        key = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.directory = epath.Path(stream.index_dir) / digest if stream.index_dir else None
        self.name = f"process-{process_index:05d}-epoch-{{:06d}}.txt"
        self._lines: dict[int, list[str]] = {}  # of the epoch being recorded
        self._lock = threading.Lock()  # iterators of one dataset share the index

    def read(self, epoch: int) -> tuple[list[tuple[int, int, int]], bool]:
        """(rows, end_file, end_record) of the recorded chunks; whether the epoch is whole."""
        path = self.directory and self.directory / self.name.format(epoch)
        entries = []
        for line in path.read_text().split("\n")[:-1] if path and path.exists() else []:
            if line == _END:  # [:-1] above: a torn last line is cut
                return entries, True
            if len(fields := line.split()) != 3 or not all(map(str.isdigit, fields)):
                break
            entries.append(tuple(map(int, fields)))
        return entries, False

    def record(self, epoch: int, chunk: int, entry: tuple[int, int, int] | None) -> None:
        """Records chunk `chunk` of `epoch`; entry None: the epoch ended before that chunk."""
        with self._lock:
            if self.directory is None:
                return
            if epoch not in self._lines:
                entries, complete = self.read(epoch)
                self._lines = {epoch: [" ".join(map(str, e)) for e in entries] + [_END] * complete}
            lines = self._lines[epoch]
            if chunk != len(lines) or lines[-1:] == [_END]:
                return  # known already (the same by construction), or after a gap
            lines.append(" ".join(map(str, entry)) if entry else _END)
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / self.name.format(epoch)
            temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}"
            temporary.write_text("".join(line + "\n" for line in lines))
            temporary.replace(path)  # atomic: readers never see half a file

    def resume_point(self, first: int) -> tuple[int, int, Position, int]:
        """(epoch, chunk, its start position, rows to skip from there) of the process's example
        `first`: whole epochs and chunks the index knows are skipped unread, the rest replayed."""
        epoch, base = 0, 0
        while True:
            entries, complete = self.read(epoch)
            total = sum(e[0] for e in entries)
            if not (complete and total and base + total <= first):
                break
            base, epoch = base + total, epoch + 1
        chunk, position = 0, (0, 0)
        for rows, end_file, end_record in entries:
            if base + rows > first:
                break
            base, chunk, position = base + rows, chunk + 1, (end_file, end_record)
        return epoch, chunk, position, first - base
