"""BERT (Devlin et al., 2018) for pretraining, laid out like Hugging Face's `BertForPreTraining`.

Attribute names follow Hugging Face, so parameter paths read like its keys
(`bert/encoder/layer/0/attention/self/query/kernel` is `bert.encoder.layer.0.attention.self.query`
`.weight` reshaped) and export is renaming plus reshapes. Post-LN Transformer encoder (pre-LN with
`layer_norm_placement="pre"`), exact (erf) GELU, MLM decoder tied to the word embeddings, MLM
head run only on the masked positions.

Shapes: B batch, L sequence length, P masked positions per example, H hidden, V vocabulary, E
the embedding width (H unless `embedding_size` factorises the embeddings).
Parameters are float32; matmuls run in `config.dtype`; LayerNorm, softmax and logits are float32.
Every parameter names its axes (logical names, mapped to mesh axes by the config's rule table).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bertjax.models import cpu_kernels
from bertjax.models.attention import constrain, layer_norm, padding_mask, partitioned
from bertjax.models.config import (  # noqa: F401  (re-exported: bertjax.models.bert is the API)
    ATTENTION_IMPLEMENTATIONS,
    COMPUTE_DTYPES,
    REMAT_POLICIES,
    SIZE_FIELDS,
    BertConfig,
)
from bertjax.models.encoder import (  # noqa: F401
    BertEmbeddings,
    BertEncoder,
    BertIntermediate,
    BertLayer,
    BertOutput,
    _dense,
    gelu,
    stack_layers,
    unstack_layers,
)


class BertPooler(nnx.Module):
    """`pooler`: dense + tanh on the [CLS] (first) hidden state."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dense = _dense(config, config.hidden_size, config.hidden_size, ("embed", "mlp"), rngs)

    def __call__(self, sequence_output: jax.Array) -> jax.Array:
        """[B, L, H] -> pooled [B, H] float32."""
        return jnp.tanh(self.dense(sequence_output[:, 0]).astype(jnp.float32))


def attention_mask(input_mask: jax.Array, attention_segment_ids: jax.Array | None) -> jax.Array:
    """Boolean mask of the keys each query sees: [B, 1, 1, L] (padding) or, for packed rows
    (`attention_segment_ids` [B, L], one id per document), [B, 1, L, L]."""
    mask = padding_mask(input_mask)
    if attention_segment_ids is not None:
        documents = attention_segment_ids
        mask = mask & (documents[:, None, :, None] == documents[:, None, None, :])
    return mask


def tied_vocab_logits(
    transformed: jax.Array,
    word_embeddings: jax.Array,
    bias: jax.Array,
    *,
    dtype: Any,
    use_cpu_kernels: bool | None,
) -> jax.Array:
    """[..., E] transformed hidden states, [V, E] embedding table, [V] bias -> logits [..., V]
    float32 (on XLA:CPU on rows, with the bias gradient as a matmul:
    `cpu_kernels.vocab_logits_on_rows`)."""
    transformed, table = transformed.astype(dtype), word_embeddings.astype(dtype)
    if cpu_kernels.active(use_cpu_kernels):
        return cpu_kernels.vocab_logits_on_rows(transformed, table, bias)
    logits = jnp.einsum("...h,vh->...v", transformed, table, preferred_element_type=jnp.float32)
    return logits + bias


class BertModel(nnx.Module):
    """`bert`: embeddings, encoder and pooler (Hugging Face's `BertModel`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embeddings = BertEmbeddings(config, rngs=rngs)
        if config.embedding_width != config.hidden_size:  # factorised embeddings: E -> H
            self.embeddings_project = _dense(
                config, config.embedding_width, config.hidden_size, ("embed", "mlp"), rngs
            )
        self.encoder = BertEncoder(config, rngs=rngs)
        if config.layer_norm_placement == "pre":
            # Pre-LN: the residual stream is normalised once after the last layer.
            self.LayerNorm = layer_norm(config, config.hidden_size, rngs)
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
        if hasattr(self, "embeddings_project"):
            embeddings = self.embeddings_project(embeddings)
            embeddings = constrain(embeddings, ("batch", "length", "embed"))
        mask = attention_mask(input_mask, attention_segment_ids)
        layers = self.encoder(embeddings, mask, deterministic=deterministic, rngs=rngs)
        sequence_output = layers[-1] if layers else embeddings
        if hasattr(self, "LayerNorm"):
            sequence_output = self.LayerNorm(sequence_output)
        return {
            "sequence_output": sequence_output,
            "pooled_output": self.pooler(sequence_output),
            "hidden_states": (embeddings, *layers),
        }


class BertPredictionHeadTransform(nnx.Module):
    """`cls.predictions.transform`: dense + exact GELU + LayerNorm before the MLM decoder, H -> E
    (the tied table's width; RoFormer's and ALBERT's head when E differs from H)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        width = config.embedding_width
        # The output is named as the tied table names its width ("embed"). Named "mlp", XLA
        # (jax 0.10.2) computed a wrong kernel gradient on a data x fsdp x tensor mesh at some
        # widths (hidden 32; embedding_size 24-40 under hidden 128: tests/test_train.py).
        self.dense = _dense(config, config.hidden_size, width, ("mlp", "embed"), rngs)
        self.LayerNorm = layer_norm(config, width, rngs)

    def __call__(self, hidden_states: jax.Array) -> jax.Array:
        """[..., H] -> [..., E] float32."""
        hidden_states = gelu(self.dense(hidden_states))
        return self.LayerNorm(hidden_states.astype(jnp.float32))


class BertLMPredictionHead(nnx.Module):
    """`cls.predictions`: transform, then the decoder tied to the word embeddings, plus `bias`
    (`tied_vocab_logits`)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.dtype = jnp.dtype(config.dtype)
        self.use_cpu_kernels = config.use_cpu_kernels
        self.transform = BertPredictionHeadTransform(config, rngs=rngs)
        bias_init = partitioned(nnx.initializers.zeros_init(), ("vocab",))
        self.bias = nnx.Param(bias_init(rngs.params(), (config.vocab_size,), jnp.float32))

    def __call__(self, hidden_states: jax.Array, word_embeddings: jax.Array) -> jax.Array:
        """[..., H] hidden states, [V, E] embedding table -> MLM logits [..., V] float32."""
        return tied_vocab_logits(
            self.transform(hidden_states),
            word_embeddings,
            self.bias[...],
            dtype=self.dtype,
            use_cpu_kernels=self.use_cpu_kernels,
        )


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
        """[B, L] inputs, [B, P] masked positions -> mlm_logits [B, P, V], nsp_logits [B, 2],
        sequence_output [B, L, H] (the encoder's final states, for held-out statistics).

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
            "sequence_output": encoded["sequence_output"],
        }

    def pretraining_outputs(self, batch: dict, rngs: nnx.Rngs | None = None) -> dict:
        """`__call__` on a batch dict; dropout on when `rngs` (with a 'dropout' stream) is given."""
        return self(
            batch["input_ids"],
            batch["segment_ids"],
            batch["input_mask"],
            batch["masked_lm_positions"],
            attention_segment_ids=batch.get("attention_segment_ids"),
            deterministic=rngs is None,
            rngs=rngs,
        )

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
