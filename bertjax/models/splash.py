"""Splash attention: the Pallas TPU flash-attention kernel of
`jax.experimental.pallas.ops.tpu.splash_attention`, for BERT's bidirectional attention.

The kernel's static mask is a `FullMask` (every token may attend to every token); bertjax's
per-example boolean mask (key padding [B, 1, 1, L], or padding and documents [B, 1, L, L] for
packed rows) becomes splash `SegmentIds`: a query attends to a key exactly when their ids are
equal. The kernel does not scale the logits, so queries are scaled by 1/sqrt(D) first. It runs
on one example's [N, L, D] (vmapped over the batch); under a mesh it is `jax.shard_map`ped over
the mesh axes that the logical rules give 'batch' and 'heads'. The sequence length must be a
multiple of 128 (the kernel's lane width; blocks of 512, 256 or 128 tokens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.experimental.pallas.ops.tpu import splash_attention as splash

from bertjax.errors import UserError

BLOCK_SIZES = (512, 256, 128)  # largest first; segment ids need multiples of the 128 lanes
ACTIVATION_AXES = ("batch", "length", "heads", "kv")  # the logical names of q, k, v [B, L, N, D]
# Pallas interpret mode: the kernel runs on any backend (slowly). Tests set it to run on CPU;
# not a config field, because no real run wants it.
INTERPRET = False


def splash_block_size(seq_len: int) -> int | None:
    """The largest block in BLOCK_SIZES that divides `seq_len`; None when splash cannot run."""
    return next((block for block in BLOCK_SIZES if seq_len % block == 0), None)


def mask_segment_ids(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Boolean mask [B, 1, 1, L] or [B, 1, L, L] -> (query ids, key ids), each [B, L] int32, with
    `query_ids[b, t] == key_ids[b, s]` exactly where `mask[b, 0, t, s]` (broadcast over t) on
    every query row that sees some key.

    Exact for the masks the model builds: key padding, and `real[s] & document[t] == document[s]`
    (a query's id is the first key it sees, a key's id that of the first query that sees it).
    Splash needs no empty rows (its gradient is wrong there), so a row that sees no key (padding
    in packed rows) sees the keys no row sees (padding) instead; the loss never reads those rows.
    """
    if mask.shape[2] == 1:  # key padding only: every query sees the same keys
        keys = mask[:, 0, 0, :]
        query_ids = jnp.broadcast_to(jnp.where(keys.any(axis=1, keepdims=True), 0, -1), keys.shape)
        return query_ids.astype(jnp.int32), jnp.where(keys, 0, -1).astype(jnp.int32)
    allowed = mask[:, 0]  # [B, L queries, L keys]
    first_key = jnp.argmax(allowed.astype(jnp.int8), axis=2)  # [B, L queries]
    query_ids = jnp.where(allowed.any(axis=2), first_key, -1)
    first_query = jnp.argmax(allowed.astype(jnp.int8), axis=1)  # [B, L keys]
    key_ids = jnp.take_along_axis(query_ids, first_query, axis=1)
    key_ids = jnp.where(allowed.any(axis=1), key_ids, -1)
    return query_ids.astype(jnp.int32), key_ids.astype(jnp.int32)


def check_splash(backend: str, seq_len: int, *, interpret: bool = False) -> None:
    """Raises UserError (one line) when the splash kernel cannot run this case."""
    if backend != "tpu" and not interpret:
        raise UserError(
            f"attention_implementation='splash' runs only on TPU (this backend is {backend}); "
            "use attention_implementation='auto' or 'xla'"
        )
    if splash_block_size(seq_len) is None:
        raise UserError(
            f"attention_implementation='splash' needs a sequence length that is a multiple of "
            f"128, got {seq_len}; set --config.max_seq_length to one or use 'auto'/'xla'"
        )


def _kernel(num_heads: int, seq_len: int) -> splash.SplashAttentionKernel:
    block = splash_block_size(seq_len)
    sizes = splash.BlockSizes(
        block_q=block, block_kv=block, block_kv_compute=block,
        block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
        block_q_dq=block, block_kv_dq=block,
    )  # fmt: skip
    mask = splash.MultiHeadMask((splash.FullMask((seq_len, seq_len)),) * num_heads)
    return splash.make_splash_mha(
        mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=INTERPRET
    )


def _local_attention(
    query: jax.Array, key: jax.Array, value: jax.Array, query_ids: jax.Array, key_ids: jax.Array
) -> jax.Array:
    """Splash on the arrays one device holds: [B, L, N, D] each, ids [B, L] -> [B, L, N, D]."""
    _, seq_len, heads, head_size = query.shape
    kernel = _kernel(heads, seq_len)
    query = query * jnp.asarray(head_size**-0.5, query.dtype)

    def one_example(q, k, v, q_ids, k_ids):  # [N, L, D] each, ids [L]
        return kernel(q, k, v, segment_ids=splash.SegmentIds(q=q_ids, kv=k_ids))

    heads_first = [jnp.swapaxes(x, 1, 2) for x in (query, key, value)]
    return jnp.swapaxes(jax.vmap(one_example)(*heads_first, query_ids, key_ids), 1, 2)


def splash_attention(
    query: jax.Array, key: jax.Array, value: jax.Array, mask: jax.Array
) -> jax.Array:
    """softmax(q k^T / sqrt(D)) v with the splash kernel; q, k, v [B, L, N, D], boolean mask
    [B, 1, 1, L] or [B, 1, L, L] -> [B, L, N, D]. UserError when the case cannot use splash."""
    check_splash(jax.default_backend(), query.shape[1], interpret=INTERPRET)
    query_ids, key_ids = mask_segment_ids(mask)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        return _local_attention(query, key, value, query_ids, key_ids)
    spec = nn.logical_to_mesh_axes(ACTIVATION_AXES)  # under the caller's logical axis rules
    if spec[1] is not None or spec[3] is not None:
        raise UserError(
            f"attention_implementation='splash' shards only 'batch' and 'heads', but the "
            f"logical axis rules put q/k/v on {spec}; map 'length' and 'kv' to None or use 'xla'"
        )
    ids_spec = jax.sharding.PartitionSpec(spec[0], None)
    sharded = jax.shard_map(
        _local_attention,
        mesh=mesh,
        in_specs=(spec, spec, spec, ids_spec, ids_spec),
        out_specs=spec,
        check_vma=False,
    )
    return sharded(query, key, value, query_ids, key_ids)
