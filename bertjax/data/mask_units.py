"""Masking units larger than one token: whole words and n-gram spans of whole words.

A *word* is a token that starts a word (for WordPiece: not ``##...``) plus the ``##``
continuations that follow it. A word never crosses an ineligible token ([CLS], [SEP], [UNK],
padding): an eligible token right after one starts a word even when it is a continuation (a
segment cut in mid-word by truncation keeps its first piece as a word of its own). Rows of a
word segmenter (`word_segmenter`: Chinese) also carry per-token ``word_starts``; a token it
marks 0 (inside a Chinese word) does not start a word either, so the characters of a
segmenter word form one word.

A *span* is ``n`` consecutive words, n drawn from `span_length_probs` (SpanBERT, Joshi et al.
2020, draws n ~ Geometric(0.2) truncated at 10). The words of a run of eligible tokens (the text
between two special tokens) are tiled left to right with independent lengths, and a span that
would cross the run's end is cut there; so every span's length follows the stated distribution
except the last of each run.

Units are tried in a uniformly random order against a budget counted in tokens. Words follow
google-research/bert's ``--do_whole_word_mask``: a word that does not fit is skipped and later
ones are tried. Spans follow ALBERT's n-gram rule: the first span that does not fit is shrunk to
the whole words that fit and selection stops (see `choose_units`). Everything here is TF ops on
one unbatched example, with randomness from stateless ops keyed by [2] seeds, so it runs
eagerly and inside tf.data alike. The unit ops need the sequence length L to be static.
"""

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from bertjax.data.masking_spec import SPAN_DISTRIBUTIONS, span_length_probs  # noqa: F401

WORDPIECE_CONTINUATION = "##"


def word_start_table(
    vocab: Sequence[str], continuation_prefix: str = WORDPIECE_CONTINUATION
) -> np.ndarray:
    """[V] bool, indexed by token id: True where the token starts a word (no `##` prefix)."""
    return np.array([not token.startswith(continuation_prefix) for token in vocab], bool)


def _previous(values: tf.Tensor, first) -> tf.Tensor:
    """values shifted right by one, `first` at index 0 ([L] -> [L])."""
    return tf.concat([tf.fill([1], first), values[:-1]], axis=0)


def word_starts(
    input_ids: tf.Tensor,
    eligible: tf.Tensor,
    word_start_table: tf.Tensor,
    segmenter_starts: tf.Tensor | None = None,
):
    """[L] bool: eligible tokens that start a word; also returns the [L] bool run starts.

    `segmenter_starts` [L] (the ``word_starts`` feature, 0 inside a segmenter word), when
    given, can only take word starts away from the vocabulary's table.
    """
    run_start = eligible & ~_previous(eligible, False)
    starts_word = tf.gather(word_start_table, input_ids)
    if segmenter_starts is not None:
        starts_word &= tf.cast(segmenter_starts, tf.bool)
    return eligible & (starts_word | run_start), run_start


def _span_starts(
    word_start: tf.Tensor, run_start: tf.Tensor, probs: tf.Tensor, seed: tf.Tensor
) -> tf.Tensor:
    """[L] bool: the word starts that also start a span (see module doc)."""
    length = word_start.shape[0]
    word_positions = tf.cast(tf.where(word_start)[:, 0], tf.int32)  # [W] token index per word
    num_words = tf.shape(word_positions)[0]
    word_index = tf.range(num_words)
    word_starts_run = tf.gather(run_start, word_positions)
    run_first_words = tf.cast(tf.where(word_starts_run)[:, 0], tf.int32)
    run_ordinal = tf.cumsum(tf.cast(word_starts_run, tf.int32)) - 1
    next_run_first_word = tf.gather(
        tf.concat([run_first_words[1:], num_words[tf.newaxis]], axis=0), run_ordinal
    )
    # One length per word, drawn whether or not a span starts there: independent lengths
    # along the tiling, and a static shape.
    span_lengths = (
        tf.random.stateless_categorical(
            tf.math.log(probs)[tf.newaxis], length, seed, dtype=tf.int32
        )[0, :num_words]
        + 1
    )
    # jump[w]: the word after the span starting at w (cut at the run end); num_words is a sink.
    jump = tf.minimum(word_index + span_lengths, next_run_first_word)
    jump = tf.concat([jump, num_words[tf.newaxis]], axis=0)
    # The span starts are the orbit of word 0 under jump; pointer doubling finds all of them in
    # log2(L) gathers instead of one sequential step per span.
    orbit = tf.zeros([1], tf.int32)
    power = jump
    for _ in range(math.ceil(math.log2(length + 1))):
        orbit = tf.concat([orbit, tf.gather(power, orbit)], axis=0)
        power = tf.gather(power, power)
    orbit = tf.boolean_mask(orbit, orbit < num_words)
    starts_span = tf.scatter_nd(orbit[:, tf.newaxis], tf.ones_like(orbit), [num_words]) > 0
    return tf.scatter_nd(word_positions[:, tf.newaxis], starts_span, [length])


def unit_starts(
    input_ids: tf.Tensor,
    eligible: tf.Tensor,
    word_start_table: tf.Tensor,
    span_probs: tf.Tensor | None,
    seed: tf.Tensor,
    segmenter_starts: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Unit starts and word starts, both [L] bool; units are words, or spans with `span_probs`.

    Args:
      input_ids: [L] int32 (static L).
      eligible: [L] bool, tokens that may be masked (real, not special).
      word_start_table: [V] bool, see `word_start_table`.
      span_probs: [N] float32 span length distribution over 1..N words, or None for words.
      seed: [2] stateless seed for the span lengths.
      segmenter_starts: [L] int32/bool ``word_starts`` feature of a word segmenter, or None.
    """
    word_start, run_start = word_starts(input_ids, eligible, word_start_table, segmenter_starts)
    if span_probs is None:
        return word_start, word_start
    return _span_starts(word_start, run_start, span_probs, seed), word_start


def _greedy_fit(lengths: tf.Tensor, budget: tf.Tensor) -> tf.Tensor:
    """[U] bool: in order, take each unit (length > 0) that fits what is left of `budget`.

    Exactly google-research/bert's loop (``if len(masked) + len(unit) > budget: continue``),
    but each round takes the longest run of units that fit one after another, so it needs one
    round per skipped-then-refilled stretch (usually 1-3) instead of one per unit.
    """
    size = lengths.shape[0]
    index = tf.range(size)
    real = lengths > 0

    def fits(remaining, pointer):
        return (index >= pointer) & real & (lengths <= remaining)

    def cond(remaining, pointer, taken):
        return (remaining > 0) & tf.reduce_any(fits(remaining, pointer))

    def body(remaining, pointer, taken):
        first = tf.argmax(tf.cast(fits(remaining, pointer), tf.int32), output_type=tf.int32)
        after = index >= first
        total = tf.cumsum(tf.where(after, lengths, 0))
        over = after & ((total > remaining) | ~real)
        stop = tf.where(
            tf.reduce_any(over), tf.argmax(tf.cast(over, tf.int32), output_type=tf.int32), size
        )
        take = after & (index < stop)
        remaining -= tf.reduce_sum(tf.where(take, lengths, 0))
        return remaining, stop, taken | take

    _, _, taken = tf.while_loop(
        cond, body, (budget, tf.constant(0, tf.int32), tf.zeros([size], tf.bool))
    )
    return taken


def _shrink_crossing_unit(
    in_budget_before: tf.Tensor,
    crossing: tf.Tensor,
    unit_id: tf.Tensor,
    unit_start: tf.Tensor,
    word_start: tf.Tensor,
    eligible: tf.Tensor,
) -> tf.Tensor:
    """[L] bool: tokens of the crossing unit whose whole word ends within the budget left.

    `in_budget_before` [U] is the budget left when each unit is reached; `crossing` [U] marks
    the one unit that does not fit whole.
    """
    length = unit_start.shape[0]
    position = tf.range(length)
    word_id = tf.maximum(tf.cumsum(tf.cast(word_start, tf.int32)) - 1, 0)
    word_last = tf.math.unsorted_segment_max(tf.where(eligible, position, -1), word_id, length)
    unit_first = tf.math.unsorted_segment_min(tf.where(eligible, position, length), unit_id, length)
    word_end_offset = tf.gather(word_last, word_id) - tf.gather(unit_first, unit_id)
    return tf.gather(crossing, unit_id) & (word_end_offset < tf.gather(in_budget_before, unit_id))


def choose_units(
    unit_start: tf.Tensor,
    eligible: tf.Tensor,
    budget: tf.Tensor,
    seed: tf.Tensor,
    *,
    word_start: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Random whole units within a token budget.

    Without `word_start` (words): google's rule, units that do not fit are skipped and later
    ones tried (`_greedy_fit`). With `word_start` (spans): ALBERT's n-gram rule, units are
    taken in order until one does not fit; that one is shrunk to the whole words that fit, and
    selection stops. Skipping would fill small budgets with the shortest spans and bend the span
    length distribution far more than shrinking the one span that closes the budget.

    Args:
      unit_start: [L] bool from `unit_starts`; every eligible token belongs to the unit started
        by the nearest unit start at or before it.
      eligible: [L] bool.
      budget: scalar int32, most tokens to select.
      seed: [2] stateless seed for the order in which units are tried.
      word_start: [L] bool word starts (see `word_starts`), only for span units.

    Returns:
      selected [L] bool (whole words, at most `budget` tokens) and unit_id [L] int32 (index of
      each token's unit; meaningless on ineligible tokens).
    """
    length = unit_start.shape[0]
    unit_id = tf.cumsum(tf.cast(unit_start, tf.int32)) - 1
    num_units = tf.reduce_sum(tf.cast(unit_start, tf.int32))
    segment = tf.where(eligible, unit_id, length)
    unit_length = tf.math.unsorted_segment_sum(tf.ones([length], tf.int32), segment, length + 1)[
        :length
    ]
    scores = tf.random.stateless_uniform([length], seed)
    scores = tf.where(tf.range(length) < num_units, scores, 2.0)  # non-units sort last
    order = tf.argsort(scores)
    ordered_length = tf.gather(unit_length, order)
    unit_id = tf.maximum(unit_id, 0)
    if word_start is None:
        taken = _greedy_fit(ordered_length, budget)
        unit_taken = tf.scatter_nd(order[:, tf.newaxis], taken, [length])
        return eligible & tf.gather(unit_taken, unit_id), unit_id
    end = tf.cumsum(ordered_length)
    left_before = budget - (end - ordered_length)
    whole = (ordered_length > 0) & (end <= budget)
    crossing = (ordered_length > 0) & (left_before > 0) & (end > budget)

    def to_unit(values):  # order space -> unit space
        return tf.scatter_nd(order[:, tf.newaxis], values, [length])

    partial = _shrink_crossing_unit(
        to_unit(left_before), to_unit(crossing), unit_id, unit_start, word_start, eligible
    )
    return eligible & (tf.gather(to_unit(whole), unit_id) | partial), unit_id
