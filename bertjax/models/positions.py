"""How attention knows positions, beyond BERT's absolute table (which the embeddings add):

* relative_key (Shaw et al. 2018, Huang et al. 2020; Hugging Face's BertConfig names it): a vector
  per query-key distance, shared by the heads; the query's dot product with it is added to the
  logits (`relative_bias`), optionally starting as ALiBi's bias (`start_local`);
* rotary (RoPE; Su et al. 2021, RoFormer): each pair of query and key components is rotated by an
  angle proportional to the token's position (`rotate`), so their dot product depends on the
  distance alone. No parameters; the logits stay a plain q k^T, so every fused attention kernel
  (cuDNN flash attention, splash) takes it, where relative_key needs a bias they do not all take.

Shapes: B batch, L sequence length, N heads, D head size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LOCAL_ALPHA = 0.1  # the distance vectors' component 0 starts at -LOCAL_ALPHA * |distance|


def relative_bias(query: jax.Array, table: jax.Array, max_positions: int) -> jax.Array:
    """query [B, L, N, D], distance table [2M - 1, D] (row d + M - 1 holds distance d) -> logit
    bias [B, N, L, L] float32: Hugging Face's q . distance_embedding[i - j], scaled like the
    logits."""
    length = query.shape[1]
    positions = jnp.arange(length)
    distances = positions[:, None] - positions[None, :] + max_positions - 1
    vectors = table[distances].astype(query.dtype)
    scores = jnp.einsum("blnd,lrd->bnlr", query, vectors, preferred_element_type=jnp.float32)
    return scores * jnp.float32(query.shape[-1] ** -0.5)


def start_local(
    table: jax.Array, query_bias: jax.Array, kernels: list[jax.Array], max_positions: int
) -> tuple[jax.Array, jax.Array, list[jax.Array]]:
    """Relative positions that start as ALiBi's bias (Press et al. 2022): head h adds
    -slope_h * |i - j| to its logits, slope_h = 2^(-8 (h + 1) / N). Component 0 of every head
    carries it: distance vector d holds -LOCAL_ALPHA * |d| there, the query bias [N, D] slope_h *
    sqrt(D) / LOCAL_ALPHA, and the query and key kernels [H, N, D] start with that component
    zeroed, so content and position do not mix at the start. Returns the three updated."""
    heads, head_size = query_bias.shape
    distances = jnp.abs(jnp.arange(table.shape[0]) - (max_positions - 1))
    slopes = 2.0 ** (-8.0 * (jnp.arange(heads) + 1) / heads)
    return (
        table.at[:, 0].set(-LOCAL_ALPHA * distances),
        query_bias.at[:, 0].set(slopes * head_size**0.5 / LOCAL_ALPHA),
        [kernel.at[:, :, 0].set(0.0) for kernel in kernels],
    )


def rotation_angles(length: int, head_size: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [L, D / 2] float32 of the angles p * theta^(-2i / D): position p, pair i.
    Computed in float64 with numpy at trace time (the shapes are static), as Hugging Face's
    RoFormer builds its table, so the angles of long positions keep their precision."""
    exponents = np.arange(0, head_size, 2, dtype=np.float64) / head_size
    angles = np.arange(length, dtype=np.float64)[:, None] / np.power(theta, exponents)[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rotate(x: jax.Array, theta: float) -> jax.Array:
    """Rotary position embedding of x [B, L, N, D] at positions 0..L-1: each adjacent pair
    (x_2i, x_2i+1) is rotated by p * theta^(-2i / D), RoFormer's layout (Hugging Face's
    `apply_rotary_position_embeddings`). Computed in float32, returned in x's dtype. Packed rows
    need no restart per document: a rotated q . k depends on i - j only, and attention across
    documents is masked."""
    cos, sin = rotation_angles(x.shape[1], x.shape[-1], theta)
    cos, sin = cos[:, None, :], sin[:, None, :]  # [L, 1, D / 2]: every head alike
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, odd * cos + even * sin], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)
