"""Corpus -> pretraining instances in memory -> an infinite, resumable tf.data stream of batches.

Every batch is a pure function of (seed, global example index): example i of the run is
instance ``index_shuffle(i % N, epoch = i // N)``, masked with a seed folded from i. So epochs
see fresh orders and fresh masks (dynamic masking), processes read disjoint slices of each
global batch without coordination, and resuming at a step replays exactly what an
uninterrupted run would have seen. No iterator state needs checkpointing.

Instances are NSP sentence pairs (`pretraining_examples`) or, with ``config.packing``, full
MLM-only rows of packed documents (`packing`), which add the features PACKED_FEATURE_NAMES.
"""

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from bertjax.data import (
    corpus,
    masking,
    packing,
    prepare,
    pretraining_examples,
    sentences,
    streaming,
    text_stream,
    vocab,
    whole_word,
)
from bertjax.data.sentencepiece_vocab import SentencePieceTokenizer
from bertjax.data.tokenizer import WordPieceTokenizer, build_or_load_vocab
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
ENCODE_BATCH_SIZE = 1024  # sentences per tokenizer call: amortises the op dispatch
# Random-number domains, so the shuffle and the masks never reuse a seed.
_SHUFFLE_DOMAIN, _MASK_DOMAIN = 0, 1


Tokenizer = WordPieceTokenizer | SentencePieceTokenizer


@dataclasses.dataclass
class PretrainingData:
    """Everything `make_dataset` and the trainer need from the corpus."""

    tokenizer: Tokenizer
    vocab_path: Path
    # see pretraining_examples.create_instances / packing.pack_documents, or prepared shards,
    # or raw text streamed per process (num_documents and num_sentences then 0: not counted)
    instances: dict[str, np.ndarray] | streaming.PreparedCorpus | text_stream.TextStream
    num_documents: int
    num_sentences: int


def tokenize_documents(
    texts: Iterable[str],
    tokenizer: Tokenizer,
    *,
    sentence_lengths: list[list[int]] | None = None,
) -> tuple[list[list[list[int]]], int]:
    """Splits each text into sentences and tokenizes them in batches across documents.

    Returns (documents -> non-empty sentences -> ids, without empty documents; number of
    sentences before tokenization). `sentence_lengths`, if given, receives the character
    lengths of each text's sentences, one list per text (empty documents included).
    """
    doc_sentences = [sentences.split_sentences(text) for text in texts]
    if sentence_lengths is not None:
        sentence_lengths.extend([len(s) for s in doc] for doc in doc_sentences)
    flat = [sentence for doc in doc_sentences for sentence in doc]
    ids: list[list[int]] = []
    for begin in range(0, len(flat), ENCODE_BATCH_SIZE):
        ids.extend(tokenizer.encode(flat[begin : begin + ENCODE_BATCH_SIZE]))
    documents = []
    cursor = 0
    for doc in doc_sentences:
        tokenized = [s for s in ids[cursor : cursor + len(doc)] if s]
        cursor += len(doc)
        if tokenized:
            documents.append(tokenized)
    return documents, len(flat)


def build_pretraining_data(
    config: ml_collections.ConfigDict, split: str = "train"
) -> PretrainingData:
    """Vocabulary (trained or cached), tokenized corpus and NSP instances for `config`.

    Reads config fields corpus, text_field, text_format, vocab_dir, vocab_size, lowercase,
    cache_dir, max_seq_length, short_seq_prob, dupe_factor, seed and packing. A vocab_dir
    holding ``sentencepiece.model`` (from `vocab.run_vocab`) gives a SentencePiece tokenizer.

    split="train" leaves out the documents held out for evaluation
    (``config.eval_holdout_fraction``); split="eval" reads only those, or the files of
    ``config.eval_corpus`` when it is set, once (dupe_factor 1). With ``config.streaming``,
    split="train" reads nothing yet: its instances are a `text_stream.TextStream`.
    """
    _check_data_config(config)
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}; use 'train' or 'eval'")
    if config.get("prepared_dir", "") and split == "train":
        return _prepared_data(config)
    start = time.perf_counter()
    vocab_path = build_or_load_vocab(config)
    tokenizer = vocab.load_tokenizer(vocab_path, config.lowercase)
    if config.get("streaming", False) and split == "train":
        stream = text_stream.from_config(config, tokenizer, vocab_path.parent)
        tfds_sources = sum(corpus.is_tfds(f) for f in stream.files)
        logging.info(
            "Streaming raw text from %d corpus files and %d tfds sources",
            len(stream.files) - tfds_sources,
            tfds_sources,
        )
        return PretrainingData(tokenizer, vocab_path, stream, num_documents=0, num_sentences=0)
    reports: list[corpus.SourceReport] = []
    eval_corpus = config.get("eval_corpus", "")
    source = eval_corpus if split == "eval" and eval_corpus else config.corpus
    sources: list[str] = []  # the corpus source of each document of the split
    texts = _documents_of_split(config, source, split, reports, sources)
    lengths: list[list[int]] = []
    documents, num_sentences = tokenize_documents(texts, tokenizer, sentence_lengths=lengths)
    corpus.log_totals(reports)
    for name, stats in sentences.stats_by_source(sources, lengths).items():
        sentences.log_source_stats(os.path.basename(name), stats)
    special = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    # Held-out pairs depend on eval_seed only, so every run evaluates on the same instances.
    seed = config.seed if split == "train" else config.get("eval_seed", config.seed)
    if config.get("packing", False):
        instances = packing.pack_documents(
            documents,
            max_seq_length=config.max_seq_length,
            dupe_factor=config.dupe_factor if split == "train" else 1,
            seed=seed,
            **special,
        )
    else:
        instances = pretraining_examples.create_instances(
            documents,
            max_seq_length=config.max_seq_length,
            short_seq_prob=config.short_seq_prob,
            dupe_factor=config.dupe_factor if split == "train" else 1,
            seed=seed,
            **special,
        )
    num_instances = len(instances["input_ids"])
    if num_instances == 0:
        what = "training" if split == "train" else "evaluation"
        raise UserError(
            f"corpus {source!r} yields no {what} instance; give it documents with "
            "several sentences of text (or raise --config.eval_holdout_fraction)"
        )
    num_tokens = sum(len(s) for doc in documents for s in doc)
    num_unknown = sum(s.count(tokenizer.unk_id) for doc in documents for s in doc)
    logging.info(
        "Pretraining data: %d documents, %d sentences, %d tokens (%.3f%% [UNK]), "
        "%d instances of length %d (%.1f%% real tokens, %.1f%% random next) in %.1fs",
        len(documents),
        num_sentences,
        num_tokens,
        100.0 * num_unknown / max(num_tokens, 1),
        num_instances,
        config.max_seq_length,
        100.0 * instances["input_mask"].mean(),
        100.0 * instances["next_sentence_labels"].mean(),
        time.perf_counter() - start,
    )
    return PretrainingData(
        tokenizer=tokenizer,
        vocab_path=vocab_path,
        instances=instances,
        num_documents=len(documents),
        num_sentences=num_sentences,
    )


def _documents_of_split(
    config: ml_collections.ConfigDict,
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
        config.text_field,
        text_format=config.get("text_format", "sentences"),
        reports=reports,
        sources=read,
    )
    fraction = config.get("eval_holdout_fraction", 0.0)
    holdout = fraction and not (split == "eval" and config.get("eval_corpus", ""))
    for index, text in enumerate(texts):
        if not holdout or corpus.is_held_out(text, fraction) == (split == "eval"):
            sources.append(read[index])
            yield text


def _check_data_config(config: ml_collections.ConfigDict) -> None:
    """One-line UserErrors for the masking and text fields, before any corpus is read."""
    kind = config.get("masking", "token")
    if kind not in masking.MASKING_KINDS:
        raise UserError(f"masking={kind!r} is unknown; use one of {masking.MASKING_KINDS}")
    if kind == "span":
        _span_probs(config)
    text_format = config.get("text_format", "sentences")
    if text_format not in corpus.TEXT_FORMATS:
        raise UserError(f"text_format={text_format!r} is unknown; use one of {corpus.TEXT_FORMATS}")


def _span_probs(config: ml_collections.ConfigDict) -> np.ndarray:
    return whole_word.span_length_probs(
        config.get("span_distribution", "geometric"),
        config.get("max_ngram", 10),
        config.get("span_geometric_p", 0.2),
    )


def _prepared_data(config: ml_collections.ConfigDict) -> PretrainingData:
    """PretrainingData streaming from ``config.prepared_dir`` with the vocabulary stored there."""
    prepared = streaming.load_prepared(config.prepared_dir)
    settings = prepared.settings
    for field in ("max_seq_length", "packing"):
        if config.get(field) != settings[field]:
            raise UserError(
                f"{config.prepared_dir!r} was prepared with {field}={settings[field]!r}; set "
                f"--config.{field}={settings[field]!r} or prepare again"
            )
    if config.vocab_dir and prepare.vocab_sha256(
        Path(config.vocab_dir).expanduser()
    ) != prepare.vocab_sha256(prepared.vocab_dir):
        raise UserError(
            f"--config.vocab_dir={config.vocab_dir!r} is not the vocabulary "
            f"{config.prepared_dir!r} was prepared with; set it to '' (use the prepared one)"
        )
    vocab_path = prepared.vocab_dir / "vocab.txt"
    logging.info(
        "Streaming %d prepared instances (%d shards) from %s",
        len(prepared),
        len(prepared.files),
        prepared.directory,
    )
    return PretrainingData(
        tokenizer=vocab.load_tokenizer(vocab_path, settings["lowercase"]),
        vocab_path=vocab_path,
        instances=prepared,
        num_documents=prepared.manifest["num_documents"],
        num_sentences=prepared.manifest["num_sentences"],
    )


def masking_kwargs(tokenizer: Tokenizer, config: ml_collections.ConfigDict) -> dict:
    """The masking arguments of `make_dataset` for this tokenizer and config.

    random_token_ids is every id that is not special, so [unused*] tokens of a released BERT
    vocabulary never appear as random replacements. Whole-word and span masking also get the
    tokenizer's word-start table (its ``word_start_table()`` when it has one, else "not ##")
    and the span length distribution from config masking, max_ngram, span_distribution and
    span_geometric_p.
    """
    special_ids = np.asarray(tokenizer.special_ids, np.int32)
    random_token_ids = np.setdiff1d(
        np.arange(tokenizer.vocab_size, dtype=np.int32), special_ids
    ).astype(np.int32)
    kwargs = {
        "masked_lm_prob": config.masked_lm_prob,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "special_ids": special_ids,
        "mask_id": tokenizer.mask_id,
        "random_token_ids": random_token_ids,
    }
    _check_data_config(config)
    kind = config.get("masking", "token")
    if kind == "token":
        return kwargs
    kwargs["masking_kind"] = kind
    if hasattr(tokenizer, "word_start_table"):
        kwargs["word_start_table"] = tokenizer.word_start_table()
    else:
        kwargs["word_start_table"] = whole_word.word_start_table(tokenizer.vocab)
    if kind == "span":
        kwargs["span_length_probs"] = _span_probs(config)
    return kwargs


def _check_dataset_args(
    num_instances: int | None,
    global_batch_size: int,
    process_index: int,
    process_count: int,
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    start_step: int,
) -> None:
    """Raises UserError for settings that cannot make a stream."""
    if num_instances == 0:
        raise UserError("no pretraining instances to stream; check --config.corpus")
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise UserError(
            f"batch_size={global_batch_size} must be a positive multiple of the "
            f"{process_count} processes; set --config.batch_size accordingly"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if not 0.0 < masked_lm_prob < 1.0:
        raise UserError(f"masked_lm_prob={masked_lm_prob} must be in (0, 1); BERT uses 0.15")
    if max_predictions_per_seq < 1:
        raise UserError(
            f"max_predictions_per_seq={max_predictions_per_seq} must be >= 1; BERT uses 20"
        )
    if start_step < 0:
        raise ValueError(f"start_step={start_step} must be >= 0")


def make_dataset(
    instances: dict[str, np.ndarray] | streaming.PreparedCorpus | text_stream.TextStream,
    *,
    global_batch_size: int,
    seed: int,
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    special_ids: Sequence[int] | np.ndarray,
    mask_id: int,
    random_token_ids: Sequence[int] | np.ndarray,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    masking_kind: str = "token",
    word_start_table: Sequence[bool] | np.ndarray | None = None,
    span_length_probs: Sequence[float] | np.ndarray | None = None,
) -> tf.data.Dataset:
    """Infinite stream of this process's batches, starting at global step `start_step`.

    Row r of step s on process p is global example i = s * global_batch_size
    + p * local_batch + r, with local_batch = global_batch_size // process_count.

    Each element is a dict of FEATURE_NAMES: input_ids, input_mask, segment_ids [B, L] int32;
    masked_lm_positions, masked_lm_ids [B, P] int32; masked_lm_weights [B, P] float32;
    next_sentence_labels [B] int32, where B = local_batch and P = max_predictions_per_seq;
    plus, for packed instances, attention_segment_ids [B, L] int32 and next_sentence_weights
    [B] float32. Iterate with ``ds.as_numpy_iterator()``.

    masking_kind, word_start_table and span_length_probs choose the masking unit (see
    `masking.mask_tokens`); `masking_kwargs` fills them from the config.

    `instances` may also be a `streaming.PreparedCorpus` (``config.prepared_dir``) or a
    `text_stream.TextStream` (``config.streaming``): the same features, read from prepared
    shards or made from raw text, each process on its own files (see those modules).
    """
    prepared = isinstance(instances, streaming.PreparedCorpus)
    streamed = isinstance(instances, text_stream.TextStream)
    if streamed:
        packed, num_instances = instances.packing, None  # a text stream counts as it goes
    elif prepared:
        packed, num_instances = instances.settings["packing"], len(instances)
    else:
        packed, num_instances = "attention_segment_ids" in instances, len(instances["input_ids"])
    _check_dataset_args(
        num_instances,
        global_batch_size,
        process_index,
        process_count,
        masked_lm_prob,
        max_predictions_per_seq,
        start_step,
    )
    if masking_kind not in masking.MASKING_KINDS:
        raise UserError(f"masking={masking_kind!r} is unknown; use one of {masking.MASKING_KINDS}")
    if masking_kind != "token" and word_start_table is None:
        raise ValueError(f"masking={masking_kind!r} needs word_start_table; see masking_kwargs")
    unit_kwargs = {}
    if masking_kind != "token":
        unit_kwargs = {
            "masking": masking_kind,
            "word_start_table": tf.constant(word_start_table, tf.bool),
            "span_length_probs": None
            if span_length_probs is None
            else tf.constant(span_length_probs, tf.float32),
        }
    local_batch = global_batch_size // process_count
    feature_names = FEATURE_NAMES + (PACKED_FEATURE_NAMES if packed else ())
    special_ids = tf.constant(special_ids, tf.int32)
    random_token_ids = tf.constant(random_token_ids, tf.int32)

    def mask_example(features: dict[str, tf.Tensor], mask_seed: tf.Tensor) -> dict:
        """One instance's features -> the output features, masked with `mask_seed`."""
        masked = masking.mask_tokens(
            features["input_ids"],
            features["input_mask"],
            mask_seed,
            masked_lm_prob=masked_lm_prob,
            max_predictions_per_seq=max_predictions_per_seq,
            special_ids=special_ids,
            mask_id=mask_id,
            random_token_ids=random_token_ids,
            **unit_kwargs,
        )
        return {name: masked.get(name, features.get(name)) for name in feature_names}

    if prepared or streamed:
        make = streaming.make_streaming_dataset if prepared else text_stream.make_text_dataset
        return make(
            instances,
            global_batch_size=global_batch_size,
            seed=seed,
            start_step=start_step,
            process_index=process_index,
            process_count=process_count,
            mask_example=mask_example,
        )
    keys = INSTANCE_KEYS + (PACKED_FEATURE_NAMES if packed else ())
    table = {
        key: tf.constant(instances[key], tf.float32 if key.endswith("weights") else tf.int32)
        for key in keys
    }
    shuffle_base = tf.constant([seed, _SHUFFLE_DOMAIN], tf.int64)
    mask_base = tf.constant([seed, _MASK_DOMAIN], tf.int64)
    last_index = tf.constant(num_instances - 1, tf.int64)

    def example(local_index: tf.Tensor) -> dict[str, tf.Tensor]:
        step, row = local_index // local_batch, local_index % local_batch
        index = step * global_batch_size + process_index * local_batch + row
        epoch_seed = tf.random.experimental.stateless_fold_in(shuffle_base, index // num_instances)
        instance = tf.random.experimental.index_shuffle(
            index % num_instances, seed=epoch_seed, max_index=last_index
        )
        features = {key: tf.gather(value, instance) for key, value in table.items()}
        return mask_example(features, tf.random.experimental.stateless_fold_in(mask_base, index))

    # Dataset.counter is an infinite int64 range: this process's k-th example overall.
    dataset = tf.data.Dataset.counter(start=start_step * local_batch)
    dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(local_batch, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
