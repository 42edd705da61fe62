"""The 16-bit dropout mask (bertjax/models/dropout.py): rate, uniformity, independence of the
four draws that share a hash, keying, scaling, and the same mask on any mesh."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bertjax.models import dropout

KEY = jax.random.key(7)


def five_sigma(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


def test_drop_fraction_is_the_rate():
    shape = (64, 4, 128, 128)  # an attention-probabilities mask, 4.2 M draws
    keep = np.asarray(dropout.keep_mask(KEY, 0.1, shape))
    drop_probability = dropout.drop_threshold(0.1) / 2**16
    assert abs(drop_probability - 0.1) < 2**-17
    n = keep.size
    assert abs((1 - keep.mean()) - drop_probability) < five_sigma(drop_probability, n)


def test_draws_are_uniform_over_16_bits():
    draws = np.asarray(dropout.random_draws_16bit(KEY, (256, 4096))).astype(np.int64)
    assert draws.min() >= 0 and draws.max() < 2**16
    # Chi-square over 64 equal bins of the value, and over the 16 values of the low 4 bits.
    for counts in (np.bincount(draws.ravel() >> 10, minlength=64), np.bincount(draws.ravel() & 15)):
        expected = draws.size / counts.size
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        dof = counts.size - 1
        # mean dof, sd sqrt(2 dof): 6 sd is far beyond chance (p < 1e-6)
        assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2


def test_draws_sharing_a_hash_are_independent():
    """Columns 4g to 4g + 3 come from one hash: each pair of them is dropped together with
    probability rate^2, as independent draws are, and so are columns of neighbouring hashes."""
    rate, rows, columns = 0.1, 4096, 512
    dropped = ~np.asarray(dropout.keep_mask(KEY, rate, (rows, columns)))
    p = dropout.drop_threshold(rate) / 2**16
    first = dropped[:, 0 :: dropout.DRAWS_PER_HASH]
    for other in (1, 2, 3, 4):  # the same hash's other three draws, then the next hash's first
        both = (
            first[:, : columns // 4 - 1]
            & dropped[:, other :: dropout.DRAWS_PER_HASH][:, : columns // 4 - 1]
        )
        assert abs(both.mean() - p * p) < five_sigma(p * p, both.size), other


def test_mask_is_keyed_and_differs_between_rows():
    shape = (8, 256)
    a = np.asarray(dropout.keep_mask(KEY, 0.5, shape))
    assert np.array_equal(a, np.asarray(dropout.keep_mask(KEY, 0.5, shape)))
    assert not np.array_equal(a, np.asarray(dropout.keep_mask(jax.random.key(8), 0.5, shape)))
    assert not np.array_equal(a[0], a[1])


def test_odd_last_axis_and_one_dimensional_shapes():
    for shape in ((3, 130), (1001,)):
        keep = np.asarray(dropout.keep_mask(KEY, 0.25, shape))
        assert keep.shape == shape
        assert abs((1 - keep.mean()) - 0.25) < five_sigma(0.25, keep.size)


def test_dropout_zeroes_and_scales():
    x = jnp.full((128, 1024), 2.0)
    y = np.asarray(dropout.dropout(x, 0.1, KEY))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / 0.9, rtol=1e-6)
    assert abs(y.mean() - 2.0) < 2.0 * five_sigma(0.1, y.size) / 0.9
    assert dropout.dropout(x, 0.0, KEY) is x


def test_module_is_identity_when_deterministic_and_needs_rngs_otherwise():
    layer = dropout.Dropout(0.1)
    x = jnp.ones((4, 8))
    assert layer(x, deterministic=True) is x
    with pytest.raises(ValueError, match="rngs"):
        layer(x, deterministic=False)
    y = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
    assert y.shape == x.shape and bool(jnp.any(y == 0))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            dropout.Dropout(bad)


def test_same_mask_on_a_sharded_array():
    """The mask depends on positions, not on the mesh: rows split over 8 devices give the mask
    of the whole array."""
    devices = np.array(jax.devices()[:8])
    if devices.size < 2:
        pytest.skip("needs several devices (tests/conftest.py forces 8 CPU devices)")
    shape = (16, 4, 32, 64)
    whole = jax.jit(lambda key: dropout.keep_mask(key, 0.1, shape))(KEY)
    mesh = Mesh(devices, ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    sharded = jax.jit(lambda key: dropout.keep_mask(key, 0.1, shape), out_shardings=sharding)(KEY)
    assert len(sharded.sharding.device_set) == devices.size
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(whole))
