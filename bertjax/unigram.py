"""The frequency baseline of held-out evaluation: occurrences of each token in the training data
(`token_counts.npy` in the workdir) and what a unigram model of them scores on the held-out
masked positions. A model within `evaluation.PLATEAU_MARGIN_NATS` of it has learned frequencies
and little context (the "frequency plateau")."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
from absl import logging
from etils import epath

from bertjax import paths

if TYPE_CHECKING:
    from bertjax.data import pipeline

TOKEN_COUNTS_FILE = "token_counts.npy"
_COUNT_SAMPLE_BATCHES = 64  # streamed or prepared data: batches counted for the unigram model


def load_token_counts(path: epath.Path) -> np.ndarray | None:
    """The counts saved at `path` (local or gs://); None, with a warning, when absent or
    unreadable (a file cut short: the caller counts again or goes without the baseline)."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:  # np.load opens only local paths; this may be gs://
            counts = np.load(f)
    except (ValueError, OSError, EOFError) as e:
        logging.warning("%s is unreadable (%s): not used", path, e)
        return None
    if counts.ndim != 1 or counts.dtype.kind not in "iu":
        logging.warning("%s holds no token counts (%s %s): not used", path, counts.dtype,
                        counts.shape)  # fmt: skip
        return None
    return counts


def save_token_counts(path: epath.Path, counts: np.ndarray) -> None:
    """Saves `counts` at `path` whole or not at all (written beside it, then renamed)."""
    buffer = io.BytesIO()
    np.save(buffer, counts)
    paths.write_bytes_atomically(path, buffer.getvalue())


def token_counts(instances: dict[str, np.ndarray], vocab_size: int, special_ids) -> np.ndarray:
    """[V] int64 occurrences of each non-special token among the real tokens of `instances`
    (the unmasked instance arrays of `pipeline.build_pretraining_data`)."""
    ids = instances["input_ids"][instances["input_mask"] == 1]
    counts = np.bincount(ids, minlength=vocab_size).astype(np.int64)
    counts[np.asarray(special_ids, np.int64)] = 0
    return counts


def sampled_token_counts(batches, vocab_size: int, special_ids) -> np.ndarray:
    """`token_counts` over masked training batches (originals restored at masked positions):
    for prepared or streamed data, whose instances are not in memory."""
    counts = np.zeros(vocab_size, np.int64)
    for batch in batches:
        ids = batch["input_ids"].copy()
        rows, slots = np.nonzero(batch["masked_lm_weights"] > 0)
        ids[rows, batch["masked_lm_positions"][rows, slots]] = batch["masked_lm_ids"][rows, slots]
        counts += np.bincount(ids[batch["input_mask"] == 1], minlength=vocab_size)
    counts[np.asarray(special_ids, np.int64)] = 0
    return counts


def training_token_counts(data: pipeline.PretrainingData, dataset) -> np.ndarray:
    """Token counts of the training data: exact for in-memory instances, else sampled from the
    first batches of `dataset` (an iterable of numpy batches)."""
    from bertjax.data.sources.in_memory import InMemoryInstances  # deferred: tf.data

    tokenizer = data.tokenizer
    if isinstance(data.source, InMemoryInstances):
        return token_counts(data.source.arrays, tokenizer.vocab_size, tokenizer.special_ids)
    sample = (batch for _, batch in zip(range(_COUNT_SAMPLE_BATCHES), dataset, strict=False))
    return sampled_token_counts(sample, tokenizer.vocab_size, tokenizer.special_ids)


def unigram_baseline(labels: np.ndarray, counts: np.ndarray) -> dict:
    """What token frequencies alone score on the masked positions' original ids `labels`: the
    cross-entropy of the add-0.5 smoothed unigram model of `counts`, and the accuracy of always
    predicting the most frequent token. NaN when there is no masked position."""
    if not labels.size:
        return {"unigram_mlm_loss": math.nan, "unigram_mlm_accuracy": math.nan}
    probabilities = (counts + 0.5) / (counts + 0.5).sum()
    return {
        "unigram_mlm_loss": float(-np.log(probabilities[labels]).mean()),
        "unigram_mlm_accuracy": float((labels == np.argmax(counts)).mean()),
    }
