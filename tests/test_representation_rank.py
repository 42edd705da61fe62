"""The collapse diagnostics of benchmarks/representation_rank.py on states of known shape."""

import numpy as np
import pytest

from benchmarks.representation_rank import effective_rank, mean_pair_cosine


def test_effective_rank_counts_the_directions_the_states_span():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    spread = rng.normal(size=(4000, 8)) @ basis[:8]  # 8 equal directions
    assert effective_rank(spread) == pytest.approx(8, rel=0.05)
    one = np.outer(rng.normal(size=500), basis[0]) + 5.0  # one direction and an offset
    assert effective_rank(one) == pytest.approx(1, abs=1e-6)


def test_mean_pair_cosine_is_one_for_parallel_and_near_zero_for_random_states():
    rng = np.random.default_rng(1)
    parallel = np.outer(rng.uniform(1, 2, size=50), rng.normal(size=16))
    assert mean_pair_cosine(parallel) == pytest.approx(1.0)
    assert abs(mean_pair_cosine(rng.normal(size=(2000, 256)))) < 0.01
