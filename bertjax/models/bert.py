"""BERT (Devlin et al., 2018) for pretraining, laid out like Hugging Face's `BertForPreTraining`.

Attribute names follow Hugging Face, so parameter paths read like its keys
(`bert/encoder/layer/0/attention/self/query/kernel` is `bert.encoder.layer.0.attention.self.query`
`.weight` reshaped) and export is renaming plus reshapes. Post-LN Transformer encoder, exact (erf)
GELU, MLM decoder tied to the word embeddings, MLM head run only on the masked positions.

Shapes: B batch, L sequence length, P masked positions per example, H hidden, V vocabulary.
Parameters are float32; matmuls run in `config.dtype`; LayerNorm, softmax and logits are float32.
Every parameter names its axes (logical names, mapped to mesh axes by the config's rule table).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from bertjax.errors import UserError
from bertjax.models.attention import (
    BertAttention,
    constrain,
    dense_init,
    layer_norm,
    padding_mask,
)

# Parameters are placed by the caller (jit out_shardings from logical names), never at creation.
nnx.use_eager_sharding(False)

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn")
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
}
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
SIZE_FIELDS += ("intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyperparameters, named as in the paper's / Hugging Face's `BertConfig`."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    dtype: str = "float32"  # compute dtype of activations and matmuls; parameters stay float32
    # jax.nn.dot_product_attention backend: None/"xla" everywhere, "cudnn" = flash attention on GPU.
    attention_implementation: str | None = None
    # Rematerialisation of each encoder layer in the backward pass: "none" keeps activations,
    # "full" recomputes the whole layer, "dots_saveable" keeps matmul outputs only.
    remat_policy: str = "none"
    # Apply the encoder layers with nnx.scan over stacked parameters (compile time independent of
    # depth); export and import convert to and from Hugging Face's per-layer layout.
    scan_layers: bool = False

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, vocab_size: int) -> BertConfig:
        """Builds and validates a BertConfig from a run config; absent fields keep defaults."""
        names = [field.name for field in dataclasses.fields(cls) if field.name != "vocab_size"]
        kwargs = {name: config[name] for name in names if name in config}
        return cls(vocab_size=vocab_size, **kwargs).validate()

    def validate(self) -> BertConfig:
        """Raises UserError (one line: what is wrong, how to fix) on impossible settings."""
        for name in SIZE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"{name}={value!r} must be a positive integer; fix --config.{name}")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}; choose a head count that divides hidden_size"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise UserError(f"{name}={value!r} must be in [0, 1); e.g. --config.{name}=0.1")
        for name in ("initializer_range", "layer_norm_eps"):
            if not getattr(self, name) > 0:
                raise UserError(
                    f"{name}={getattr(self, name)!r} must be positive; fix --config.{name}"
                )
        if self.dtype not in COMPUTE_DTYPES:
            raise UserError(f"dtype {self.dtype!r} is not supported; use one of {COMPUTE_DTYPES}")
        if self.remat_policy not in REMAT_POLICIES:
            raise UserError(
                f"remat_policy {self.remat_policy!r} is not supported; use one of "
                f"{tuple(REMAT_POLICIES)}"
            )
        if self.attention_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise UserError(
                f"attention_implementation {self.attention_implementation!r} is not supported; "
                f"use one of {ATTENTION_IMPLEMENTATIONS}"
            )
        return self


def _dense(
    config: BertConfig,
    in_features: int,
    out_features: int,
    axes: tuple[str, str],
    rngs: nnx.Rngs,
    dtype: Any = None,
) -> nnx.Linear:
    """nnx.Linear with BERT initialisation, kernel axes `axes`, bias axes `axes[1:]`."""
    return nnx.Linear(
        in_features,
        out_features,
        dtype=jnp.dtype(dtype or config.dtype),
        rngs=rngs,
        **dense_init(config, axes, axes[1:]),
    )


def _embed(config: BertConfig, num: int, axes: tuple[str, str], rngs: nnx.Rngs) -> nnx.Embed:
    init = nnx.with_partitioning(nnx.initializers.normal(config.initializer_range), axes)
    return nnx.Embed(num, config.hidden_size, embedding_init=init, rngs=rngs)


class BertEmbeddings(nnx.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.word_embeddings = _embed(config, config.vocab_size, ("vocab", "embed"), rngs)
        self.position_embeddings = _embed(
            config, config.max_position_embeddings, ("position", "embed"), rngs
        )
        self.token_type_embeddings = _embed(
            config, config.type_vocab_size, ("type_vocab", "embed"), rngs
        )
        self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob)

    def __call__(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Token ids [B, L], segment ids [B, L] -> embeddings [B, L, H] float32."""
        if input_ids.shape[1] > self.position_embeddings.num_embeddings:
            raise UserError(
                f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                f"{self.position_embeddings.num_embeddings}; lower --config.max_seq_length"
            )
        positions = jnp.arange(input_ids.shape[1])[None, :]
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(segment_ids)
        )
        embeddings = self.LayerNorm(embeddings)
        embeddings = self.dropout(embeddings, deterministic=deterministic, rngs=rngs)
        return constrain(embeddings, ("batch", "length", "embed"))


class BertIntermediate(nnx.Module):
    """`intermediate`: H -> intermediate_size projection with exact GELU."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(
            config, config.hidden_size, config.intermediate_size, ("embed", "mlp"), rngs
        )

    def __call__(self, hidden_states: jax.Array) -> jax.Array:
        """[B, L, H] -> [B, L, intermediate_size] in the compute dtype."""
        intermediate = jax.nn.gelu(self.dense(hidden_states), approximate=False)  # exact erf
        return constrain(intermediate, ("batch", "length", "mlp"))


class BertOutput(nnx.Module):
    """`output`: intermediate_size -> H projection, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(
            config, config.intermediate_size, config.hidden_size, ("mlp", "embed"), rngs
        )
        self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob)

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
        return self.LayerNorm(hidden.astype(jnp.float32) + input_tensor)


class BertLayer(nnx.Module):
    """`encoder.layer[i]`: self-attention block then feed-forward block, each post-LN."""

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


class BertPooler(nnx.Module):
    """`pooler`: dense + tanh on the [CLS] (first) hidden state."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(config, config.hidden_size, config.hidden_size, ("embed", "mlp"), rngs)

    def __call__(self, sequence_output: jax.Array) -> jax.Array:
        """[B, L, H] -> pooled [B, H] float32."""
        return jnp.tanh(self.dense(sequence_output[:, 0]).astype(jnp.float32))


class BertModel(nnx.Module):
    """`bert`: embeddings, encoder and pooler (Hugging Face's `BertModel`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embeddings = BertEmbeddings(config, rngs=rngs)
        self.encoder = BertEncoder(config, rngs=rngs)
        self.pooler = BertPooler(config, rngs=rngs)

    def __call__(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        input_mask: jax.Array,
        *,
        attention_segment_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> dict[str, Any]:
        """Ids, segments, 1/0 mask [B, L] -> sequence_output [B, L, H], pooled_output [B, H],
        hidden_states (embeddings output then each layer's output; L+1 arrays [B, L, H]).

        `attention_segment_ids` [B, L] (packed rows: one id per document) restricts attention
        to tokens of the same document."""
        if not deterministic and rngs is None:
            raise ValueError("deterministic=False needs rngs=nnx.Rngs(dropout=key) at call time")
        embeddings = self.embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs)
        mask = padding_mask(input_mask)  # [B, 1, 1, L]
        if attention_segment_ids is not None:
            documents = attention_segment_ids
            mask = mask & (documents[:, None, :, None] == documents[:, None, None, :])
        layers = self.encoder(embeddings, mask, deterministic=deterministic, rngs=rngs)
        sequence_output = layers[-1] if layers else embeddings
        return {
            "sequence_output": sequence_output,
            "pooled_output": self.pooler(sequence_output),
            "hidden_states": (embeddings, *layers),
        }


class BertPredictionHeadTransform(nnx.Module):
    """`cls.predictions.transform`: dense + exact GELU + LayerNorm before the MLM decoder."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(config, config.hidden_size, config.hidden_size, ("embed", "mlp"), rngs)
        self.LayerNorm = layer_norm(config, config.hidden_size, rngs)

    def __call__(self, hidden_states: jax.Array) -> jax.Array:
        """[..., H] -> [..., H] float32."""
        hidden_states = jax.nn.gelu(self.dense(hidden_states), approximate=False)
        return self.LayerNorm(hidden_states.astype(jnp.float32))


class BertLMPredictionHead(nnx.Module):
    """`cls.predictions`: transform, then the decoder tied to the word embeddings, plus `bias`."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dtype = jnp.dtype(config.dtype)
        self.transform = BertPredictionHeadTransform(config, rngs=rngs)
        bias_init = nnx.with_partitioning(nnx.initializers.zeros_init(), ("vocab",))
        self.bias = nnx.Param(bias_init(rngs.params(), (config.vocab_size,), jnp.float32))

    def __call__(self, hidden_states: jax.Array, word_embeddings: jax.Array) -> jax.Array:
        """[..., H] hidden states, [V, H] embedding table -> MLM logits [..., V] float32."""
        transformed = self.transform(hidden_states).astype(self.dtype)
        logits = jnp.einsum(
            "...h,vh->...v",
            transformed,
            word_embeddings.astype(self.dtype),
            preferred_element_type=jnp.float32,
        )
        return logits + self.bias[...]


class BertPreTrainingHeads(nnx.Module):
    """`cls`: masked-LM head `predictions` and next-sentence head `seq_relationship`."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.predictions = BertLMPredictionHead(config, rngs=rngs)
        # Two outputs; computed in float32, the cost is nil.
        self.seq_relationship = _dense(
            config, config.hidden_size, 2, ("embed", "classes"), rngs, dtype=jnp.float32
        )


class BertForPreTraining(nnx.Module):
    """BERT with both pretraining heads (Hugging Face's `BertForPreTraining`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config.validate()
        self.bert = BertModel(config, rngs=rngs)
        self.cls = BertPreTrainingHeads(config, rngs=rngs)

    def encode(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        input_mask: jax.Array,
        *,
        attention_segment_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> dict[str, Any]:
        """[B, L] inputs -> sequence_output [B, L, H], pooled_output [B, H], hidden_states."""
        return self.bert(
            input_ids,
            segment_ids,
            input_mask,
            attention_segment_ids=attention_segment_ids,
            deterministic=deterministic,
            rngs=rngs,
        )

    def __call__(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        input_mask: jax.Array,
        masked_lm_positions: jax.Array,
        *,
        attention_segment_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> dict[str, jax.Array]:
        """[B, L] inputs, [B, P] masked positions -> mlm_logits [B, P, V], nsp_logits [B, 2].

        The MLM head runs only on the gathered masked positions. Logits are float32.
        """
        encoded = self.encode(
            input_ids,
            segment_ids,
            input_mask,
            attention_segment_ids=attention_segment_ids,
            deterministic=deterministic,
            rngs=rngs,
        )
        masked = jnp.take_along_axis(
            encoded["sequence_output"], masked_lm_positions[:, :, None], axis=1
        )
        return {
            "mlm_logits": self.cls.predictions(masked, self._word_embeddings()),
            "nsp_logits": self.cls.seq_relationship(encoded["pooled_output"]),
        }

    def mlm_logits_all(
        self,
        input_ids: jax.Array,
        segment_ids: jax.Array,
        input_mask: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """MLM logits at every position [B, L, V] float32 (Hugging Face's `prediction_logits`)."""
        encoded = self.encode(
            input_ids, segment_ids, input_mask, deterministic=deterministic, rngs=rngs
        )
        return self.cls.predictions(encoded["sequence_output"], self._word_embeddings())

    def _word_embeddings(self) -> jax.Array:
        return self.bert.embeddings.word_embeddings.embedding[...]


def create_model(config: BertConfig, seed: int) -> BertForPreTraining:
    """BertForPreTraining with parameters drawn from `seed` (use inside jit / eval_shape)."""
    return BertForPreTraining(config.validate(), rngs=nnx.Rngs(params=seed))


def count_parameters(model_or_state: Any) -> int:
    """Number of parameter scalars of a module (its nnx.Param) or of any tree of arrays/shapes."""
    if isinstance(model_or_state, nnx.Module):
        model_or_state = nnx.state(model_or_state, nnx.Param)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(model_or_state))
