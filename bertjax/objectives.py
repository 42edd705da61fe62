"""The pretraining objective of a run: BERT's masked LM (with NSP on sentence-pair rows) or
ELECTRA's replaced-token detection (bertjax/models/electra.py), read once from the config.

Both train the same encoder (`bert/...` parameters), so fine-tuning, `init_from` and the
evaluation of held-out masked-LM accuracy treat their workdirs alike; the objective decides the
model built around it, its FLOPs and what export writes.
"""

from __future__ import annotations

import dataclasses

from flax import nnx

from bertjax import metrics
from bertjax.models.bert import BertConfig, BertForPreTraining
from bertjax.models.electra import ElectraForPreTraining, generator_config
from bertjax.specs import ConfigSpec, require

OBJECTIVES = ("bert", "electra")
DISCRIMINATOR_BIAS_INITS = ("prior", "zero")


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec(ConfigSpec):
    """What the encoder is pretrained to predict."""

    # "bert": masked LM, plus next-sentence prediction on sentence-pair rows; "electra": a small
    # masked-LM generator fills the masked positions with samples and the encoder (the
    # discriminator) learns from every real token whether it was replaced (Clark et al. 2020).
    objective: str = "bert"
    # electra: the generator's width as a fraction of the encoder's (ELECTRA: 1/4 to 1/2), with
    # 4x that as feed-forward width, width/64 heads and the encoder's depth.
    generator_hidden_fraction: float = 0.25
    # electra: lambda, the weight of the discriminator's mean loss against the generator's (50).
    discriminator_weight: float = 50.0
    # electra: where the discriminator's output bias starts: "prior" (the logit of
    # masked_lm_prob; it helped on toy corpora) or "zero" (ELECTRA's and Hugging Face's; at
    # BERT-mini size on a CPU budget the encoder's token states collapsed from either,
    # docs/electra.md).
    discriminator_bias_init: str = "prior"

    def __post_init__(self):
        require(
            self.objective in OBJECTIVES,
            f"objective={self.objective!r} is unknown; use one of {OBJECTIVES}",
        )
        require(
            0.0 < self.generator_hidden_fraction <= 1.0,
            f"generator_hidden_fraction={self.generator_hidden_fraction} must be in (0, 1]; "
            "ELECTRA uses 0.25 to 0.5",
        )
        require(
            self.discriminator_weight > 0,
            f"discriminator_weight={self.discriminator_weight} must be positive; ELECTRA uses 50",
        )
        require(
            self.discriminator_bias_init in DISCRIMINATOR_BIAS_INITS,
            f"discriminator_bias_init={self.discriminator_bias_init!r} is unknown; use one of "
            f"{DISCRIMINATOR_BIAS_INITS}",
        )

    @property
    def is_electra(self) -> bool:
        return self.objective == "electra"

    def model_factory(self, model: BertConfig, masked_lm_prob: float = 0.15):
        """seed -> the pretraining model (a `train_state.ModelFactory`). ELECTRA's
        discriminator starts predicting `masked_lm_prob` of tokens replaced ("prior") or half
        (a zero bias)."""
        if self.is_electra:
            initial = masked_lm_prob if self.discriminator_bias_init == "prior" else 0.5
            return lambda seed: ElectraForPreTraining(
                model,
                self.generator_hidden_fraction,
                self.discriminator_weight,
                initial_replaced_fraction=initial,
                rngs=nnx.Rngs(params=seed, dropout=seed),
            )
        return lambda seed: BertForPreTraining(model, rngs=nnx.Rngs(params=seed, dropout=seed))

    def untrained_parameters(self, packing: bool) -> tuple[str, ...]:
        """Path prefixes of the pretraining model's parameters no loss term reaches (kept out of
        weight decay): the pooler under ELECTRA, the pooler and next-sentence head under BERT's
        masked LM on packed rows (no next-sentence task)."""
        if self.is_electra:
            return ("bert/pooler",)
        return ("bert/pooler", "cls/seq_relationship") if packing else ()

    def checkpoint_fields(self) -> dict:
        """The fields saved in checkpoint metadata and compared on resume and `init_from`
        (checkpoint_compatibility.OBJECTIVE_FIELDS)."""
        return {"objective": self.objective} | (
            {"generator_hidden_fraction": self.generator_hidden_fraction} if self.is_electra else {}
        )

    def flops_per_token(
        self, model: BertConfig, *, seq_len: int, vocab_size: int, predictions_fraction: float
    ) -> float:
        """Training FLOPs per token of the whole objective (`metrics.flops_per_token` terms):
        BERT's encoder (with its E->H projection when the embeddings are factorised) and MLM
        head; for ELECTRA the encoder with its per-token discriminator head (H->H->1 at every
        position) plus the generator (its G-wide encoder with its E->G projection, and its MLM
        head G->E->V at the masked positions)."""

        def network(config: BertConfig, head: float) -> float:
            return metrics.flops_per_token(
                num_layers=config.num_hidden_layers,
                hidden_size=config.hidden_size,
                intermediate_size=config.intermediate_size,
                seq_len=seq_len,
                vocab_size=vocab_size,
                predictions_fraction=head,
                embedding_size=config.embedding_size,
            )

        if not self.is_electra:
            return network(model, predictions_fraction)
        hidden = model.hidden_size
        discriminator = network(model, 0.0) + 6 * (hidden * hidden + hidden)
        generator = network(
            generator_config(model, self.generator_hidden_fraction), predictions_fraction
        )
        return discriminator + generator
