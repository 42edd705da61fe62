"""Tests for whole-word and span masking (bertjax/data/mask_units.py through masking.mask_tokens):
statistics over many examples, eagerly and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from bertjax.data import mask_units
from bertjax.data.masking import _eligible, _num_to_predict, mask_tokens
from bertjax.data.masking_spec import MaskingSpec
from bertjax.errors import UserError

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
VOCAB_SIZE = 1000
FIRST_CONTINUATION = 600  # ids 600.. are "##" pieces
SPECIAL_IDS = np.array([PAD, UNK, CLS, SEP, MASK], np.int32)
RANDOM_TOKEN_IDS = np.arange(5, VOCAB_SIZE, dtype=np.int32)
WORD_START_TABLE = np.arange(VOCAB_SIZE) < FIRST_CONTINUATION
PROB = 0.15


def _examples(num: int, length: int, seed: int = 0):
    """[CLS] A [SEP] B [SEP] rows of words (a start piece + geometric ## pieces), padded.

    Returns input_ids, input_mask [num, length] and word_id [num, length] (-1 off words).
    """
    rng = np.random.default_rng(seed)
    input_ids = np.zeros((num, length), np.int32)
    input_mask = np.zeros((num, length), np.int32)
    for row in range(num):
        size = rng.integers(length // 2, length + 1)
        tokens: list[int] = []
        while len(tokens) < size:
            tokens.append(rng.integers(5, FIRST_CONTINUATION))
            tokens.extend(rng.integers(FIRST_CONTINUATION, VOCAB_SIZE, rng.geometric(0.75) - 1))
        tokens = np.array(tokens[:size])
        tokens[rng.random(size) < 0.01] = UNK  # never masked, and it ends a word
        tokens[0], tokens[rng.integers(2, size - 1)], tokens[-1] = CLS, SEP, SEP
        input_ids[row, :size] = tokens
        input_mask[row, :size] = 1
    return input_ids, input_mask, _word_ids(input_ids, input_mask)


def _word_ids(input_ids, input_mask) -> np.ndarray:
    """Reference word segmentation in numpy: a word never crosses an ineligible token."""
    eligible = (input_mask == 1) & ~np.isin(input_ids, SPECIAL_IDS)
    word_id = np.full(input_ids.shape, -1)
    for row in range(len(input_ids)):
        current = -1
        for i in range(input_ids.shape[1]):
            if not eligible[row, i]:
                continue
            if WORD_START_TABLE[input_ids[row, i]] or i == 0 or not eligible[row, i - 1]:
                current += 1
            word_id[row, i] = current
    return word_id


def _seeds(num: int, offset: int = 0) -> np.ndarray:
    return np.stack([np.full(num, 11), np.arange(num) + offset], axis=1).astype(np.int64)


def _kwargs(masking: str, max_predictions: int, **span):
    return dict(
        masked_lm_prob=PROB,
        max_predictions_per_seq=max_predictions,
        special_ids=SPECIAL_IDS,
        mask_id=MASK,
        random_token_ids=RANDOM_TOKEN_IDS,
        masking=masking,
        word_start_table=WORD_START_TABLE,
        span_length_probs=mask_units.span_length_probs(
            span.get("distribution", "geometric"), span.get("max_ngram", 10)
        ),
    )


def _mask_in_dataset(input_ids, input_mask, seeds, **kwargs):
    dataset = tf.data.Dataset.from_tensor_slices((input_ids, input_mask, seeds))
    dataset = dataset.map(
        lambda i, m, s: mask_tokens(i, m, s, **kwargs), num_parallel_calls=2, deterministic=True
    )
    (batch,) = dataset.batch(len(input_ids)).as_numpy_iterator()
    return batch


def _mask_eagerly(input_ids, input_mask, seeds, **kwargs):
    triples = zip(input_ids, input_mask, seeds, strict=True)
    rows = [mask_tokens(i, m, s, **kwargs) for i, m, s in triples]
    return {key: np.stack([row[key].numpy() for row in rows]) for key in rows[0]}


def _selected(masked, shape) -> np.ndarray:
    selected = np.zeros(shape, bool)
    for row in range(shape[0]):
        real = masked["masked_lm_weights"][row] == 1.0
        selected[row, masked["masked_lm_positions"][row][real]] = True
    return selected


@pytest.fixture(scope="module")
def data():
    return _examples(2000, 128)


@pytest.fixture(scope="module", params=["whole_word", "span"])
def masked(request, data):
    input_ids, input_mask, word_id = data
    kwargs = _kwargs(request.param, max_predictions=128)
    result = _mask_in_dataset(input_ids, input_mask, _seeds(len(input_ids)), **kwargs)
    return request.param, input_ids, input_mask, word_id, result


def test_selected_fraction_is_15_percent_of_eligible(masked):
    _, input_ids, input_mask, _, result = masked
    eligible = (input_mask == 1) & ~np.isin(input_ids, SPECIAL_IDS)
    selected = result["masked_lm_weights"].sum(axis=1)
    budget = np.maximum(1, np.round(eligible.sum(axis=1) * PROB))
    assert np.all(selected <= budget)
    assert abs(selected.sum() / eligible.sum() - PROB) < 0.01


def test_whole_words_only_specials_and_padding_never(masked):
    _, input_ids, input_mask, word_id, result = masked
    selected = _selected(result, input_ids.shape)
    assert not np.any(selected & (word_id < 0)), "a special token or padding was selected"
    for row in range(len(input_ids)):
        words = word_id[row]
        chosen = np.unique(words[selected[row]])
        # Every token of a chosen word is selected, and nothing else.
        np.testing.assert_array_equal(selected[row], np.isin(words, chosen) & (words >= 0))
    np.testing.assert_array_equal(result["input_ids"][~selected], input_ids[~selected])


def test_80_10_10_decided_once_per_word(masked):
    _, input_ids, _, word_id, result = masked
    selected = _selected(result, input_ids.shape)
    outcomes = {"mask": 0, "random": 0, "kept": 0}
    for row in range(len(input_ids)):
        for word in np.unique(word_id[row][selected[row]]):
            where = word_id[row] == word
            now, before = result["input_ids"][row][where], input_ids[row][where]
            if np.all(now == MASK):
                outcomes["mask"] += 1
            elif np.all(now == before):
                outcomes["kept"] += 1
            else:
                # A random replacement: no [MASK] anywhere in the word, valid ids only.
                assert not np.any(now == MASK) and np.all(np.isin(now, RANDOM_TOKEN_IDS))
                outcomes["random"] += 1
    total = sum(outcomes.values())
    assert total > 10_000
    assert abs(outcomes["mask"] / total - 0.8) < 0.02
    assert abs(outcomes["random"] / total - 0.1) < 0.02
    assert abs(outcomes["kept"] / total - 0.1) < 0.02


def test_whole_word_follows_googles_skip_rule(data):
    """google's loop skips a word that does not fit and tries the rest, so at the end every
    unselected word is longer than the budget left."""
    input_ids, input_mask, word_id = data
    kwargs = _kwargs("whole_word", max_predictions=128)
    result = _mask_in_dataset(input_ids[:500], input_mask[:500], _seeds(500), **kwargs)
    selected = _selected(result, input_ids[:500].shape)
    for row in range(500):
        eligible = word_id[row] >= 0
        budget = max(1, round(eligible.sum() * PROB))
        left = budget - selected[row].sum()
        lengths = np.bincount(word_id[row][eligible & ~selected[row]])
        assert np.all(lengths[lengths > 0] > left)


def _unit_spans(input_ids, input_mask, seeds, probs, length):
    """(unit_start, word_start, eligible, selected) from mask_units directly, in tf.data."""

    def units(ids, mask, seed):
        eligible = _eligible(ids, mask, tf.constant(SPECIAL_IDS))
        unit_seed, select_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        unit_start, word_start = mask_units.unit_starts(
            tf.ensure_shape(ids, [length]), eligible, WORD_START_TABLE, probs, unit_seed
        )
        budget = _num_to_predict(tf.reduce_sum(tf.cast(eligible, tf.int32)), PROB, length)
        selected, _ = mask_units.choose_units(
            unit_start, eligible, budget, select_seed, word_start=word_start
        )
        return unit_start, word_start, eligible, selected

    dataset = tf.data.Dataset.from_tensor_slices((input_ids, input_mask, seeds)).map(units)
    (batch,) = dataset.batch(len(input_ids)).as_numpy_iterator()
    return batch


def _span_lengths(unit_start, word_start, eligible, selected, max_ngram):
    """Words per drawn span (only spans that start >= max_ngram words before their run's end,
    so never cut) and words selected per selected span."""
    drawn, chosen = [], []
    for row in range(len(unit_start)):
        for start in np.nonzero(unit_start[row])[0]:
            end = start + 1
            while end < len(eligible[row]) and eligible[row, end] and not unit_start[row, end]:
                end += 1
            run_end = end
            while run_end < len(eligible[row]) and eligible[row, run_end]:
                run_end += 1
            if word_start[row, start:run_end].sum() > max_ngram:
                drawn.append(word_start[row, start:end].sum())
            if selected[row, start]:
                chosen.append(word_start[row, start:end][selected[row, start:end]].sum())
    return np.array(drawn), np.array(chosen)


@pytest.mark.parametrize("distribution, max_ngram", [("geometric", 10), ("uniform", 3)])
def test_drawn_span_lengths_follow_the_stated_distribution(data, distribution, max_ngram):
    input_ids, input_mask, _ = data
    probs = mask_units.span_length_probs(distribution, max_ngram)
    batch = _unit_spans(input_ids, input_mask, _seeds(len(input_ids)), probs, 128)
    drawn, _ = _span_lengths(*batch, max_ngram)
    counts = np.bincount(drawn, minlength=max_ngram + 1)[1:]
    assert len(drawn) > 20_000 and counts.sum() == len(drawn)
    expected = probs.astype(np.float64)
    expected *= len(drawn) / expected.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_masked_span_lengths_close_to_the_stated_distribution_at_512():
    """Only the budget-closing span is shrunk (and run ends cut spans): at 512 tokens the masked
    spans stay within 0.04 of the stated probabilities (at 128 they lean short; docs/data.md)."""
    input_ids, input_mask, _ = _examples(400, 512, seed=1)
    probs = mask_units.span_length_probs("uniform", 3)
    batch = _unit_spans(input_ids, input_mask, _seeds(400), probs, 512)
    _, chosen = _span_lengths(*batch, 3)
    frequencies = np.bincount(chosen, minlength=4)[1:] / len(chosen)
    assert len(chosen) > 5_000
    np.testing.assert_allclose(frequencies, probs, atol=0.04)


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_deterministic_by_seed_and_eager_equals_dataset(data, masking):
    input_ids, input_mask = data[0][:30], data[1][:30]
    kwargs = _kwargs(masking, max_predictions=20)
    eager = _mask_eagerly(input_ids, input_mask, _seeds(30), **kwargs)
    graph = _mask_in_dataset(input_ids, input_mask, _seeds(30), **kwargs)
    again = _mask_in_dataset(input_ids, input_mask, _seeds(30), **kwargs)
    other = _mask_in_dataset(input_ids, input_mask, _seeds(30, offset=500), **kwargs)
    for key in eager:
        np.testing.assert_array_equal(eager[key], graph[key], err_msg=key)
        np.testing.assert_array_equal(graph[key], again[key], err_msg=key)
    differ = np.any(graph["masked_lm_positions"] != other["masked_lm_positions"], axis=1)
    assert differ.mean() > 0.9


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_cap_binds_and_nothing_eligible(data, masking):
    input_ids, input_mask = data[0][:50], data[1][:50]
    result = _mask_in_dataset(input_ids, input_mask, _seeds(50), **_kwargs(masking, 3))
    assert result["masked_lm_positions"].shape == (50, 3)
    assert np.all(result["masked_lm_weights"].sum(axis=1) <= 3)
    assert result["masked_lm_weights"].sum() > 50
    only_special = np.array([CLS, SEP, UNK, SEP, PAD], np.int32)
    out = mask_tokens(only_special, np.array([1, 1, 1, 1, 0]), [1, 2], **_kwargs(masking, 5))
    np.testing.assert_array_equal(out["input_ids"], only_special)
    assert not np.any(out["masked_lm_weights"].numpy())


def test_word_start_table_and_span_probs():
    table = mask_units.word_start_table(["[PAD]", "the", "##s", "run", "##ning", "#"])
    np.testing.assert_array_equal(table, [True, True, False, True, False, True])
    geometric = mask_units.span_length_probs("geometric", 3, geometric_p=0.5)
    np.testing.assert_allclose(geometric, np.array([4, 2, 1]) / 7, rtol=1e-6)
    np.testing.assert_allclose(mask_units.span_length_probs("uniform", 4), [0.25] * 4)
    with pytest.raises(UserError, match="span_distribution='zipf' is unknown"):
        mask_units.span_length_probs("zipf", 3)
    with pytest.raises(UserError, match="max_ngram=0"):
        mask_units.span_length_probs("uniform", 0)


def test_span_masking_defaults_to_spanberts_lengths():
    """masking="span" with no other field: SpanBERT's geometric(0.2) over 1-10 words, mean span
    3.8 words (its paper's figure), the row docs/data.md states."""
    probs = MaskingSpec(masking="span").span_length_probs()
    documented = [0.224, 0.179, 0.143, 0.115, 0.092, 0.073, 0.059, 0.047, 0.038, 0.030]
    np.testing.assert_allclose(probs, documented, atol=5e-4)
    assert np.sum(probs * np.arange(1, 11)) == pytest.approx(3.8, abs=0.01)


def test_every_run_of_eligible_tokens_starts_a_span(data):
    """A span never crosses a special token: the first word after [CLS] or [SEP] starts a span,
    whatever length the span before it drew."""
    input_ids, input_mask, _ = data
    probs = mask_units.span_length_probs("geometric", 10)
    unit_start, _, eligible, _ = _unit_spans(input_ids[:300], input_mask[:300], _seeds(300),
                                             probs, 128)  # fmt: skip
    run_start = eligible & ~np.pad(eligible, ((0, 0), (1, 0)))[:, :-1]
    assert run_start.sum() > 2 * len(run_start)  # A and B, and text after each [UNK]
    assert np.all(unit_start[run_start])


@pytest.mark.parametrize("seed", range(6))
def test_the_span_that_closes_the_budget_gives_the_words_that_fit_even_one_token(seed):
    """Spans of two one-token words and a budget of 3: one span whole, then the next span
    shrunk to its first word (1 token left), so the budget is met exactly."""
    eligible = tf.constant([True] * 8)
    word_start = tf.constant([True] * 8)
    unit_start = tf.constant([True, False] * 4)
    selected, unit_id = mask_units.choose_units(
        unit_start, eligible, tf.constant(3), tf.constant([seed, 7]), word_start=word_start
    )
    selected, unit_id = selected.numpy(), unit_id.numpy()
    assert selected.sum() == 3
    per_unit = np.bincount(unit_id[selected], minlength=4)
    assert sorted(per_unit) == [0, 0, 1, 2]
    shrunk = int(np.flatnonzero(per_unit == 1)[0])
    assert selected[2 * shrunk] and not selected[2 * shrunk + 1]  # its first word
