"""CPU variants of four model operations, used only when the model runs on XLA:CPU.

Each computes what a plain library operation computes, in a form that XLA:CPU runs faster; on
GPU and TPU the model runs the plain operation instead (`nnx.Linear` / `nnx.LinearGeneral` on
[B, L, ...], `jax.random.bernoulli`, `logits + bias` with autodiff), which those compilers fuse
and lay out themselves. `BertConfig.use_cpu_kernels` chooses: None (the default) takes these
exactly when `jax.default_backend()` is 'cpu', decided at trace time as
`attention.choose_attention_implementation` decides the attention kernel; True or False forces
them (the tests run both paths on CPU). Measurements: docs/performance.md, "CPU kernels".

1. Dropout masks from 16-bit draws (`dropout_16bit`). `jax.random.bernoulli` draws a 32-bit word
   per element, and under the partitionable Threefry (JAX's default) each word costs one
   Threefry-2x32 hash whose 64 output bits are XORed down to 32; on XLA:CPU those hashes are a
   visible part of the step. Here each hash's 64 bits are four 16-bit draws, and an element is
   kept when its draw is >= round(rate * 2^16), so the drop probability is `rate` to within
   2^-17. The counter of each hash is (index along axis 0, linear index over the other axes),
   like JAX's own partitionable Threefry, so a sharded array's mask is the whole array's mask.
   Same keep probability as `jax.random.bernoulli`, not the same bits.
2. Matmuls on rows (`on_rows`, `qkv_on_rows`, `merge_heads_on_rows`, `vocab_logits_on_rows`): the
   input is reshaped (free) to [prod(leading axes), in] first. On [B, L, in] the weight gradient
   contracts two axes and XLA:CPU first copies the activation gradient into a transposed
   [in, B*L] array with a slow 3-D transpose fusion; on rows it is one matmul with a transposed
   operand. Same values as the layers they stand for, within float rounding.
3. Query, key and value as one matmul against the three kernels stacked to [H, N, 3, D]: one wide
   matmul and one input gradient instead of three thin ones. The heads axis stays the major part
   of the merged [N*3*D] axis, so heads sharded over 'tensor' stay split the same way.
4. The vocabulary-bias gradient as a matmul (`add_vocab_bias`): the bias gradient sums the logits'
   gradient over every position, and XLA:CPU runs that reduce over the leading axes of a
   [positions, V] array far slower than the same sum as a ones-vector matmul.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.random import threefry2x32_p


def active(use_cpu_kernels: bool | None) -> bool:
    """Whether to run the CPU variants: the setting when given, else whether the default
    backend is the CPU (call it while tracing, as the model does)."""
    if use_cpu_kernels is None:
        return jax.default_backend() == "cpu"
    return bool(use_cpu_kernels)


# --- 1. Dropout masks from 16-bit draws -----------------------------------------------------

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


def dropout_16bit(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Zeroes each element of `x` with probability `rate`, scales the others by 1 / (1 - rate)."""
    keep = keep_mask(key, rate, x.shape)
    return jnp.where(keep, x * jnp.asarray(1.0 / (1.0 - rate), x.dtype), jnp.zeros((), x.dtype))


# --- 2, 3. Matmuls on rows --------------------------------------------------------------------


def on_rows(layer: Callable[[jax.Array], jax.Array], inputs: jax.Array) -> jax.Array:
    """`layer` (a dense layer on the last axis) applied to `inputs` [..., in] flattened to rows
    [prod(...), in], then shaped back to [..., out]."""
    rows = layer(inputs.reshape(-1, inputs.shape[-1]))
    return rows.reshape(*inputs.shape[:-1], rows.shape[-1])


def qkv_on_rows(
    hidden_states: jax.Array, kernels: Sequence[jax.Array], biases: Sequence[jax.Array], dtype: Any
) -> tuple[jax.Array, ...]:
    """[B, L, H] hidden states, three kernels [H, N, D] and biases [N, D] -> query, key, value
    [B, L, N, D], as one [B*L, H] x [H, N*3*D] matmul against the kernels stacked to
    [H, N, 3, D]."""
    kernel = jnp.stack(kernels, axis=2).astype(dtype)
    bias = jnp.stack(biases, axis=1).astype(dtype)
    batch, length, hidden = hidden_states.shape
    rows = hidden_states.reshape(batch * length, hidden).astype(dtype)
    stacked = rows @ kernel.reshape(hidden, -1) + bias.reshape(-1)
    stacked = stacked.reshape(batch, length, *kernel.shape[1:])  # [B, L, N, 3, D]
    return tuple(stacked[:, :, :, i] for i in range(len(kernels)))


def merge_heads_on_rows(
    context: jax.Array, kernel: jax.Array, bias: jax.Array, dtype: Any
) -> jax.Array:
    """Context [B, L, N, D], kernel [N, D, H], bias [H] -> [B, L, H], as one
    [B*L, N*D] x [N*D, H] matmul."""
    batch, length, heads, head_size = context.shape
    kernel = kernel.reshape(heads * head_size, -1).astype(dtype)
    rows = context.reshape(batch * length, heads * head_size).astype(dtype) @ kernel
    return (rows + bias.astype(dtype)).reshape(batch, length, -1)


def vocab_logits_on_rows(
    hidden_states: jax.Array, word_embeddings: jax.Array, bias: jax.Array
) -> jax.Array:
    """[..., H] hidden states (compute dtype), [V, H] table (compute dtype), [V] bias -> logits
    [..., V] float32, on rows [positions, H], with the bias added by `add_vocab_bias`."""
    logits = jnp.einsum(
        "ph,vh->pv",
        hidden_states.reshape(-1, hidden_states.shape[-1]),
        word_embeddings,
        preferred_element_type=jnp.float32,
    )
    logits = add_vocab_bias(logits, bias)
    return logits.reshape(*hidden_states.shape[:-1], logits.shape[-1])


# --- 4. The vocabulary-bias gradient as a matmul ----------------------------------------------


@jax.custom_vjp
def add_vocab_bias(logits: jax.Array, bias: jax.Array) -> jax.Array:
    """logits [..., V] + bias [V]; the bias gradient (the logits' gradient summed over every
    position) is computed as a ones-vector matmul instead of a reduce."""
    return logits + bias


def _add_vocab_bias_fwd(logits, bias):
    return logits + bias, None


def _add_vocab_bias_bwd(_, grad):
    rows = grad.reshape(-1, grad.shape[-1])
    return grad, jnp.ones((rows.shape[0],), grad.dtype) @ rows


add_vocab_bias.defvjp(_add_vocab_bias_fwd, _add_vocab_bias_bwd)
