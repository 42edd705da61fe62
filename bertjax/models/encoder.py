"""The BERT encoder: embeddings and the stack of post-LN (or pre-LN) Transformer layers (unrolled,
or scanned over a leading layer axis with `scan_layers`), and conversion between the two layouts.

Attribute names follow Hugging Face (`embeddings`, `encoder.layer.<i>.attention...`); see
`bertjax/models/bert.py` for the whole model and its heads.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bertjax.errors import UserError
from bertjax.models.attention import (
    BertAttention,
    Dense,
    constrain,
    dense_init,
    layer_norm,
    partitioned,
)
from bertjax.models.config import REMAT_POLICIES, BertConfig
from bertjax.models.dropout import Dropout


def _dense(
    config: BertConfig,
    in_features: int,
    out_features: int,
    axes: tuple[str, str],
    rngs: nnx.Rngs,
    dtype: Any = None,
) -> Dense:
    """`Dense` (nnx.Linear; on rows on XLA:CPU), BERT initialisation, kernel axes `axes`, bias
    `axes[1:]`."""
    return Dense(
        in_features,
        out_features,
        dtype=jnp.dtype(dtype or config.dtype),
        rngs=rngs,
        use_cpu_kernels=config.use_cpu_kernels,
        **dense_init(config, axes, axes[1:]),
    )


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, x * Phi(x), written as Hugging Face's and Google's BERT write it:
    0.5 * x * (1 + erf(x / sqrt(2))). Equal to `jax.nn.gelu(x, approximate=False)` (which uses
    erfc) within 1e-6; XLA:CPU runs erf faster than erfc (docs/performance.md)."""
    return x * 0.5 * (1.0 + jax.lax.erf(x * jnp.asarray(0.5**0.5, x.dtype)))


def _embed(
    config: BertConfig, num: int, axes: tuple[str, str], rngs: nnx.Rngs, init: Any = None
) -> nnx.Embed:
    init = partitioned(init or nnx.initializers.normal(config.initializer_range), axes)
    return nnx.Embed(num, config.embedding_width, embedding_init=init, rngs=rngs)


def sinusoidal_init(scale: float):
    """Initialiser of a [positions, H] table with Vaswani et al.'s sinusoids (sin on even
    columns, cos on odd ones, wavelengths 2*pi .. 10000*2*pi), times `scale`."""

    def init(key, shape, dtype=jnp.float32):
        del key
        positions, hidden = shape
        frequencies = 10000.0 ** (-jnp.arange(0, hidden, 2, dtype=jnp.float32) / hidden)
        angles = jnp.arange(positions, dtype=jnp.float32)[:, None] * frequencies[None, :]
        table = jnp.zeros(shape, jnp.float32)
        table = table.at[:, 0::2].set(jnp.sin(angles)[:, : (hidden + 1) // 2])
        table = table.at[:, 1::2].set(jnp.cos(angles)[:, : hidden // 2])
        return (scale * table).astype(dtype)

    return init


class BertEmbeddings(nnx.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout; `embedding_width`
    wide (BertModel projects them to the hidden size when that differs)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.word_embeddings = _embed(config, config.vocab_size, ("vocab", "embed"), rngs)
        self.max_positions = config.max_position_embeddings
        if config.position_embedding_type == "absolute":
            position_init = None
            if config.position_embedding_init == "sinusoidal":
                # Entries of a sinusoid table have RMS 1/sqrt(2): scaled to N(0, range)'s RMS.
                position_init = sinusoidal_init(config.initializer_range * 2**0.5)
            self.position_embeddings = _embed(
                config, config.max_position_embeddings, ("position", "embed"), rngs, position_init
            )
        self.token_type_embeddings = _embed(
            config, config.type_vocab_size, ("type_vocab", "embed"), rngs
        )
        self.LayerNorm = layer_norm(config, config.embedding_width, rngs)
        self.dropout = Dropout(config.hidden_dropout_prob, use_cpu_kernels=config.use_cpu_kernels)

    def __call__(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Token ids [B, L], segment ids [B, L] -> embeddings [B, L, E] float32 (E: the
        embedding width)."""
        if input_ids.shape[1] > self.max_positions:
            raise UserError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                f"{self.max_positions}; lower --config.max_seq_length"
            )
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(segment_ids)
        if hasattr(self, "position_embeddings"):  # absolute positions
            embeddings += self.position_embeddings(jnp.arange(input_ids.shape[1])[None, :])
        embeddings = self.LayerNorm(embeddings)
        embeddings = self.dropout(embeddings, deterministic=deterministic, rngs=rngs)
        return constrain(embeddings, ("batch", "length", "embed"))


class BertIntermediate(nnx.Module):
    """`intermediate`: H -> intermediate_size projection with exact GELU; pre-LN blocks
    normalise its input first (`LayerNorm`, Hugging Face RobertaPreLayerNorm's place)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        if config.layer_norm_placement == "pre":
            self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.dense = _dense(
            config, config.hidden_size, config.intermediate_size, ("embed", "mlp"), rngs
        )

    def __call__(self, hidden_states: jax.Array) -> jax.Array:
        """[B, L, H] -> [B, L, intermediate_size] in the compute dtype."""
        if hasattr(self, "LayerNorm"):
            hidden_states = self.LayerNorm(hidden_states)
        intermediate = gelu(self.dense(hidden_states))
        return constrain(intermediate, ("batch", "length", "mlp"))


class BertOutput(nnx.Module):
    """`output`: intermediate_size -> H projection, dropout, residual, then LayerNorm (post-LN
    only; a pre-LN block normalised its input in `BertIntermediate`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(
            config, config.intermediate_size, config.hidden_size, ("mlp", "embed"), rngs
        )
        if config.layer_norm_placement == "post":
            self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.dropout = Dropout(config.hidden_dropout_prob, use_cpu_kernels=config.use_cpu_kernels)

    def __call__(
        self,
        intermediate: jax.Array,
        input_tensor: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """[B, L, intermediate_size], residual [B, L, H] -> [B, L, H] float32."""
        hidden = self.dropout(self.dense(intermediate), deterministic=deterministic, rngs=rngs)
        hidden = hidden.astype(jnp.float32) + input_tensor
        return self.LayerNorm(hidden) if hasattr(self, "LayerNorm") else hidden


class BertLayer(nnx.Module):
    """`encoder.layer[i]`: self-attention block then feed-forward block, each post-LN or pre-LN
    (`layer_norm_placement`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.attention = BertAttention(config, rngs=rngs)
        self.intermediate = BertIntermediate(config, rngs=rngs)
        self.output = BertOutput(config, rngs=rngs)

    def __call__(
        self,
        hidden_states: jax.Array,
        mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """[B, L, H] float32, boolean mask [B, 1, 1, L] -> [B, L, H] float32."""
        attention = self.attention(hidden_states, mask, deterministic=deterministic, rngs=rngs)
        intermediate = self.intermediate(attention)
        output = self.output(intermediate, attention, deterministic=deterministic, rngs=rngs)
        return constrain(output, ("batch", "length", "embed"))


class BertEncoder(nnx.Module):
    """`encoder`: `num_hidden_layers` BertLayers, as a list `layer[i]` (the Hugging Face layout)
    or, with `scan_layers`, one stacked `layers` module applied with `nnx.scan` (every parameter
    gains a leading 'layers' axis; compile time no longer grows with depth)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.scan_layers = config.scan_layers
        self.num_layers = config.num_hidden_layers
        self.remat_policy = config.remat_policy
        if config.scan_layers:

            @nnx.split_rngs(splits=config.num_hidden_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
            def create_stack(rngs: nnx.Rngs) -> BertLayer:
                return BertLayer(config, rngs=rngs)

            self.layers = create_stack(rngs)
        else:
            self.layer = nnx.List(
                [BertLayer(config, rngs=rngs) for _ in range(config.num_hidden_layers)]
            )

    def __call__(
        self,
        hidden_states: jax.Array,
        mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> tuple[jax.Array, ...]:
        """[B, L, H] embeddings -> tuple of every layer's output [B, L, H] (not the input)."""

        def apply(layer, hidden_states, rngs):
            return layer(hidden_states, mask, deterministic=deterministic, rngs=rngs)

        if self.remat_policy != "none":
            apply = nnx.remat(apply, policy=REMAT_POLICIES[self.remat_policy])
        if self.scan_layers:
            return self._scan(apply, hidden_states, rngs)
        outputs = []
        for layer in self.layer:
            hidden_states = apply(layer, hidden_states, rngs)
            outputs.append(hidden_states)
        return tuple(outputs)

    def _scan(self, apply, hidden_states, rngs):
        def body(layer, hidden_states, rngs):
            hidden_states = apply(layer, hidden_states, rngs)
            return hidden_states, hidden_states

        if rngs is None:
            scan = nnx.scan(
                lambda layer, hidden_states: body(layer, hidden_states, None),
                in_axes=(0, nnx.Carry),
                out_axes=(nnx.Carry, 0),
            )
            _, stacked = scan(self.layers, hidden_states)
        else:  # one dropout stream per layer
            scan = nnx.split_rngs(splits=self.num_layers)(
                nnx.scan(body, in_axes=(0, nnx.Carry, 0), out_axes=(nnx.Carry, 0))
            )
            _, stacked = scan(self.layers, hidden_states, rngs)
        return tuple(stacked[i] for i in range(self.num_layers))


def stack_layers(params: dict) -> dict:
    """Pure-dict params in the list layout (`encoder/layer/<i>/...`) -> the scanned layout
    (`encoder/layers/...` with a leading layer axis)."""
    encoder = dict(params["bert"]["encoder"])
    layers = encoder.pop("layer")
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[layers[i] for i in sorted(layers)])
    return {**params, "bert": {**params["bert"], "encoder": {**encoder, "layers": stacked}}}


def unstack_layers(params: dict) -> dict:
    """The inverse of `stack_layers`; params already in the list layout are returned as they are."""
    encoder = dict(params["bert"]["encoder"])
    if "layers" not in encoder:
        return params
    stacked = encoder.pop("layers")
    count = jax.tree.leaves(stacked)[0].shape[0]
    layer = {i: jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(count)}
    return {**params, "bert": {**params["bert"], "encoder": {**encoder, "layer": layer}}}
