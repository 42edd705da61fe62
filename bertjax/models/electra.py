"""ELECTRA (Clark et al., 2020) pretraining: a small masked-LM generator and a BERT encoder trained
as a discriminator of replaced tokens, laid out like Hugging Face's Electra models.

The generator reads the masked row and predicts the masked tokens; tokens sampled from its
distribution (no gradient through the sampling) replace them, and the discriminator predicts, at
every real position, whether the token there is the original. Both share the token (and
absolute position and segment) embeddings, E wide (`embedding_size`, the discriminator's width
unless set: ELECTRA-Small's 128); each network projects them to its own width where that
differs (`bert/embeddings_project` E->H, `generator/embeddings_project` E->G: Hugging Face's
`electra.embeddings_project` of each).

Parameters (pure-dict paths):
  bert/...                      the discriminator: a BertModel, so fine-tuning and `init_from`
                                read it as they read BERT's encoder (its pooler is not trained by
                                ELECTRA and keeps its initial values)
  discriminator_predictions/    dense H->H, GELU, dense_prediction H->1 (ElectraForPreTraining)
  generator/                    embeddings_project E->G (when E != G), encoder (G wide),
                                LayerNorm when pre-LN
  generator_predictions/        dense G->E, GELU, LayerNorm (ElectraForMaskedLM)
  generator_lm_head/bias        the generator's vocabulary bias; its weight is the word embeddings

Shapes: B batch, L sequence length, P masked positions, H discriminator width, G generator width,
E embedding width.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from bertjax.models.attention import constrain, layer_norm, partitioned
from bertjax.models.bert import BertModel, attention_mask, tied_vocab_logits
from bertjax.models.config import BertConfig
from bertjax.models.encoder import BertEncoder, _dense, gelu

EVAL_SAMPLE_SEED = 0  # held-out evaluation draws the generator's samples with this key
ELECTRA_HEAD_SIZE = 64  # the generator's attention heads are G / 64 wide (ELECTRA's code)


def generator_config(config: BertConfig, hidden_fraction: float) -> BertConfig:
    """The generator's BertConfig: `hidden_fraction` of the discriminator's width (rounded),
    4x that as feed-forward width, G/64 heads (at least one), the shared embeddings' width, the
    same depth and everything else (ELECTRA's `get_generator_config`)."""
    hidden = max(1, round(config.hidden_size * hidden_fraction))
    heads = max(1, hidden // ELECTRA_HEAD_SIZE)
    while hidden % heads:
        heads -= 1
    return dataclasses.replace(
        config,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        embedding_size=config.embedding_width,
    )


class ElectraGenerator(nnx.Module):
    """`generator`: the shared embeddings' output projected to G (where E differs from G, as in
    Hugging Face's ElectraModel), then a G-wide encoder."""

    def __init__(self, generator: BertConfig, *, rngs: nnx.Rngs):
        if generator.embedding_width != generator.hidden_size:
            self.embeddings_project = _dense(
                generator, generator.embedding_width, generator.hidden_size, ("embed", "mlp"), rngs
            )
        self.encoder = BertEncoder(generator, rngs=rngs)
        if generator.layer_norm_placement == "pre":
            self.LayerNorm = layer_norm(generator, generator.hidden_size, rngs)

    def __call__(self, embeddings, mask, *, deterministic, rngs) -> jax.Array:
        """[B, L, E] shared embeddings, attention mask -> [B, L, G] last hidden states."""
        hidden = embeddings
        if hasattr(self, "embeddings_project"):
            hidden = constrain(self.embeddings_project(embeddings), ("batch", "length", "embed"))
        layers = self.encoder(hidden, mask, deterministic=deterministic, rngs=rngs)
        hidden = layers[-1] if layers else hidden
        return self.LayerNorm(hidden) if hasattr(self, "LayerNorm") else hidden


class ElectraGeneratorPredictions(nnx.Module):
    """`generator_predictions`: dense G->E, exact GELU, LayerNorm (before the tied decoder)."""

    def __init__(self, generator: BertConfig, *, rngs: nnx.Rngs):
        width = generator.embedding_width
        self.dense = _dense(generator, generator.hidden_size, width, ("mlp", "embed"), rngs)
        self.LayerNorm = layer_norm(generator, width, rngs)

    def __call__(self, hidden_states: jax.Array) -> jax.Array:
        return self.LayerNorm(gelu(self.dense(hidden_states)).astype(jnp.float32))


class ElectraLMHead(nnx.Module):
    """`generator_lm_head`: the vocabulary bias (the weight is tied to the word embeddings)."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        bias_init = partitioned(nnx.initializers.zeros_init(), ("vocab",))
        self.bias = nnx.Param(bias_init(rngs.params(), (config.vocab_size,), jnp.float32))


class ElectraDiscriminatorPredictions(nnx.Module):
    """`discriminator_predictions`: dense H->H, exact GELU, dense_prediction H->1.

    The output bias starts at logit(`initial_replaced_fraction`): the fraction of tokens the
    generator will replace (`discriminator_bias_init=prior`, Lin et al. 2017's prior
    initialisation; on toy corpora it detected half the replacements by step 100 where a zero
    bias detected nothing for ~450 steps) or 0.5, a zero bias (ELECTRA's code). On real text at
    BERT-mini size the encoder's token states collapsed from either (docs/electra.md)."""

    def __init__(self, config: BertConfig, initial_replaced_fraction: float, *, rngs: nnx.Rngs):
        self.dense = _dense(config, config.hidden_size, config.hidden_size, ("embed", "mlp"), rngs)
        self.dense_prediction = _dense(
            config, config.hidden_size, 1, ("embed", "classes"), rngs, dtype=jnp.float32
        )
        logit = math.log(initial_replaced_fraction / (1 - initial_replaced_fraction))
        self.dense_prediction.bias.value = jnp.full((1,), logit, jnp.float32)

    def __call__(self, sequence_output: jax.Array) -> jax.Array:
        """[B, L, H] -> replaced-token logits [B, L] float32."""
        hidden = gelu(self.dense(sequence_output)).astype(jnp.float32)
        return self.dense_prediction(hidden)[..., 0]


def replace_masked_tokens(
    input_ids: jax.Array,
    masked_lm_positions: jax.Array,
    masked_lm_ids: jax.Array,
    masked_lm_weights: jax.Array,
    sampled_ids: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """(original ids [B, L], corrupted ids [B, L]): the row with its masked positions restored to
    the original tokens, and with the generator's samples there instead. Padding slots of the
    positions (weight 0) leave the row as it is."""

    def put(row, positions, values, weights):
        kept = row[positions]
        return row.at[positions].set(jnp.where(weights > 0, values, kept))

    original = jax.vmap(put)(input_ids, masked_lm_positions, masked_lm_ids, masked_lm_weights)
    corrupted = jax.vmap(put)(original, masked_lm_positions, sampled_ids, masked_lm_weights)
    return original, corrupted


class ElectraForPreTraining(nnx.Module):
    """Generator and discriminator trained together (`__call__` gives both networks' logits)."""

    def __init__(
        self,
        config: BertConfig,
        generator_hidden_fraction: float,
        discriminator_weight: float,
        *,
        initial_replaced_fraction: float = 0.15,
        rngs: nnx.Rngs,
    ):
        """`initial_replaced_fraction`: the share of real tokens the generator is expected to
        replace at first (the masking rate), where the discriminator's output starts."""
        self.config = config.validate()
        self.discriminator_weight = discriminator_weight  # lambda of the discriminator's loss
        self.generator_config = generator_config(config, generator_hidden_fraction).validate()
        self.dtype = jnp.dtype(config.dtype)
        self.bert = BertModel(config, rngs=rngs)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(
            config, initial_replaced_fraction, rngs=rngs
        )
        self.generator = ElectraGenerator(self.generator_config, rngs=rngs)
        self.generator_predictions = ElectraGeneratorPredictions(self.generator_config, rngs=rngs)
        self.generator_lm_head = ElectraLMHead(config, rngs=rngs)

    def generator_logits(
        self, batch: dict, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        """The generator's vocabulary logits [B, P, V] float32 at the masked positions of the
        masked row `batch["input_ids"]`."""
        embeddings = self.bert.embeddings(
            batch["input_ids"], batch["segment_ids"], deterministic=deterministic, rngs=rngs
        )
        mask = attention_mask(batch["input_mask"], batch.get("attention_segment_ids"))
        hidden = self.generator(embeddings, mask, deterministic=deterministic, rngs=rngs)
        masked = jnp.take_along_axis(hidden, batch["masked_lm_positions"][:, :, None], axis=1)
        return tied_vocab_logits(
            self.generator_predictions(masked),
            self.bert.embeddings.word_embeddings.embedding[...],
            self.generator_lm_head.bias[...],
            dtype=self.dtype,
            use_cpu_kernels=self.config.use_cpu_kernels,
        )

    def mlm_logits_all(
        self, input_ids: jax.Array, segment_ids: jax.Array, input_mask: jax.Array
    ) -> jax.Array:
        """The generator's vocabulary logits at every position [B, L, V] float32 (what
        `bertjax fill-mask` reads, as it reads BERT's MLM head)."""
        positions = jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)
        batch = {"input_ids": input_ids, "segment_ids": segment_ids, "input_mask": input_mask}
        return self.generator_logits(batch | {"masked_lm_positions": positions})

    def discriminator_states(
        self,
        input_ids: jax.Array,
        batch: dict,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """The discriminator's final states [B, L, H] of the row `input_ids` (segments and masks
        from `batch`)."""
        return self.bert(
            input_ids,
            batch["segment_ids"],
            batch["input_mask"],
            attention_segment_ids=batch.get("attention_segment_ids"),
            deterministic=deterministic,
            rngs=rngs,
        )["sequence_output"]

    def discriminator_logits(self, input_ids: jax.Array, batch: dict, **kwargs) -> jax.Array:
        """Replaced-token logits [B, L] float32 of the row `input_ids` (keywords as
        `discriminator_states`)."""
        return self.discriminator_predictions(self.discriminator_states(input_ids, batch, **kwargs))

    def __call__(
        self,
        batch: dict,
        sample_key: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> dict[str, jax.Array]:
        """A masked batch -> mlm_logits [B, P, V] (generator), rtd_logits [B, L]
        (discriminator), sequence_output [B, L, H] (the discriminator's final states), replaced
        [B, L] (1.0 where the discriminator's input differs from the original row) and
        sampled_ids [B, P]. Samples are drawn with `sample_key` from the
        generator's distribution without gradient."""
        mlm_logits = self.generator_logits(batch, deterministic=deterministic, rngs=rngs)
        sampled = jax.random.categorical(sample_key, jax.lax.stop_gradient(mlm_logits))
        original, corrupted = replace_masked_tokens(
            batch["input_ids"],
            batch["masked_lm_positions"],
            batch["masked_lm_ids"],
            batch["masked_lm_weights"],
            sampled,
        )
        states = self.discriminator_states(corrupted, batch, deterministic=deterministic, rngs=rngs)
        return {
            "mlm_logits": mlm_logits,
            "rtd_logits": self.discriminator_predictions(states),
            "sequence_output": states,
            "replaced": (corrupted != original).astype(jnp.float32),
            "sampled_ids": sampled,
            "rtd_loss_weight": jnp.float32(self.discriminator_weight),
        }

    def pretraining_outputs(self, batch: dict, rngs: nnx.Rngs | None = None) -> dict:
        """`__call__` with dropout and a fresh sample from `rngs` ('dropout' and 'sample'
        streams) in training; without dropout and with the fixed EVAL_SAMPLE_SEED (the same
        replacements every evaluation) when `rngs` is None."""
        key = rngs.sample() if rngs is not None else jax.random.key(EVAL_SAMPLE_SEED)
        return self(batch, key, deterministic=rngs is None, rngs=rngs)


def create_electra(
    config: BertConfig, generator_hidden_fraction: float, discriminator_weight: float, seed: int
) -> ElectraForPreTraining:
    """ElectraForPreTraining with parameters drawn from `seed` (use inside jit / eval_shape)."""
    return ElectraForPreTraining(
        config, generator_hidden_fraction, discriminator_weight, rngs=nnx.Rngs(params=seed)
    )
