"""Raw text -> tokenized, paired and masked batches on the fly (``streaming``).

No in-memory corpus, no prepare step. Process p of P reads only files[p::P] of the sorted corpus
files and part p of P of each ``tfds:NAME@SPLIT`` source (`tfds_corpus.part`, `tfds.even_splits`):
disjoint, together the whole corpus. A tfds part is a file from here on. Epoch e reads the files in
an order drawn from (seed, p, e); their training documents (held-out ones dropped one by one by
`corpus.is_held_out`, bad input skipped and counted per file by `corpus`) are cut into chunks of
``stream_chunk_documents`` consecutive documents across file ends (a lone last document joins the
chunk before it: NSP needs two). Chunk j is tokenized (`documents.tokenize_documents`) and becomes
NSP pairs or packed rows (`pretraining_examples`, `packing`) with a seed drawn from (seed, p, e, j),
rows shuffled with it; ``dupe_factor`` is unused, each epoch pairs afresh. The process's example k
is row k of the chunks laid end to end, masked with a seed folded from (seed, p, k) by
`pipeline.make_dataset`'s masking, so the features are the in-memory stream's. Chunks are built in
order by a pool of threads a few chunks ahead (the tokenizer's TF ops release the GIL; sentence
splitting and pairing do not). Memory is a few chunks, never the corpus.

So the stream is a pure function of (corpus, vocabulary, settings, seed, p, P, k). To resume at
example k = step * local batch without re-tokenizing, a chunk index under ``index_dir`` (given to
the stream; train.py: WORKDIR/text_stream_index) records per process and epoch each chunk's row
count and the position where it ends (file, record number in it), one line per chunk, rewritten
atomically as chunks are built. A resume skips the epochs and chunks it knows unread and rebuilds
the resume chunk from its start position: a file is re-parsed (not tokenized) up to it, a tfds part
is opened at its example (`tfds_corpus.starting_at`), so the cost is the same at any step. Chunks it
lacks (no index_dir, a crash before the write) are replayed: tokenized and discarded. The index is
keyed by file names and sizes (tfds: the source), settings, vocabulary, seed and P; a torn file is
read up to its last whole line (after editing a file in place at the same size, or rebuilding an
unversioned tfds source, delete it).
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
from absl import logging

from bertjax.data import corpus, packing, pretraining_examples, seeds, tfds_corpus, vocab
from bertjax.data.documents import count_tokens, tokenize_documents, unknown_tokens_warning
from bertjax.data.sources import MaskExample
from bertjax.data.sources.chunk_index import ChunkIndex, Position
from bertjax.data.spec import DataSpec, min_documents
from bertjax.errors import UserError

# Chunk-building threads at most. Tokenizer ops release the GIL; sentence splitting and pairing
# (a quarter of a build on the sample corpus) do not: more threads add memory, not speed.
MAX_WORKERS = 8
# DataSpec fields the rows depend on (with the vocabulary's sha256).
_SETTINGS = ("max_seq_length", "short_seq_prob", "packing", "text_field", "text_format",
             "eval_holdout_fraction", "stream_chunk_documents", "lowercase")  # fmt: skip


class _Once:
    """True the first time it is called, False after (thread-safe)."""

    def __init__(self):
        self._lock, self._done = threading.Lock(), False

    def __call__(self) -> bool:
        with self._lock:
            first, self._done = not self._done, True
        return first


@dataclasses.dataclass(frozen=True)
class TextStream:
    """The corpus files and settings a text stream reads; `dataset` streams it."""

    files: list[str]  # the whole corpus, files sorted, then tfds sources (`corpus.resolve_files`)
    tokenizer: vocab.Tokenizer
    settings: dict  # the DataSpec's _SETTINGS fields, vocab_sha256 (and word_segmenter if set)
    index_dir: str = ""  # where chunk counts are kept for a fast resume; "" = replay
    num_workers: int = 0  # threads building chunks; 0 = local cores, at most MAX_WORKERS
    # The [UNK] warning is given by the first chunk that has too many, once a stream.
    unknown_warning_due: _Once = dataclasses.field(default_factory=_Once, compare=False,
                                                   repr=False)  # fmt: skip

    @property
    def packed(self) -> bool:
        return self.settings["packing"]

    @property
    def segmenter(self) -> str:
        """The word segmenter whose ``word_starts`` the rows carry ("" = none)."""
        return self.settings.get("word_segmenter", "")

    def dataset(
        self,
        *,
        global_batch_size: int,
        seed: int,
        start_step: int,
        process_index: int,
        process_count: int,
        mask_example: MaskExample,
    ) -> tf.data.Dataset:
        """Infinite stream of this process's batches from raw text (see module doc)."""
        local_batch = global_batch_size // process_count
        files = process_files(self.files, process_index, process_count)
        check_has_documents(self, files, process_index)
        index = ChunkIndex(self, seed, process_index, process_count)
        first = start_step * local_batch
        epoch, chunk, position, skip = index.resume_point(first)
        if first:
            message = "Text stream of process %d resumes at epoch %d, chunk %d, skipping %d rows"
            logging.info(message, process_index, epoch, chunk, skip)
        fold_in = tf.random.experimental.stateless_fold_in
        mask_base = fold_in(tf.constant([seed, seeds.TEXT_MASK], tf.int64), process_index)
        start = (epoch, chunk, position)

        def generate():
            yield from chunk_rows(self, files, seed, process_index, index, start)

        rows = tf.data.Dataset.from_generator(generate, output_signature=row_spec(self))
        dataset = rows.unbatch().skip(skip).enumerate(start=first)
        dataset = dataset.map(
            lambda k, features: mask_example(features, fold_in(mask_base, k)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        dataset = dataset.batch(local_batch, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)


def from_spec(
    data: DataSpec,
    tokenizer: vocab.Tokenizer,
    vocab_dir: str | os.PathLike,
    index_dir: str = "",
) -> TextStream:
    """The TextStream of ``data.corpus``; chunk counts kept under `index_dir` ("" = none)."""
    files = corpus.resolve_files(data.corpus)
    settings = {name: getattr(data, name) for name in _SETTINGS}
    settings["vocab_sha256"] = vocab.vocab_sha256(vocab_dir)
    if data.text_encoding:  # absent for UTF-8: indexes from before keep their keys
        settings["text_encoding"] = data.text_encoding
    if data.word_segmenter:  # only then: the chunk index keys of other runs stay as they were
        settings["word_segmenter"] = data.word_segmenter
    return TextStream(files=files, tokenizer=tokenizer, settings=settings, index_dir=index_dir)


def process_files(files: list[str], process_index: int, process_count: int) -> list[str]:
    """The corpus files [process_index::process_count], then the process's part of each tfds
    source; UserError when that leaves a process nothing."""
    paths = [f for f in files if not tfds_corpus.is_tfds(f)]
    parts = [
        tfds_corpus.part(f, process_index, process_count) for f in files if tfds_corpus.is_tfds(f)
    ]
    if len(paths) < process_count and not parts:
        raise UserError(
            f"corpus has {len(files)} files for {process_count} processes; split it into at "
            f"least {process_count} files or use `bertjax prepare`"
        )
    return paths[process_index::process_count] + parts


def epoch_files(files: list[str], seed: int, process_index: int, epoch: int) -> list[str]:
    """The process's files in epoch `epoch`'s order."""
    rng = np.random.default_rng(
        seeds.derive_seed(seeds.TEXT_FILE_ORDER, seed, process_index, epoch)
    )
    return [files[i] for i in rng.permutation(len(files))]


def _file_records(
    path: str, settings: dict, reports: list | None, after: int = 0
) -> Iterator[tuple[int, str]]:
    """(record number, text) of each document of one file or tfds part after record `after`,
    via `corpus.read_documents` (which logs skip counts). A tfds part is opened at that record;
    a file is parsed from its start."""
    if not tfds_corpus.is_tfds(path) and not corpus.is_file(path):
        report = corpus.SourceReport(path)
        report.skip("missing file", "gone since the corpus was listed")
        logging.warning("Corpus source %s", report.summary())
        if reports is not None:
            reports.append(report)
        return
    seek = after if tfds_corpus.is_tfds(path) else 0
    source = tfds_corpus.starting_at(path, seek) if seek else path
    numbers: list[int] = []
    read = dict(text_format=settings["text_format"], reports=reports, record_numbers=numbers,
                text_encoding=settings.get("text_encoding", ""))  # fmt: skip
    try:
        for text in corpus.read_documents([source], settings["text_field"], **read):
            number = seek + numbers.pop()
            if number > after:
                yield number, text
    except UserError:
        pass  # a file without documents: its report says why


def documents(
    files: list[str], settings: dict, start: Position = (0, 0), reports: list | None = None
) -> Iterator[tuple[str, Position]]:
    """(text, position after it) of each training document of `files`, from `start` on."""
    fraction = settings["eval_holdout_fraction"]
    for file_pos in range(start[0], len(files)):
        after = start[1] if file_pos == start[0] else 0
        for number, text in _file_records(files[file_pos], settings, reports, after):
            if not fraction or not corpus.is_held_out(text, fraction):
                yield text, (file_pos, number)


def chunks(docs: Iterator[tuple[str, Position]], size: int) -> Iterator[tuple[list, Position]]:
    """Lists of `size` documents and the position after each; a lone last document joins the
    list before it."""
    held, chunk, end = None, [], (0, 0)
    for text, end in docs:
        chunk.append(text)
        if len(chunk) == size:
            if held:
                yield held
            held, chunk = (chunk, end), []
    if held and len(chunk) == 1:
        held, chunk = (held[0] + chunk, end), []
    if held:
        yield held
    if chunk:
        yield chunk, end


def build_chunk(texts: list[str], stream: TextStream, seed: int) -> dict[str, np.ndarray]:
    """One chunk's rows (as `pipeline.build_pretraining_data`'s instances), shuffled by `seed`."""
    tokenizer, settings = stream.tokenizer, stream.settings
    docs, _ = tokenize_documents(texts, tokenizer, segmenter=stream.segmenter)
    counts = count_tokens(docs, tokenizer.unk_id)
    unknown = unknown_tokens_warning(*counts, tokenizer.kind)
    if unknown and stream.unknown_warning_due():
        logging.warning("Text stream: %s", unknown)
    special = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    common = dict(max_seq_length=settings["max_seq_length"], dupe_factor=1, seed=seed, **special)
    common["word_starts"] = bool(stream.segmenter)
    if len(docs) < min_documents(stream.packed):  # too few documents: no rows
        shapes = row_spec(stream).items()
        rows = {name: np.zeros([0, *s.shape[1:]], s.dtype.as_numpy_dtype) for name, s in shapes}
    elif stream.packed:
        rows = packing.pack_documents(docs, **common)
    else:
        rows = pretraining_examples.create_instances(
            docs, short_seq_prob=settings["short_seq_prob"], **common
        )
    order = np.random.default_rng(seed).permutation(len(rows["input_ids"]))
    return {name: value[order] for name, value in rows.items()}


def row_spec(stream: TextStream) -> dict[str, tf.TensorSpec]:
    """Names, dtypes and shapes [rows, ...] of a chunk's rows."""
    length = stream.settings["max_seq_length"]
    names = ("input_ids", "input_mask", "segment_ids")
    names += ("attention_segment_ids",) if stream.packed else ()
    names += ("word_starts",) if stream.segmenter else ()
    spec = {name: tf.TensorSpec([None, length], tf.int32) for name in names}
    spec["next_sentence_labels"] = tf.TensorSpec([None], tf.int32)
    if stream.packed:
        spec["next_sentence_weights"] = tf.TensorSpec([None], tf.float32)
    return spec


def _ordered_map(fn: Callable, items: Iterator, ahead: int) -> Iterator[tuple]:
    """(item, fn(item)) in order, computed by `ahead` threads up to `ahead` items ahead."""
    with concurrent.futures.ThreadPoolExecutor(ahead) as pool:
        pending = collections.deque()
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) > ahead:
                    item, future = pending.popleft()
                    yield item, future.result()
            while pending:
                item, future = pending.popleft()
                yield item, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def _chunk_items(
    stream: TextStream, files: list[str], seed: int, process_index: int, start: tuple
) -> Iterator[tuple]:
    """(epoch, chunk, texts, end position) of each chunk from `start` = (epoch, chunk, its start
    position) on, and (epoch, next chunk, None, None) after each epoch's last."""
    epoch, chunk, position = start
    while True:
        docs = documents(epoch_files(files, seed, process_index, epoch), stream.settings, position)
        for texts, end in chunks(docs, stream.settings["stream_chunk_documents"]):
            yield epoch, chunk, texts, end
            chunk += 1
        yield epoch, chunk, None, None
        epoch, chunk, position = epoch + 1, 0, (0, 0)


def chunk_rows(
    stream: TextStream,
    files: list[str],
    seed: int,
    process_index: int,
    index: ChunkIndex,
    start: tuple[int, int, Position],
) -> Iterator[dict[str, np.ndarray]]:
    """The rows of the process's chunks, epoch after epoch, from (epoch, chunk, position)."""

    def build(item):
        epoch, chunk, texts, _ = item
        chunk_seed = seeds.derive_seed(seeds.TEXT_CHUNK, seed, process_index, epoch, chunk)
        return None if texts is None else build_chunk(texts, stream, chunk_seed)

    items = _chunk_items(stream, files, seed, process_index, start)
    workers = stream.num_workers or min(os.cpu_count() or 1, MAX_WORKERS)
    epoch_rows, whole_epoch = 0, start[1] == 0
    for (epoch, chunk, texts, end), rows in _ordered_map(build, items, workers):
        if texts is not None:
            index.record(epoch, chunk, (len(rows["input_ids"]), *end))
            epoch_rows += len(rows["input_ids"])
            yield rows
            continue
        index.record(epoch, chunk, None)
        logging.info("Text stream of process %d: epoch %d read", process_index, epoch)
        if whole_epoch and not epoch_rows:
            raise UserError(
                f"process {process_index} made no instance from its corpus files in epoch "
                f"{epoch}; give it documents with several sentences"
            )
        epoch_rows, whole_epoch = 0, True


def check_has_documents(stream: TextStream, files: list[str], process_index: int) -> None:
    """One-line UserError when the process's files hold too few training documents."""
    reports: list[corpus.SourceReport] = []
    needed = min_documents(stream.packed)
    found = len(list(itertools.islice(documents(files, stream.settings, reports=reports), needed)))
    if found < needed:
        problems = " | ".join(r.summary() for r in reports[:3])
        raise UserError(
            f"process {process_index} found {found} training documents in its {len(files)} "
            f"corpus sources, needs {needed} ({problems}); check {corpus.to_check(reports)}"
        )
