"""bertjax.representation: the collapse statistics from additive sums, against a direct
computation with numpy (SVD of the centred unit vectors, all pairwise cosines)."""

import numpy as np
import pytest

from bertjax import representation


def stats_of(states: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    weights = np.ones(states.shape[:2], np.float32) if weights is None else weights
    return representation.token_state_stats(representation.token_state_sums(states, weights))


def direct_stats(tokens: np.ndarray) -> dict[str, float]:
    unit = tokens / np.linalg.norm(tokens, axis=-1, keepdims=True)
    similarity = unit @ unit.T
    n = len(unit)
    singular = np.linalg.svd(unit - unit.mean(0), compute_uv=False)
    shares = singular**2 / np.sum(singular**2)
    shares = shares[shares > 1e-15]
    return {"token_cosine": (similarity.sum() - n) / (n * (n - 1)),
            "token_effective_rank": np.exp(-np.sum(shares * np.log(shares)))}  # fmt: skip


def test_the_sums_give_the_direct_statistics_of_the_real_tokens_only():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(3, 10, 16)) + 2.0 * rng.normal(size=16)  # a shared offset
    weights = (np.arange(10)[None] < np.array([[10], [7], [3]])).astype(np.float32)
    states[weights == 0] = 100.0  # padding must not count
    got = stats_of(states.astype(np.float32), weights)
    want = direct_stats(states[weights > 0])
    assert got["token_cosine"] == pytest.approx(want["token_cosine"], abs=1e-5)
    assert got["token_effective_rank"] == pytest.approx(want["token_effective_rank"], rel=1e-4)


def test_sums_over_batches_add_up_to_the_whole_set():
    rng = np.random.default_rng(1)
    states = rng.normal(size=(4, 8, 12)).astype(np.float32)
    ones = np.ones((2, 8), np.float32)
    parts = [representation.token_state_sums(states[i : i + 2], ones) for i in (0, 2)]
    total = {k: np.asarray(parts[0][k]) + np.asarray(parts[1][k]) for k in parts[0]}
    assert representation.token_state_stats(total) == pytest.approx(stats_of(states), rel=1e-5)


def test_the_effective_rank_counts_the_directions_the_states_span():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    spread = (rng.normal(size=(4000, 8)) @ basis[:8])[None]  # 8 equal directions
    assert stats_of(spread)["token_effective_rank"] == pytest.approx(8, rel=0.05)
    assert abs(stats_of(spread)["token_cosine"]) < 0.01
    same = np.broadcast_to(basis[0], (1, 50, 64)) * rng.uniform(1, 2, size=(1, 50, 1))
    assert stats_of(same) == pytest.approx({"token_cosine": 1.0, "token_effective_rank": 0.0},
                                           abs=1e-5)  # fmt: skip
