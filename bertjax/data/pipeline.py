"""Corpus -> pretraining instances in memory -> an infinite, resumable tf.data stream of batches.

Every batch is a pure function of (seed, global example index): example i of the run is
instance ``index_shuffle(i % N, epoch = i // N)``, masked with a seed folded from i. So epochs
see fresh orders and fresh masks (dynamic masking), processes read disjoint slices of each
global batch without coordination, and resuming at a step replays exactly what an
uninterrupted run would have seen. No iterator state needs checkpointing.
"""

import dataclasses
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from bertjax.data import corpus, masking, pretraining_examples, sentences
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
INSTANCE_KEYS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels")
ENCODE_BATCH_SIZE = 1024  # sentences per tokenizer call: amortises the op dispatch
# Random-number domains, so the shuffle and the masks never reuse a seed.
_SHUFFLE_DOMAIN, _MASK_DOMAIN = 0, 1


@dataclasses.dataclass
class PretrainingData:
    """Everything `make_dataset` and the trainer need from the corpus."""

    tokenizer: WordPieceTokenizer
    vocab_path: Path
    instances: dict[str, np.ndarray]  # see pretraining_examples.create_instances
    num_documents: int
    num_sentences: int


def _tokenize_documents(
    texts: Iterable[str], tokenizer: WordPieceTokenizer
) -> tuple[list[list[list[int]]], int]:
    """Splits each text into sentences and tokenizes them in batches across documents.

    Returns (documents -> non-empty sentences -> ids, without empty documents; number of
    sentences before tokenization).
    """
    doc_sentences = [sentences.split_sentences(text) for text in texts]
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


def build_pretraining_data(config: ml_collections.ConfigDict) -> PretrainingData:
    """Vocabulary (trained or cached), tokenized corpus and NSP instances for `config`.

    Reads config fields corpus, text_field, vocab_dir, vocab_size, lowercase, cache_dir,
    max_seq_length, short_seq_prob, dupe_factor and seed.
    """
    start = time.perf_counter()
    vocab_path = build_or_load_vocab(config)
    tokenizer = WordPieceTokenizer(vocab_path, lowercase=config.lowercase)
    documents, num_sentences = _tokenize_documents(
        corpus.read_documents(config.corpus, config.text_field), tokenizer
    )
    instances = pretraining_examples.create_instances(
        documents,
        max_seq_length=config.max_seq_length,
        short_seq_prob=config.short_seq_prob,
        dupe_factor=config.dupe_factor,
        seed=config.seed,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
        pad_id=tokenizer.pad_id,
    )
    num_instances = len(instances["input_ids"])
    if num_instances == 0:
        raise UserError(
            f"corpus {config.corpus!r} yields no training instance; give it documents with "
            "several sentences of text"
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


def masking_kwargs(tokenizer: WordPieceTokenizer, config: ml_collections.ConfigDict) -> dict:
    """The masking arguments of `make_dataset` for this tokenizer and config.

    random_token_ids is every id that is not special, so [unused*] tokens of a released BERT
    vocabulary never appear as random replacements.
    """
    special_ids = np.asarray(tokenizer.special_ids, np.int32)
    random_token_ids = np.setdiff1d(
        np.arange(tokenizer.vocab_size, dtype=np.int32), special_ids
    ).astype(np.int32)
    return {
        "masked_lm_prob": config.masked_lm_prob,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "special_ids": special_ids,
        "mask_id": tokenizer.mask_id,
        "random_token_ids": random_token_ids,
    }


def _check_dataset_args(
    num_instances: int,
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
    instances: dict[str, np.ndarray],
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
) -> tf.data.Dataset:
    """Infinite stream of this process's batches, starting at global step `start_step`.

    Row r of step s on process p is global example i = s * global_batch_size
    + p * local_batch + r, with local_batch = global_batch_size // process_count.

    Each element is a dict of FEATURE_NAMES: input_ids, input_mask, segment_ids [B, L] int32;
    masked_lm_positions, masked_lm_ids [B, P] int32; masked_lm_weights [B, P] float32;
    next_sentence_labels [B] int32, where B = local_batch and P = max_predictions_per_seq.
    Iterate with ``ds.as_numpy_iterator()``.
    """
    num_instances = len(instances["input_ids"])
    _check_dataset_args(
        num_instances,
        global_batch_size,
        process_index,
        process_count,
        masked_lm_prob,
        max_predictions_per_seq,
        start_step,
    )
    local_batch = global_batch_size // process_count
    table = {key: tf.constant(instances[key], tf.int32) for key in INSTANCE_KEYS}
    special_ids = tf.constant(special_ids, tf.int32)
    random_token_ids = tf.constant(random_token_ids, tf.int32)
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
        masked = masking.mask_tokens(
            features["input_ids"],
            features["input_mask"],
            tf.random.experimental.stateless_fold_in(mask_base, index),
            masked_lm_prob=masked_lm_prob,
            max_predictions_per_seq=max_predictions_per_seq,
            special_ids=special_ids,
            mask_id=mask_id,
            random_token_ids=random_token_ids,
        )
        features.update(masked)
        return {name: features[name] for name in FEATURE_NAMES}

    # Dataset.counter is an infinite int64 range: this process's k-th example overall.
    dataset = tf.data.Dataset.counter(start=start_step * local_batch)
    dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(local_batch, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
