"""A run's pretraining data: `build_pretraining_data(DataSpec)` -> vocabulary, tokenizer and
instance source; `make_dataset(source, MaskingSpec, tokenizer, ...)` -> the masked batches.

Which source a DataSpec gives: ``prepared_dir`` -> `sources.prepared.PreparedCorpus`;
``streaming`` -> `sources.text_stream.TextStream`; else the corpus read, split into sentences,
tokenized and turned into NSP pairs (`pretraining_examples`) or, with ``packing``, full MLM-only
rows of packed documents (`packing`) in memory, `sources.in_memory.InMemoryInstances`. Every
source gives the same features (FEATURE_NAMES, plus PACKED_FEATURE_NAMES for packed rows), and
example i of a run is a pure function of (seed, i) (per process for the streamed sources), so
resuming at a step replays exactly what an uninterrupted run would have seen.
"""

import dataclasses
import os
import time
from collections.abc import Iterator

import tensorflow as tf
from absl import logging
from etils import epath

from bertjax.data import (
    corpus,
    documents,
    masking,
    packing,
    pretraining_examples,
    sentence_stats,
    tfds_corpus,
)
from bertjax.data import vocab as vocabulary
from bertjax.data.sources import InstanceSource, prepared, text_stream
from bertjax.data.sources.in_memory import InMemoryInstances
from bertjax.data.spec import DataSpec, min_documents
from bertjax.errors import UserError

FEATURE_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)
# Packed rows only: attention must stay within a document; no NSP term (weights 0).
PACKED_FEATURE_NAMES = ("attention_segment_ids", "next_sentence_weights")
INSTANCE_KEYS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels")


@dataclasses.dataclass
class PretrainingData:
    """Everything `make_dataset` and the trainer need from the corpus."""

    tokenizer: vocabulary.Tokenizer
    vocab_path: epath.Path
    source: InstanceSource
    # 0 for a text stream (it reads as it goes); from the manifest for prepared shards
    num_documents: int
    num_sentences: int


def run_vocabulary(data: DataSpec) -> epath.Path:
    """The ``vocab.txt`` of a run on `data`: the prepared directory's, ``vocab_dir``'s, or one
    trained on the corpus and cached. It reads no more of the corpus than the vocabulary needs,
    so a run can check it before spending the data build."""
    if data.prepared_dir:
        return _checked_prepared(data).vocab_dir / vocabulary.VOCAB_FILE
    return vocabulary.build_or_load_vocab(data)


def build_pretraining_data(
    data: DataSpec,
    split: str = "train",
    *,
    index_dir: str = "",
    vocab_path: epath.Path | None = None,
) -> PretrainingData:
    """Vocabulary (trained or cached), tokenizer and instance source of `data`.

    A vocab_dir holding ``sentencepiece.model`` (from `vocab.run_vocab`) gives a SentencePiece
    tokenizer. split="train" leaves out the documents held out for evaluation
    (``eval_holdout_fraction``); split="eval" reads only those, or the files of ``eval_corpus``
    when it is set, once (dupe_factor 1), paired with ``eval_seed``. With ``streaming``,
    split="train" reads nothing yet: it gives a `TextStream` whose chunk counts go to
    `index_dir` (a fast resume; "" = none). `vocab_path`: `run_vocabulary(data)` where the
    caller has it already.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}; use 'train' or 'eval'")
    start = time.perf_counter()
    if data.prepared_dir:
        corpus_dir = _checked_prepared(data)
        if split == "train":
            return _prepared_data(corpus_dir)
        vocab_path = corpus_dir.vocab_dir / "vocab.txt"
        tokenizer = vocabulary.load_tokenizer(vocab_path, corpus_dir.settings["lowercase"])
        data = _prepared_eval_spec(data, corpus_dir)
    else:
        vocab_path = vocab_path or vocabulary.build_or_load_vocab(data)
        tokenizer = vocabulary.load_tokenizer(vocab_path, data.lowercase)
    if data.streaming and split == "train":
        return _streaming_data(data, tokenizer, vocab_path, index_dir)
    docs, num_sentences, instances = _instances_of_split(data, tokenizer, split)
    _log_summary(data, tokenizer, docs, num_sentences, instances, time.perf_counter() - start)
    return PretrainingData(
        tokenizer=tokenizer,
        vocab_path=vocab_path,
        source=InMemoryInstances(instances),
        num_documents=len(docs),
        num_sentences=num_sentences,
    )


def _streaming_data(
    data: DataSpec, tokenizer, vocab_path: epath.Path, index_dir: str
) -> PretrainingData:
    """The training split of a streaming spec: nothing read yet, a `TextStream` over it."""
    stream = text_stream.from_spec(data, tokenizer, vocab_path.parent, index_dir)
    tfds_sources = sum(tfds_corpus.is_tfds(f) for f in stream.files)
    logging.info(
        "Streaming raw text from %d corpus files and %d tfds sources",
        len(stream.files) - tfds_sources,
        tfds_sources,
    )
    return PretrainingData(tokenizer, vocab_path, stream, num_documents=0, num_sentences=0)


def _instances_of_split(data: DataSpec, tokenizer, split: str) -> tuple[list, int, dict]:
    """(tokenized documents, number of sentences, instance arrays) of the split, read whole:
    NSP sentence pairs, or packed rows with ``packing``. UserError when none comes out."""
    reports: list[corpus.SourceReport] = []
    eval_corpus = split == "eval" and data.eval_corpus
    source = data.eval_corpus if eval_corpus else data.corpus
    sources: list[str] = []  # the corpus source of each document of the split
    texts = _documents_of_split(data, source, split, reports, sources)
    lengths: list[list[int]] = []
    special = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    # Held-out pairs depend on eval_seed only, so every run evaluates on the same instances.
    common = dict(
        max_seq_length=data.max_seq_length,
        dupe_factor=data.dupe_factor if split == "train" else 1,
        seed=data.seed if split == "train" else data.eval_seed,
        word_starts=bool(data.word_segmenter),
        **special,
    )
    # Errors about the documents name the flag that gave them.
    with corpus.corpus_flag("--config.eval_corpus" if eval_corpus else corpus.CORPUS_FLAG):
        docs, num_sentences = documents.tokenize_documents(
            texts, tokenizer, sentence_lengths=lengths, segmenter=data.word_segmenter
        )
        corpus.log_totals(reports)
        for name, stats in sentence_stats.stats_by_source(sources, lengths).items():
            sentence_stats.log_source_stats(os.path.basename(name), stats, nsp=not data.packing)
        if data.eval_holdout_fraction and not eval_corpus:
            _check_holdout_split(data, split, len(docs), sum(r.documents for r in reports))
        if data.packing:
            instances = packing.pack_documents(docs, **common)
        else:
            instances = pretraining_examples.create_instances(
                docs, short_seq_prob=data.short_seq_prob, **common
            )
    if len(instances["input_ids"]) == 0:
        what = "training" if split == "train" else "evaluation"
        raise UserError(
            f"corpus {source!r} yields no {what} instance; give it documents with "
            "several sentences of text (or raise --config.eval_holdout_fraction)"
        )
    return docs, num_sentences, instances


def _check_holdout_split(data: DataSpec, split: str, num_docs: int, total: int) -> None:
    """UserError when ``eval_holdout_fraction`` leaves `split` fewer documents than its rows
    need (NSP pairs: 2, packed rows: 1), e.g. a corpus of a few long documents held out 0."""
    need = min_documents(data.packing)
    if num_docs >= need:
        return
    part = "held out" if split == "eval" else "left for training"
    raise UserError(
        f"--config.eval_holdout_fraction={data.eval_holdout_fraction} {part} {num_docs} of the "
        f"corpus's {total} documents (chosen by a hash of their text) and "
        f"{'packed rows need 1' if data.packing else 'NSP pairs need 2'}; set "
        "--config.eval_corpus=FILES, change the fraction, or cut the corpus into more documents "
        f"({corpus.DOCUMENT_BOUNDARIES})"
    )


def _log_summary(data: DataSpec, tokenizer, docs, num_sentences: int, instances, seconds) -> None:
    num_tokens, num_unknown = documents.count_tokens(docs, tokenizer.unk_id)
    logging.info(
        "Pretraining data: %d documents, %d sentences, %d tokens (%.3f%% [UNK]), "
        "%d instances of length %d (%.1f%% real tokens, %.1f%% random next) in %.1fs",
        len(docs),
        num_sentences,
        num_tokens,
        100.0 * num_unknown / max(num_tokens, 1),
        len(instances["input_ids"]),
        data.max_seq_length,
        100.0 * instances["input_mask"].mean(),
        100.0 * instances["next_sentence_labels"].mean(),
        seconds,
    )
    if warning := documents.unknown_tokens_warning(num_tokens, num_unknown, tokenizer.kind):
        logging.warning("%s", warning)


def _documents_of_split(
    data: DataSpec,
    source: str,
    split: str,
    reports: list[corpus.SourceReport],
    sources: list[str],
) -> Iterator[str]:
    """The document texts of `split` ("train" leaves the held-out ones out, "eval" keeps only
    them unless `source` is the eval corpus); appends each one's corpus source to `sources`."""
    read: list[str] = []
    texts = corpus.read_documents(
        source,
        data.text_field,
        text_format=data.text_format,
        reports=reports,
        sources=read,
        text_encoding=data.text_encoding,
    )
    fraction = data.eval_holdout_fraction
    holdout = fraction and not (split == "eval" and data.eval_corpus)
    for index, text in enumerate(texts):
        if not holdout or corpus.is_held_out(text, fraction) == (split == "eval"):
            sources.append(read[index])
            yield text


def _checked_prepared(data: DataSpec) -> prepared.PreparedCorpus:
    """``data.prepared_dir``, checked against the config fields it fixes."""
    corpus_dir = prepared.load_prepared(data.prepared_dir)
    settings = corpus_dir.settings
    for field in ("max_seq_length", "packing", "word_segmenter", "lowercase"):
        prepared_value = settings.get(field, "")  # older manifests have no word_segmenter
        if getattr(data, field) != prepared_value:
            raise UserError(
                f"{data.prepared_dir!r} was prepared with {field}={prepared_value!r}; set "
                f"--config.{field}={prepared_value!r} or prepare again"
            )
    if data.vocab_dir and vocabulary.vocab_sha256(
        epath.Path(data.vocab_dir).expanduser()
    ) != vocabulary.vocab_sha256(corpus_dir.vocab_dir):
        raise UserError(
            f"--config.vocab_dir={data.vocab_dir!r} is not the vocabulary "
            f"{data.prepared_dir!r} was prepared with; set it to '' (use the prepared one)"
        )
    return corpus_dir


def _prepared_eval_spec(data: DataSpec, corpus_dir: prepared.PreparedCorpus) -> DataSpec:
    """Where a run from prepared shards finds its held-out documents: ``eval_corpus`` when
    set, else the ones `bertjax prepare --eval_holdout_fraction` kept out of the shards (never
    ``corpus``: its held-out documents may be in the shards)."""
    if data.eval_corpus:
        return data
    fraction = corpus_dir.settings.get("eval_holdout_fraction", 0.0)  # older manifests: none
    if not fraction:
        raise UserError(
            f"{data.prepared_dir!r} holds no held-out documents; prepare it with "
            "--eval_holdout_fraction=0.01, or set --config.eval_corpus=FILES"
        )
    if data.eval_holdout_fraction != fraction:
        raise UserError(
            f"{data.prepared_dir!r} was prepared with eval_holdout_fraction={fraction}; set "
            f"--config.eval_holdout_fraction={fraction} or prepare again"
        )
    return dataclasses.replace(data, eval_corpus=str(corpus_dir.heldout_file), text_field="text")


def _prepared_data(corpus_dir: prepared.PreparedCorpus) -> PretrainingData:
    """PretrainingData streaming from a prepared directory with the vocabulary stored there."""
    settings = corpus_dir.settings
    vocab_path = corpus_dir.vocab_dir / "vocab.txt"
    logging.info(
        "Streaming %d prepared instances (%d shards) from %s",
        len(corpus_dir),
        len(corpus_dir.files),
        corpus_dir.directory,
    )
    return PretrainingData(
        tokenizer=vocabulary.load_tokenizer(vocab_path, settings["lowercase"]),
        vocab_path=vocab_path,
        source=corpus_dir,
        num_documents=corpus_dir.manifest["num_documents"],
        num_sentences=corpus_dir.manifest["num_sentences"],
    )


def make_dataset(
    source: InstanceSource,
    masking_spec: masking.MaskingSpec,
    tokenizer,
    *,
    global_batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> tf.data.Dataset:
    """Infinite stream of this process's batches of `source`, starting at global step
    `start_step`, masked as `masking_spec` says with `tokenizer`'s special and random ids.

    Each element is a dict of FEATURE_NAMES: input_ids, input_mask, segment_ids [B, L] int32;
    masked_lm_positions, masked_lm_ids [B, P] int32; masked_lm_weights [B, P] float32;
    next_sentence_labels [B] int32, where B = global_batch_size // process_count and
    P = max_predictions_per_seq; plus, for packed instances, attention_segment_ids [B, L] int32
    and next_sentence_weights [B] float32. Iterate with ``ds.as_numpy_iterator()``.
    """
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise UserError(
            f"batch_size={global_batch_size} must be a positive multiple of the "
            f"{process_count} processes; set --config.batch_size accordingly"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if start_step < 0:
        raise ValueError(f"start_step={start_step} must be >= 0")
    mask = masking.example_masker(masking_spec, tokenizer)
    feature_names = FEATURE_NAMES + (PACKED_FEATURE_NAMES if source.packed else ())

    def mask_example(features: dict[str, tf.Tensor], mask_seed: tf.Tensor) -> dict:
        """One instance's features -> the output features, masked with `mask_seed`."""
        masked = mask(
            features["input_ids"], features["input_mask"], mask_seed, features.get("word_starts")
        )
        return {name: masked.get(name, features.get(name)) for name in feature_names}

    return source.dataset(
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        process_index=process_index,
        process_count=process_count,
        mask_example=mask_example,
    )
