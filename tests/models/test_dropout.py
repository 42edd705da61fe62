"""Dropout (bertjax/models/dropout.py) on both paths: the plain path is `nnx.Dropout`'s
computation bit for bit; the CPU path (16-bit draws, tests/models/test_cpu_kernels.py) keeps
elements with the same probability but from other random bits. Rate, scaling, keying, the
module's calling convention and the same mask on any mesh, for each path."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bertjax.models import dropout

KEY = jax.random.key(7)
PATHS = {"cpu": True, "plain": False}  # use_cpu_kernels


def five_sigma(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


def test_plain_path_is_nnx_dropout():
    x = jax.random.normal(jax.random.key(0), (8, 16, 64))
    ours = dropout.dropout(x, 0.1, KEY, use_cpu_kernels=False)
    theirs = nnx.Dropout(0.1)(x, deterministic=False, rngs=KEY)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_drop_fraction_and_scale_are_the_same_on_both_paths(path):
    """Each path drops `rate` of an attention-probabilities-sized array (4.2 M draws; within 5
    sigma) and scales the kept elements by 1 / (1 - rate)."""
    x = jnp.full((64, 4, 128, 128), 2.0)
    y = np.asarray(dropout.dropout(x, 0.1, KEY, use_cpu_kernels=PATHS[path]))
    kept = y != 0
    assert abs((1 - kept.mean()) - 0.1) < five_sigma(0.1, y.size)
    np.testing.assert_allclose(y[kept], 2.0 / 0.9, rtol=1e-6)
    assert dropout.dropout(x, 0.0, KEY, use_cpu_kernels=PATHS[path]) is x


def test_the_two_paths_draw_different_bits():
    """Same statistics (above), not the same masks: a run on CPU and one on GPU drop different
    elements for the same key."""
    x = jnp.ones((64, 256))
    cpu, plain = (dropout.dropout(x, 0.5, KEY, use_cpu_kernels=use) for use in (True, False))
    assert not np.array_equal(cpu, plain)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_mask_is_keyed(path):
    x = jnp.ones((8, 256))
    use = PATHS[path]
    a = np.asarray(dropout.dropout(x, 0.5, KEY, use_cpu_kernels=use))
    np.testing.assert_array_equal(a, dropout.dropout(x, 0.5, KEY, use_cpu_kernels=use))
    other = dropout.dropout(x, 0.5, jax.random.key(8), use_cpu_kernels=use)
    assert not np.array_equal(a, other)
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("path", sorted(PATHS))
def test_module_is_identity_when_deterministic_and_needs_rngs_otherwise(path):
    layer = dropout.Dropout(0.1, use_cpu_kernels=PATHS[path])
    x = jnp.ones((4, 8))
    assert layer(x, deterministic=True) is x
    with pytest.raises(ValueError, match="rngs"):
        layer(x, deterministic=False)
    y = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=0))
    assert y.shape == x.shape and bool(jnp.any(y == 0))
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            dropout.Dropout(bad)


@pytest.mark.multi_device
@pytest.mark.parametrize("path", sorted(PATHS))
def test_same_mask_on_a_sharded_array(path):
    """The mask depends on positions, not on the mesh: rows split over 8 devices give the mask
    of the whole array (JAX's partitionable Threefry on the plain path, the counters of
    `cpu_kernels.random_draws_16bit` on the CPU path)."""
    devices = np.array(jax.devices()[:8])
    if devices.size < 2:
        pytest.skip("needs several devices (XLA_FLAGS set to fewer than the suite's 8)")
    x = jnp.ones((16, 4, 32, 64))

    def drop(key):
        return dropout.dropout(x, 0.1, key, use_cpu_kernels=PATHS[path])

    whole = jax.jit(drop)(KEY)
    sharding = NamedSharding(Mesh(devices, ("data",)), PartitionSpec("data"))
    sharded = jax.jit(drop, out_shardings=sharding)(KEY)
    assert len(sharded.sharding.device_set) == devices.size
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(whole))
