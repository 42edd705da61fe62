"""Dropout whose mask takes 16 random bits per element: four elements per Threefry hash.

`jax.random.bernoulli` draws a 32-bit word per element, and under the partitionable Threefry
(JAX's default) every word costs one Threefry-2x32 hash, whose 64 output bits are XORed down to
32. On CPU those hashes and the uniform conversion were ~7% of BERT-mini's train step
(docs/performance.md). Here each hash's 64 bits are four 16-bit draws, and an element is kept
when its draw is >= round(rate * 2^16), so the drop probability is `rate` to within 2^-17.
Kept elements are multiplied by 1 / (1 - rate).

The counter of each hash is (index along axis 0, linear index over the other axes), like JAX's own
partitionable Threefry, so the mask of a sharded array is the mask of the whole array, computed
where each shard lives, and does not depend on the mesh.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend.random import threefry2x32_p

DRAWS_PER_HASH = 4  # a Threefry-2x32 hash gives 64 bits: four 16-bit draws
_DRAW_LEVELS = 2**16


def drop_threshold(rate: float) -> int:
    """16-bit draws below this are dropped: round(rate * 2^16)."""
    threshold = round(rate * _DRAW_LEVELS) if 0.0 <= rate < 1.0 else -1
    if not 0 <= threshold < _DRAW_LEVELS:
        raise ValueError(f"dropout rate must be in [0, 1) and below 1 - 2^-17, got {rate}")
    return threshold


def _counters(shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """uint32 counter words of every position of `shape`: (index along axis 0, linear index over
    the remaining axes). Built from iotas, so each shard computes its own part."""
    if len(shape) == 1:
        return jnp.zeros(shape, jnp.uint32), jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    if math.prod(shape[1:]) >= 2**32:
        raise ValueError(f"dropout mask of shape {shape}: more than 2^32 draws per row")
    linear = jnp.zeros(shape, jnp.uint32)
    for axis in range(1, len(shape)):
        stride = math.prod(shape[axis + 1 :])
        linear = linear + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    return jax.lax.broadcasted_iota(jnp.uint32, shape, 0), linear


def random_draws_16bit(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint16 array of `shape`, uniform and independent, four draws per Threefry-2x32 hash:
    hash g of a row gives the draws of columns 4g to 4g + 3."""
    # Two 32-bit key words from any PRNG implementation's key.
    key_words = jax.random.bits(key, (2,), jnp.uint32)
    last = shape[-1]
    hashes = -(-last // DRAWS_PER_HASH)
    counter_hi, counter_lo = _counters((*shape[:-1], hashes))
    bits_a, bits_b = threefry2x32_p.bind(key_words[0], key_words[1], counter_hi, counter_lo)
    words = jnp.stack([bits_a, bits_b], axis=-1)  # [..., hashes, 2] uint32
    draws = jax.lax.bitcast_convert_type(words, jnp.uint16)  # [..., hashes, 2, 2]
    return draws.reshape(*shape[:-1], hashes * DRAWS_PER_HASH)[..., :last]


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
    """Boolean mask of `shape`, each entry False with probability `rate` (within 2^-17)."""
    return random_draws_16bit(key, shape) >= jnp.uint16(drop_threshold(rate))


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Zeroes each element of `x` with probability `rate`, scales the others by 1 / (1 - rate)."""
    if rate == 0.0:
        return x
    keep = keep_mask(key, rate, x.shape)
    return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


class Dropout(nnx.Module):
    """`nnx.Dropout`'s calling convention (`deterministic=`, `rngs=` with a 'dropout' stream) on
    the 16-bit mask above."""

    def __init__(self, rate: float):
        drop_threshold(rate)  # validates
        self.rate = rate

    def __call__(
        self, x: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        if rngs is None:
            raise ValueError("dropout needs rngs=nnx.Rngs(dropout=key) at call time")
        return dropout(x, self.rate, rngs.dropout())
