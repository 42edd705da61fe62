"""Tests for bertjax/data/masking.py, eagerly and inside tf.data (they can differ)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats as scipy_stats

from bertjax.data.masking import mask_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
VOCAB_SIZE = 1000
SPECIAL_IDS = np.array([PAD, UNK, CLS, SEP, MASK, 500, 501], np.int32)  # 500/501: "[unused]"
RANDOM_TOKEN_IDS = np.setdiff1d(np.arange(VOCAB_SIZE), SPECIAL_IDS).astype(np.int32)
SEQ_LENGTH = 128
MAX_PREDICTIONS = 40  # 15% of <= 125 eligible tokens is <= 19: the cap never binds
KWARGS = dict(
    masked_lm_prob=0.15,
    max_predictions_per_seq=MAX_PREDICTIONS,
    special_ids=SPECIAL_IDS,
    mask_id=MASK,
    random_token_ids=RANDOM_TOKEN_IDS,
)


def _examples(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] A [SEP] B [SEP] rows of random ids (specials sprinkled in) with random padding."""
    rng = np.random.default_rng(seed)
    input_ids = np.zeros((num, SEQ_LENGTH), np.int32)
    input_mask = np.zeros((num, SEQ_LENGTH), np.int32)
    for row in range(num):
        length = rng.integers(10, SEQ_LENGTH + 1)
        tokens = rng.choice(RANDOM_TOKEN_IDS, size=length)
        tokens[rng.random(length) < 0.02] = UNK  # unknown words in text are never masked
        tokens[0], tokens[rng.integers(2, length - 1)], tokens[-1] = CLS, SEP, SEP
        input_ids[row, :length] = tokens
        input_mask[row, :length] = 1
    return input_ids, input_mask


def _seeds(num: int, offset: int = 0) -> np.ndarray:
    return np.stack([np.full(num, 7), np.arange(num) + offset], axis=1).astype(np.int64)


def _mask_eagerly(input_ids, input_mask, seeds, **overrides) -> dict[str, np.ndarray]:
    kwargs = {**KWARGS, **overrides}
    rows = [
        mask_tokens(ids, mask, seed, **kwargs)
        for ids, mask, seed in zip(input_ids, input_mask, seeds, strict=True)
    ]
    return {key: np.stack([row[key].numpy() for row in rows]) for key in rows[0]}


def _mask_in_dataset(input_ids, input_mask, seeds, **overrides) -> dict[str, np.ndarray]:
    kwargs = {**KWARGS, **overrides}
    dataset = tf.data.Dataset.from_tensor_slices((input_ids, input_mask, seeds))
    dataset = dataset.map(
        lambda ids, mask, seed: mask_tokens(ids, mask, seed, **kwargs),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    (batch,) = dataset.batch(len(input_ids)).as_numpy_iterator()
    return batch


@pytest.fixture(scope="module")
def data():
    return _examples(2000)


@pytest.fixture(scope="module", params=["eager", "tf.data"])
def masked_examples(request, data):
    """(input_ids, input_mask, masked outputs); eager op dispatch is slow (~10 ms an example),
    so the eager variant masks 400 examples and the tf.data one all 2000."""
    num = 400 if request.param == "eager" else len(data[0])
    mask_fn = _mask_eagerly if request.param == "eager" else _mask_in_dataset
    input_ids, input_mask = data[0][:num], data[1][:num]
    return input_ids, input_mask, mask_fn(input_ids, input_mask, _seeds(num))


def test_output_shapes_and_dtypes(masked_examples):
    input_ids, _, masked = masked_examples
    num = len(input_ids)
    assert masked["input_ids"].shape == (num, SEQ_LENGTH)
    assert masked["input_ids"].dtype == np.int32
    for key in ("masked_lm_positions", "masked_lm_ids"):
        assert masked[key].shape == (num, MAX_PREDICTIONS) and masked[key].dtype == np.int32
    assert masked["masked_lm_weights"].shape == (num, MAX_PREDICTIONS)
    assert masked["masked_lm_weights"].dtype == np.float32


def test_selection_rate_and_80_10_10(masked_examples):
    input_ids, input_mask, masked = masked_examples
    eligible = (input_mask == 1) & ~np.isin(input_ids, SPECIAL_IDS)
    weights = masked["masked_lm_weights"]
    num_selected = weights.sum(axis=1).astype(int)
    expected = np.maximum(1, np.round(eligible.sum(axis=1) * 0.15)).astype(int)
    np.testing.assert_array_equal(num_selected, expected)
    assert abs(num_selected.sum() / eligible.sum() - 0.15) < 0.01

    real = weights == 1.0
    rows = np.nonzero(real)[0]
    positions = masked["masked_lm_positions"][real]
    original = input_ids[rows, positions]
    np.testing.assert_array_equal(masked["masked_lm_ids"][real], original)
    now = masked["input_ids"][rows, positions]
    mask_rate = np.mean(now == MASK)
    random_rate = np.mean((now != MASK) & (now != original))
    unchanged_rate = np.mean(now == original)
    # A random replacement equals the original id with probability 1/len(RANDOM_TOKEN_IDS).
    same_by_chance = 0.1 / len(RANDOM_TOKEN_IDS)
    assert abs(mask_rate - 0.8) < 0.02
    assert abs(random_rate - (0.1 - same_by_chance)) < 0.02
    assert abs(unchanged_rate - (0.1 + same_by_chance)) < 0.02
    assert len(positions) > 3_000


def test_specials_padding_and_unselected_positions_untouched(masked_examples):
    input_ids, input_mask, masked = masked_examples
    positions, weights = masked["masked_lm_positions"], masked["masked_lm_weights"]
    selected = np.zeros_like(input_ids, bool)
    for row in range(len(input_ids)):
        selected[row, positions[row][weights[row] == 1.0]] = True
    assert not np.any(selected & np.isin(input_ids, SPECIAL_IDS)), "special token selected"
    assert not np.any(selected & (input_mask == 0)), "padding selected"
    np.testing.assert_array_equal(masked["input_ids"][~selected], input_ids[~selected])
    replaced = masked["input_ids"][selected]
    # Replacements are [MASK] or non-special ids: never [CLS], [unused], ...
    assert np.all((replaced == MASK) | np.isin(replaced, RANDOM_TOKEN_IDS))


def test_positions_sorted_unique_and_padding_zero(masked_examples):
    _, _, masked = masked_examples
    positions, weights = masked["masked_lm_positions"], masked["masked_lm_weights"]
    ids = masked["masked_lm_ids"]
    for row in range(len(positions)):
        count = int(weights[row].sum())
        # Weights are 1 on a prefix and 0 exactly on the padding slots after it.
        np.testing.assert_array_equal(weights[row], np.arange(MAX_PREDICTIONS) < count)
        assert np.all(np.diff(positions[row, :count]) > 0)
        assert np.all(positions[row, count:] == 0) and np.all(ids[row, count:] == 0)


def test_same_seed_same_masks_other_seed_other_masks(data):
    input_ids, input_mask = data[0][:50], data[1][:50]
    first = _mask_eagerly(input_ids, input_mask, _seeds(50))
    again = _mask_eagerly(input_ids, input_mask, _seeds(50))
    other = _mask_eagerly(input_ids, input_mask, _seeds(50, offset=1000))
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    differ = np.any(first["masked_lm_positions"] != other["masked_lm_positions"], axis=1)
    assert differ.mean() > 0.95


def test_eager_and_dataset_agree(data):
    input_ids, input_mask = data[0][:100], data[1][:100]
    eager = _mask_eagerly(input_ids, input_mask, _seeds(100))
    graph = _mask_in_dataset(input_ids, input_mask, _seeds(100))
    for key in eager:
        np.testing.assert_array_equal(eager[key], graph[key])


def test_cap_binds_and_nothing_eligible():
    input_ids, input_mask = _examples(20, seed=1)
    capped = _mask_in_dataset(input_ids, input_mask, _seeds(20), max_predictions_per_seq=3)
    eligible = ((input_mask == 1) & ~np.isin(input_ids, SPECIAL_IDS)).sum(axis=1)
    expected = np.minimum(3, np.maximum(1, np.round(eligible * 0.15)))
    np.testing.assert_array_equal(capped["masked_lm_weights"].sum(axis=1), expected)
    assert capped["masked_lm_positions"].shape == (20, 3)

    only_special = np.array([CLS, SEP, SEP, PAD, PAD], np.int32)
    result = mask_tokens(only_special, np.array([1, 1, 1, 0, 0]), tf.constant([1, 2]), **KWARGS)
    np.testing.assert_array_equal(result["input_ids"], only_special)
    assert not np.any(result["masked_lm_weights"].numpy())
    assert not np.any(result["masked_lm_positions"].numpy())


def test_short_sequence_with_more_predictions_than_tokens():
    ids = np.array([CLS, 10, 11, SEP], np.int32)
    result = mask_tokens(ids, np.ones(4, np.int32), tf.constant([3, 4]), **KWARGS)
    assert result["masked_lm_positions"].shape == (MAX_PREDICTIONS,)
    assert result["masked_lm_weights"].numpy().sum() == 1.0
    assert result["masked_lm_positions"].numpy()[0] in (1, 2)


@pytest.mark.parametrize("mask_prob, random_prob", [(1.0, 0.0), (0.5, 0.5), (0.0, 0.0)])
def test_replacement_split_is_configurable(data, mask_prob, random_prob):
    """[MASK]-only (1/0), half random (0.5/0.5) and keep-only (0/0): each selected position is
    shown as [MASK], a random token or itself in those shares (400 rows, ~3,000 positions)."""
    input_ids, input_mask = (x[:400] for x in data)
    seeds = _seeds(400)
    masked = _mask_in_dataset(
        input_ids, input_mask, seeds, mask_token_prob=mask_prob, random_token_prob=random_prob
    )
    real = masked["masked_lm_weights"] == 1.0
    rows = np.nonzero(real)[0]
    now = masked["input_ids"][rows, masked["masked_lm_positions"][real]]
    original = masked["masked_lm_ids"][real]
    assert abs(np.mean(now == MASK) - mask_prob) < 0.03
    same_by_chance = random_prob / len(RANDOM_TOKEN_IDS)
    assert abs(np.mean((now != MASK) & (now != original)) - (random_prob - same_by_chance)) < 0.03
    if mask_prob == 1.0:
        assert np.all(now == MASK)
    if mask_prob == random_prob == 0.0:
        np.testing.assert_array_equal(now, original)


def test_random_replacements_are_uniform_over_every_candidate_id(data):
    """Random-token replacements are drawn uniformly from all of `random_token_ids`, its last id
    included (an exclusive bound one short never drew it; 1,000 rows: ~8,500 draws)."""
    candidates = np.arange(600, 620, dtype=np.int32)
    input_ids, input_mask = (x[:1000] for x in data)
    masked = _mask_in_dataset(
        input_ids, input_mask, _seeds(1000), mask_token_prob=0.0,
        random_token_prob=1.0, random_token_ids=candidates,
    )  # fmt: skip
    real = masked["masked_lm_weights"] == 1.0
    drawn = masked["input_ids"][np.nonzero(real)[0], masked["masked_lm_positions"][real]]
    counts = np.array([np.sum(drawn == c) for c in candidates])
    assert counts.sum() == real.sum() > 5_000  # every selected position got a candidate
    assert counts.min() > 0 and scipy_stats.chisquare(counts).pvalue > 1e-4, counts
