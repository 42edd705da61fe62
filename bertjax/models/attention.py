"""BERT multi-head self-attention: per-head projections, a fused path and an explicit path.

Shapes: B batch, L sequence length, N heads, D head size (hidden / heads), H hidden size.
The fused path is `jax.nn.dot_product_attention` (XLA, or cuDNN flash attention on NVIDIA GPUs)
or the Pallas splash kernel on TPU (bertjax/models/splash.py); `attention_implementation="auto"`
picks one from the backend at trace time (`choose_attention_implementation`). It has no dropout
on attention probabilities, so training with `attention_probs_dropout_prob > 0` takes the
explicit einsum-softmax-dropout path instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.extend.backend
import jax.numpy as jnp
from flax import linen as nn
from flax import nnx

from bertjax.errors import UserError
from bertjax.models import cpu_kernels, dropout, positions, splash

if TYPE_CHECKING:
    from bertjax.models.config import BertConfig


def partitioned(initializer: Any, axes: tuple[str, ...]) -> Any:
    """`initializer` whose parameters carry the logical axis names `axes`. They are placed by the
    caller (jit out_shardings from the names, `bertjax/train_state.py`), never at creation, so
    each parameter says `eager_sharding=False` itself and the model builds with or without a
    mesh, whatever flax's global default is."""
    return nnx.with_partitioning(initializer, axes, eager_sharding=False)


def dense_init(
    config: BertConfig, kernel_axes: tuple[str, ...], bias_axes: tuple[str, ...]
) -> dict[str, Any]:
    """Initialisers of a BERT dense layer: normal(initializer_range) kernel, zero bias, named."""
    return {
        "kernel_init": partitioned(nnx.initializers.normal(config.initializer_range), kernel_axes),
        "bias_init": partitioned(nnx.initializers.zeros_init(), bias_axes),
    }


def layer_norm(config: BertConfig, num_features: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """LayerNorm computed in float32 with scale 1, bias 0, both named ('norm',)."""
    return nnx.LayerNorm(
        num_features,
        epsilon=config.layer_norm_eps,
        dtype=jnp.float32,
        use_fast_variance=False,
        scale_init=partitioned(nnx.initializers.ones_init(), ("norm",)),
        bias_init=partitioned(nnx.initializers.zeros_init(), ("norm",)),
        rngs=rngs,
    )


class Dense(nnx.Linear):
    """`nnx.Linear`, applied on rows [prod(leading axes), in] on XLA:CPU (`cpu_kernels.on_rows`)
    and as it is elsewhere (`use_cpu_kernels` chooses, as in `cpu_kernels.active`). Same
    parameters and values as nnx.Linear."""

    def __init__(self, *args: Any, use_cpu_kernels: bool | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.use_cpu_kernels = use_cpu_kernels

    def __call__(self, inputs: jax.Array) -> jax.Array:
        if cpu_kernels.active(self.use_cpu_kernels):
            return cpu_kernels.on_rows(super().__call__, inputs)
        return super().__call__(inputs)


def padding_mask(input_mask: jax.Array) -> jax.Array:
    """[B, L] 1/0 input mask -> boolean key mask [B, 1, 1, L] (True = may be attended to)."""
    return input_mask[:, None, None, :].astype(bool)


def backend_name() -> str:
    """`jax.default_backend()` ('cpu', 'gpu', 'tpu'), but 'rocm' for AMD GPUs (no cuDNN there)."""
    backend = jax.default_backend()
    if backend == "gpu" and "rocm" in jax.extend.backend.get_backend().platform_version.lower():
        return "rocm"
    return backend


def cudnn_supports(*, head_dim: int, seq_len: int, dtype: Any) -> bool:
    """Whether cuDNN's flash kernel takes this case, as jax checks it (jax/_src/cudnn/
    fused_attention_stablehlo.py): bf16/fp16 inputs, head dim a multiple of 8 and at most 128
    (256 needs Hopper), even sequence length (a mask is a bias there, and training with a bias
    needs one)."""
    half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
    return half and head_dim % 8 == 0 and head_dim <= 128 and seq_len % 2 == 0


def choose_attention_implementation(
    backend: str, *, head_dim: int, seq_len: int, dtype: Any
) -> str:
    """What `attention_implementation="auto"` runs: 'cudnn' on an NVIDIA GPU ('gpu') when
    cuDNN's flash kernel takes the case, 'splash' on TPU when the sequence length is a multiple
    of 128, 'xla' otherwise (CPU, ROCm, float32 on GPU, ...)."""
    if backend == "gpu" and cudnn_supports(head_dim=head_dim, seq_len=seq_len, dtype=dtype):
        return "cudnn"
    if backend == "tpu" and splash.splash_block_size(seq_len) is not None:
        return "splash"
    return "xla"


def cudnn_mask_arguments(mask: jax.Array) -> dict[str, jax.Array]:
    """The mask as cuDNN's path of `jax.nn.dot_product_attention` takes it. cuDNN turns a mask
    into a bias that must cover all [L, L] logits, so a key padding mask [B, 1, 1, L] goes as
    key lengths (its padding is a suffix of each row, as everywhere in bertjax) and a
    [B, 1, L, L] packed-rows mask as it is."""
    if mask.shape[2] == 1:
        return {"key_value_seq_lengths": jnp.sum(mask[:, 0, 0, :], axis=-1, dtype=jnp.int32)}
    return {"mask": mask}


def fused_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    *,
    implementation: str | None = None,
    bias: jax.Array | None = None,
) -> jax.Array:
    """softmax(q k^T / sqrt(D) + bias) v without dropout; q, k, v [B, L, N, D] -> [B, L, N, D].

    `mask` is boolean [B, 1, 1, L] (or [B, 1, L, L] for packed rows); `bias` [B, N, L, L]
    (relative positions) or None. `implementation`: None/'xla', 'cudnn', 'splash', or 'auto'
    (chosen from the backend, shapes and dtype; the splash kernel takes no bias, so 'auto'
    does not choose it then).
    """
    if implementation == "auto":
        implementation = choose_attention_implementation(
            backend_name(), head_dim=query.shape[-1], seq_len=query.shape[1], dtype=query.dtype
        )
        if bias is not None and implementation == "splash":
            implementation = "xla"
    if bias is not None and implementation == "splash":
        raise UserError(
            "attention_implementation='splash' takes no attention bias, which relative positions "
            "need; use attention_implementation='auto' or 'xla' (or rotary positions)"
        )
    if bias is not None:
        bias = bias.astype(query.dtype)
    if implementation == "splash":
        return splash.splash_attention(query, key, value, mask)
    if implementation == "cudnn":
        if backend_name() != "gpu":
            raise UserError(
                f"attention_implementation='cudnn' needs an NVIDIA GPU (this backend is "
                f"{backend_name()}); use attention_implementation='auto' or 'xla'"
            )
        return jax.nn.dot_product_attention(
            query, key, value, bias=bias, implementation="cudnn", **cudnn_mask_arguments(mask)
        )
    return jax.nn.dot_product_attention(
        query, key, value, bias=bias, mask=mask, implementation=implementation
    )


def explicit_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array,
    *,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    bias: jax.Array | None = None,
    use_cpu_kernels: bool | None = None,
) -> jax.Array:
    """The same attention as `fused_attention`, written out so probabilities can be dropped.

    Logits and softmax are float32; probabilities are cast back to the value dtype for the
    second matmul. Dropout is applied when `dropout_key` is given and `dropout_rate > 0`
    (`dropout.dropout`, with `use_cpu_kernels`).
    """
    scale = query.shape[-1] ** -0.5
    logits = jnp.einsum("btnd,bsnd->bnts", query, key, preferred_element_type=jnp.float32)
    logits = logits * jnp.float32(scale)
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    # Same fill value as jax.nn.dot_product_attention, so both paths agree to the last bit.
    logits = jnp.where(mask, logits, -0.7 * jnp.finfo(jnp.float32).max)
    probs = jax.nn.softmax(logits, axis=-1)
    if dropout_key is not None and dropout_rate > 0.0:
        probs = dropout.dropout(probs, dropout_rate, dropout_key, use_cpu_kernels=use_cpu_kernels)
    return jnp.einsum("bnts,bsnd->btnd", probs.astype(value.dtype), value)


def constrain(x: jax.Array, logical_axes: tuple[str, ...]) -> jax.Array:
    """Sharding constraint on an activation by logical axis names, so XLA keeps large activations
    split (batch over data/fsdp, heads or mlp over tensor). A no-op unless the caller set logical
    axis rules and a mesh (the train step does; plain model calls do not)."""
    return nn.with_logical_constraint(x, logical_axes)


class BertSelfAttention(nnx.Module):
    """`attention.self`: per-head query/key/value projections and scaled dot-product attention."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        heads = config.num_attention_heads
        head_size = config.hidden_size // heads
        self.dropout_rate = config.attention_probs_dropout_prob
        self.implementation = config.attention_implementation
        self.use_cpu_kernels = config.use_cpu_kernels

        def projection() -> nnx.LinearGeneral:
            # kernel [H, N, D], bias [N, D]
            return nnx.LinearGeneral(
                config.hidden_size,
                (heads, head_size),
                dtype=jnp.dtype(config.dtype),
                rngs=rngs,
                **dense_init(config, ("embed", "heads", "kv"), ("heads", "kv")),
            )

        self.query = projection()
        self.key = projection()
        self.value = projection()
        self.rope_theta = None
        if config.position_embedding_type == "rotary":
            self.rope_theta = config.rope_theta
        if config.position_embedding_type == "relative_key":
            # Hugging Face's distance_embedding: one vector per distance (query - key) in
            # [-(M - 1), M - 1], shared by the heads; row d + M - 1 holds distance d.
            self.max_positions = config.max_position_embeddings
            self.distance_embedding = nnx.Embed(
                2 * config.max_position_embeddings - 1,
                head_size,
                embedding_init=partitioned(
                    nnx.initializers.normal(config.initializer_range), ("position", "kv")
                ),
                rngs=rngs,
            )
            if config.position_embedding_init == "local":
                self._local_init()

    def _local_init(self) -> None:
        """Relative positions that start as ALiBi's bias (`positions.start_local`)."""
        table, bias, (query, key) = positions.start_local(
            self.distance_embedding.embedding[...],
            self.query.bias[...],
            [self.query.kernel[...], self.key.kernel[...]],
            self.max_positions,
        )
        self.distance_embedding.embedding[...], self.query.bias[...] = table, bias
        self.query.kernel[...], self.key.kernel[...] = query, key

    def position_bias(self, query: jax.Array) -> jax.Array | None:
        """Relative positions: query [B, L, N, D] -> logit bias [B, N, L, L] float32
        (`positions.relative_bias`); None for other position types."""
        if not hasattr(self, "distance_embedding"):
            return None
        table = self.distance_embedding.embedding[...]
        return positions.relative_bias(query, table, self.max_positions)

    def project_qkv(self, hidden_states: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """[B, L, H] -> query, key, value [B, L, N, D]: the three projections, or on XLA:CPU one
        matmul on rows against their kernels stacked (`cpu_kernels.qkv_on_rows`; same values,
        and the parameters stay three, Hugging Face's layout)."""
        projections = (self.query, self.key, self.value)
        if cpu_kernels.active(self.use_cpu_kernels):
            return cpu_kernels.qkv_on_rows(
                hidden_states,
                [p.kernel[...] for p in projections],
                [p.bias[...] for p in projections],
                self.query.dtype,
            )
        return tuple(projection(hidden_states) for projection in projections)

    def __call__(
        self,
        hidden_states: jax.Array,
        mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """[B, L, H] hidden states, [B, 1, 1, L] boolean mask -> context [B, L, N, D]."""
        query, key, value = (
            constrain(projected, ("batch", "length", "heads", "kv"))
            for projected in self.project_qkv(hidden_states)
        )
        if self.rope_theta is not None:
            query, key = (positions.rotate(x, self.rope_theta) for x in (query, key))
        bias = self.position_bias(query)
        if deterministic or self.dropout_rate == 0.0:
            return fused_attention(
                query, key, value, mask, implementation=self.implementation, bias=bias
            )
        if rngs is None:
            raise ValueError("attention dropout needs rngs=nnx.Rngs(dropout=key) at call time")
        return explicit_attention(
            query, key, value, mask, dropout_rate=self.dropout_rate, dropout_key=rngs.dropout(),
            bias=bias, use_cpu_kernels=self.use_cpu_kernels,
        )  # fmt: skip


class BertSelfOutput(nnx.Module):
    """`attention.output`: merge heads with `dense`, dropout, residual, then `LayerNorm` (post-LN
    only; a pre-LN block normalised the attention input in `BertAttention`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        heads = config.num_attention_heads
        # kernel [N, D, H], bias [H]
        self.dense = nnx.LinearGeneral(
            (heads, config.hidden_size // heads),
            config.hidden_size,
            axis=(-2, -1),
            dtype=jnp.dtype(config.dtype),
            rngs=rngs,
            **dense_init(config, ("heads", "kv", "embed"), ("embed",)),
        )
        if config.layer_norm_placement == "post":
            self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.dropout = dropout.Dropout(
            config.hidden_dropout_prob, use_cpu_kernels=config.use_cpu_kernels
        )
        self.use_cpu_kernels = config.use_cpu_kernels

    def __call__(
        self,
        context: jax.Array,
        input_tensor: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Context [B, L, N, D], residual [B, L, H] float32 -> [B, L, H] float32."""
        hidden = self.dropout(self.merge_heads(context), deterministic=deterministic, rngs=rngs)
        hidden = hidden.astype(jnp.float32) + input_tensor
        return self.LayerNorm(hidden) if hasattr(self, "LayerNorm") else hidden

    def merge_heads(self, context: jax.Array) -> jax.Array:
        """`dense` on [B, L, N, D] context -> [B, L, H]; on XLA:CPU on rows
        (`cpu_kernels.merge_heads_on_rows`: [B*L, N*D] x [N*D, H])."""
        if cpu_kernels.active(self.use_cpu_kernels):
            return cpu_kernels.merge_heads_on_rows(
                context, self.dense.kernel[...], self.dense.bias[...], self.dense.dtype
            )
        return self.dense(context)


def mimetic_factors(
    key: jax.Array, size: int, alpha: float, beta: float
) -> tuple[jax.Array, jax.Array]:
    """A, B [size, size] with A @ B.T = alpha * Z + beta * I, Z ~ N(0, 1/size): the factors of
    mimetic initialisation (Trockman & Kolter, 2023), from the SVD of the target product."""
    target = alpha * jax.random.normal(key, (size, size)) / size**0.5 + beta * jnp.eye(size)
    u, s, vt = jnp.linalg.svd(target)
    return u * jnp.sqrt(s), vt.T * jnp.sqrt(s)


class BertAttention(nnx.Module):
    """`layer[i].attention`: `self` (multi-head attention) then `output` (projection, residual,
    post-LN); pre-LN blocks normalise the input first (`LayerNorm`, where Hugging Face's
    RobertaPreLayerNorm has it) and add the residual unnormalised."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        if config.layer_norm_placement == "pre":
            self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.self = BertSelfAttention(config, rngs=rngs)
        self.output = BertSelfOutput(config, rngs=rngs)
        if config.attention_init == "mimetic":
            self._mimetic_init(config, rngs)

    def _mimetic_init(self, config: BertConfig, rngs: nnx.Rngs) -> None:
        """Query/key kernels with Wq Wk^T ~ 0.7 Z + 0.7 I (every token attends to tokens like
        itself and, through the position embeddings, to its neighbours) and value/output with
        Wv Wo ~ 0.4 Z - 0.4 I, the products pretrained attention layers show."""
        hidden = config.hidden_size
        shape = self.self.query.kernel[...].shape  # [H, N, D]
        q, k = mimetic_factors(rngs.params(), hidden, 0.7, 0.7)
        v, o = mimetic_factors(rngs.params(), hidden, 0.4, -0.4)
        self.self.query.kernel[...] = q.reshape(shape)
        self.self.key.kernel[...] = k.reshape(shape)
        self.self.value.kernel[...] = v.reshape(shape)
        self.output.dense.kernel[...] = o.T.reshape(self.output.dense.kernel[...].shape)

    def __call__(
        self,
        hidden_states: jax.Array,
        mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """[B, L, H] float32, [B, 1, 1, L] mask -> [B, L, H] float32."""
        normed = self.LayerNorm(hidden_states) if hasattr(self, "LayerNorm") else hidden_states
        context = self.self(normed, mask, deterministic=deterministic, rngs=rngs)
        return self.output(context, hidden_states, deterministic=deterministic, rngs=rngs)
