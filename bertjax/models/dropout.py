"""Dropout: `jax.random.bernoulli` masks (what `nnx.Dropout` computes) on GPU and TPU, and on
XLA:CPU masks from 16-bit draws (`cpu_kernels.dropout_16bit`: the same keep probability from a
quarter of the Threefry hashes, other random bits). `use_cpu_kernels` chooses, as in
`cpu_kernels.active`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from bertjax.models import cpu_kernels


def bernoulli_dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """`nnx.Dropout`'s computation: keep each element with probability 1 - rate (a
    `jax.random.bernoulli` draw per element) and divide the kept ones by 1 - rate."""
    keep_prob = 1.0 - rate
    keep = jax.random.bernoulli(key, p=keep_prob, shape=x.shape)
    return jax.lax.select(keep, x / keep_prob, jnp.zeros_like(x))


def dropout(
    x: jax.Array, rate: float, key: jax.Array, *, use_cpu_kernels: bool | None = None
) -> jax.Array:
    """Zeroes each element of `x` with probability `rate`, scales the others by 1 / (1 - rate)."""
    if rate == 0.0:
        return x
    if cpu_kernels.active(use_cpu_kernels):
        return cpu_kernels.dropout_16bit(x, rate, key)
    return bernoulli_dropout(x, rate, key)


class Dropout(nnx.Module):
    """`nnx.Dropout`'s calling convention (`deterministic=`, `rngs=` with a 'dropout' stream),
    on `dropout` above."""

    def __init__(self, rate: float, *, use_cpu_kernels: bool | None = None):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.use_cpu_kernels = use_cpu_kernels

    def __call__(
        self, x: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        if rngs is None:
            raise ValueError("dropout needs rngs=nnx.Rngs(dropout=key) at call time")
        return dropout(x, self.rate, rngs.dropout(), use_cpu_kernels=self.use_cpu_kernels)
