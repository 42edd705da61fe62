"""Dynamic masked-LM masking as TensorFlow ops (BERT's 80/10/10 rule), one example at a time.

Three kinds of masking unit (`MASKING_KINDS`):

* ``"token"``: each selected position is an independent token (original BERT);
* ``"whole_word"``: all wordpieces of a word are selected together (google-research/bert
  ``--do_whole_word_mask``); see `mask_units`;
* ``"span"``: n-grams of whole words, n drawn from a given distribution (SpanBERT-style).

In every kind the budget is counted in tokens, min(P, max(1, round(eligible * prob))), and the
80/10/10 choice (`mask_token_prob` / `random_token_prob` / the rest kept; 1/0/0 is [MASK]-only)
is made once per unit (token, word or span); a random replacement draws a fresh id for every
token of the unit.

Works on a single unbatched example so it maps before `batch` in tf.data; every random choice
comes from stateless ops keyed by a [2] seed, so a mask is a pure function of (example, seed)
and is identical eagerly and inside a tf.data graph.

A run's masking is a `MaskingSpec`; `example_masker(spec, tokenizer)` turns it into the function
every instance source applies to its examples.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from bertjax.data import mask_units

# The spec lives in masking_spec.py (no TensorFlow there: configs are read without it).
from bertjax.data.masking_spec import (  # noqa: F401
    MASK_PROB,
    MASKING_KINDS,
    RANDOM_PROB,
    MaskingSpec,
)


@dataclasses.dataclass(frozen=True)
class MaskingTables:
    """The per-vocabulary arrays masking needs (numpy)."""

    special_ids: np.ndarray  # [S] int32: never selected
    mask_id: int
    random_token_ids: np.ndarray  # [R] int32: every id that is not special
    word_start_table: np.ndarray | None  # [V] bool, for whole_word and span masking
    span_length_probs: np.ndarray | None  # [max_ngram] float32, for span masking


def masking_tables(spec: MaskingSpec, tokenizer) -> MaskingTables:
    """The tables of `spec` for `tokenizer` (its vocab_size, special_ids, mask_id, vocab).

    random_token_ids is every id that is not special, so [unused*] tokens of a released BERT
    vocabulary never appear as random replacements. Whole-word and span masking also get the
    tokenizer's word-start table (its ``word_start_table()`` when it has one, else "not ##").
    """
    special_ids = np.asarray(tokenizer.special_ids, np.int32)
    random_token_ids = np.setdiff1d(
        np.arange(tokenizer.vocab_size, dtype=np.int32), special_ids
    ).astype(np.int32)
    word_starts = None
    if spec.masking != "token":
        if hasattr(tokenizer, "word_start_table"):
            word_starts = tokenizer.word_start_table()
        else:
            word_starts = mask_units.word_start_table(tokenizer.vocab)
    probs = spec.span_length_probs() if spec.masking == "span" else None
    return MaskingTables(special_ids, tokenizer.mask_id, random_token_ids, word_starts, probs)


def example_masker(spec: MaskingSpec, tokenizer) -> Callable[..., dict[str, tf.Tensor]]:
    """(input_ids [L], input_mask [L], seed [2], word_starts [L] or None) -> `mask_tokens`'
    outputs, for `spec` and `tokenizer`; usable eagerly and inside tf.data. `word_starts` is a
    word segmenter's feature (see `mask_units`); token masking ignores it."""
    tables = masking_tables(spec, tokenizer)
    special_ids = tf.constant(tables.special_ids, tf.int32)
    random_token_ids = tf.constant(tables.random_token_ids, tf.int32)
    unit_kwargs = {}
    if spec.masking != "token":
        probs = tables.span_length_probs
        unit_kwargs = {
            "masking": spec.masking,
            "word_start_table": tf.constant(tables.word_start_table, tf.bool),
            "span_length_probs": None if probs is None else tf.constant(probs, tf.float32),
        }

    def mask(
        input_ids: tf.Tensor,
        input_mask: tf.Tensor,
        seed: tf.Tensor,
        word_starts: tf.Tensor | None = None,
    ) -> dict:
        segmented = {"word_starts": word_starts} if unit_kwargs and word_starts is not None else {}
        return mask_tokens(
            input_ids,
            input_mask,
            seed,
            masked_lm_prob=spec.masked_lm_prob,
            max_predictions_per_seq=spec.max_predictions_per_seq,
            special_ids=special_ids,
            mask_id=tables.mask_id,
            random_token_ids=random_token_ids,
            mask_token_prob=spec.mask_token_prob,
            random_token_prob=spec.random_token_prob,
            **unit_kwargs,
            **segmented,
        )

    return mask


def _eligible(input_ids: tf.Tensor, input_mask: tf.Tensor, special_ids: tf.Tensor) -> tf.Tensor:
    """[L] bool: real (mask == 1) and not a special token."""
    is_special = tf.reduce_any(input_ids[:, tf.newaxis] == special_ids[tf.newaxis, :], axis=1)
    return tf.logical_and(tf.equal(input_mask, 1), tf.logical_not(is_special))


def _num_to_predict(
    num_eligible: tf.Tensor, masked_lm_prob: float, max_predictions: int
) -> tf.Tensor:
    """min(P, max(1, round(n * prob))), or 0 when nothing is eligible; scalar int32."""
    # tf.round rounds half to even, like Python's round() in google's reference code.
    wanted = tf.cast(tf.round(tf.cast(num_eligible, tf.float32) * masked_lm_prob), tf.int32)
    count = tf.minimum(max_predictions, tf.maximum(1, wanted))
    return tf.where(num_eligible > 0, count, 0)


def _pad_to(values: tf.Tensor, length: int) -> tf.Tensor:
    """Right-pads a 1-D tensor with zeros to the static `length`."""
    padded = tf.pad(values, [[0, length - tf.shape(values)[0]]])
    return tf.ensure_shape(padded, [length])


def _corrupt(
    input_ids: tf.Tensor,
    positions: tf.Tensor,
    action: tf.Tensor,
    replace_seed: tf.Tensor,
    mask_id: int,
    random_token_ids: tf.Tensor,
    max_predictions_per_seq: int,
    mask_token_prob: float,
    random_token_prob: float,
) -> dict[str, tf.Tensor]:
    """Applies 80/10/10 (or the given split) at `positions` ([K] ascending) given one uniform
    `action` [K] each."""
    original_ids = tf.gather(input_ids, positions)
    random_ids = tf.gather(
        random_token_ids,
        tf.random.stateless_uniform(
            tf.shape(positions),
            seed=replace_seed,
            minval=0,
            maxval=tf.shape(random_token_ids)[0],
            dtype=tf.int32,
        ),
    )
    replacement = tf.where(
        action < mask_token_prob,
        tf.fill(tf.shape(positions), tf.constant(mask_id, tf.int32)),
        tf.where(action < mask_token_prob + random_token_prob, random_ids, original_ids),
    )
    masked_input_ids = tf.tensor_scatter_nd_update(input_ids, positions[:, tf.newaxis], replacement)
    return {
        "input_ids": masked_input_ids,
        "masked_lm_positions": _pad_to(positions, max_predictions_per_seq),
        "masked_lm_ids": _pad_to(original_ids, max_predictions_per_seq),
        "masked_lm_weights": _pad_to(tf.ones_like(positions, tf.float32), max_predictions_per_seq),
    }


def mask_tokens(
    input_ids: tf.Tensor,
    input_mask: tf.Tensor,
    seed: tf.Tensor,
    *,
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    special_ids: tf.Tensor,
    mask_id: int,
    random_token_ids: tf.Tensor,
    masking: str = "token",
    word_start_table: tf.Tensor | None = None,
    span_length_probs: tf.Tensor | None = None,
    mask_token_prob: float = MASK_PROB,
    random_token_prob: float = RANDOM_PROB,
    word_starts: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Selects and corrupts masked-LM positions of one example.

    Args:
      input_ids: [L] int32 token ids.
      input_mask: [L] int32, 1 on real tokens, 0 on padding.
      seed: [2] int32/int64 stateless seed; equal seeds give equal masks.
      masked_lm_prob: fraction of eligible tokens (real, not special) to select.
      max_predictions_per_seq: P, cap on selected positions and length of the outputs.
      special_ids: [S] ids never selected ([CLS], [SEP], [PAD], ...).
      mask_id: id of [MASK].
      random_token_ids: [R] ids a selected token may be replaced with (no special ids).
      masking: one of MASKING_KINDS.
      word_start_table: [V] bool, True for ids that start a word (needed unless "token").
      span_length_probs: [N] float32, P(span = n words) for n = 1..N (needed for "span").
      mask_token_prob, random_token_prob: of the selected units, the share shown as [MASK] and
        as a random token (the rest unchanged); BERT's 0.8 and 0.1 by default.
      word_starts: [L] int32, a word segmenter's feature (0 on tokens inside a segmenter
        word, which then never start a word), or None; only for "whole_word" and "span".

    Returns:
      ``input_ids`` [L] int32 with selected positions corrupted (by default 80% [MASK], 10%
      random, 10% unchanged); ``masked_lm_positions`` [P] int32 ascending, unique, 0-padded;
      ``masked_lm_ids`` [P] int32 original ids, 0-padded; ``masked_lm_weights`` [P] float32,
      1.0 on real predictions and 0.0 on padding.
    """
    if masking not in MASKING_KINDS:
        raise ValueError(f"masking={masking!r} is not one of {MASKING_KINDS}")
    input_ids = tf.convert_to_tensor(input_ids, tf.int32)
    input_mask = tf.convert_to_tensor(input_mask, tf.int32)
    special_ids = tf.convert_to_tensor(special_ids, tf.int32)
    random_token_ids = tf.convert_to_tensor(random_token_ids, tf.int32)
    eligible = _eligible(input_ids, input_mask, special_ids)
    num_eligible = tf.reduce_sum(tf.cast(eligible, tf.int32))
    num_predictions = _num_to_predict(num_eligible, masked_lm_prob, max_predictions_per_seq)
    corrupt_args = (
        mask_id, random_token_ids, max_predictions_per_seq, mask_token_prob, random_token_prob
    )  # fmt: skip
    if masking != "token":
        return _mask_units(
            input_ids,
            eligible,
            num_predictions,
            seed,
            word_start_table,
            span_length_probs if masking == "span" else None,
            corrupt_args,
            word_starts,
        )
    select_seed, action_seed, replace_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    # The top-k of i.i.d. uniform scores is a uniformly random k-subset of the eligible tokens
    # (ineligible ones score -1 and are never among the first num_predictions).
    scores = tf.random.stateless_uniform(tf.shape(input_ids), seed=select_seed)
    scores = tf.where(eligible, scores, -1.0)
    k = tf.minimum(max_predictions_per_seq, tf.shape(input_ids)[0])
    _, top = tf.math.top_k(scores, k=k)
    positions = tf.sort(top[:num_predictions])
    action = tf.random.stateless_uniform(tf.shape(positions), seed=action_seed)
    return _corrupt(input_ids, positions, action, replace_seed, *corrupt_args)


def _mask_units(
    input_ids,
    eligible,
    num_predictions,
    seed,
    word_start_table,
    span_length_probs,
    corrupt_args,
    word_starts=None,
) -> dict[str, tf.Tensor]:
    """Whole-word / span masking: whole units within the token budget, 80/10/10 per unit."""
    if word_start_table is None:
        raise ValueError("whole-word and span masking need word_start_table")
    if input_ids.shape.rank != 1 or input_ids.shape[0] is None:
        raise ValueError(
            f"whole-word and span masking need a static [L] shape, got {input_ids.shape}"
        )
    unit_seed, select_seed, action_seed, replace_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=4)
    )
    unit_start, word_start = mask_units.unit_starts(
        input_ids,
        eligible,
        tf.convert_to_tensor(word_start_table, tf.bool),
        None if span_length_probs is None else tf.convert_to_tensor(span_length_probs, tf.float32),
        unit_seed,
        None if word_starts is None else tf.convert_to_tensor(word_starts, tf.int32),
    )
    selected, unit_id = mask_units.choose_units(
        unit_start,
        eligible,
        num_predictions,
        select_seed,
        word_start=None if span_length_probs is None else word_start,
    )
    positions = tf.cast(tf.where(selected)[:, 0], tf.int32)
    unit_action = tf.random.stateless_uniform(tf.shape(input_ids), seed=action_seed)
    action = tf.gather(unit_action, tf.gather(unit_id, positions))
    return _corrupt(input_ids, positions, action, replace_seed, *corrupt_args)
