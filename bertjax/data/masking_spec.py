"""`MaskingSpec`: what is masked and how much (config fields), and the span-length law.

Plain Python and numpy, no TensorFlow: a run's config is read into specs (bertjax/config.py) on
machines that train from carried batches without TensorFlow. The masking ops are in masking.py
and mask_units.py (TensorFlow), which re-export these names.
"""

import dataclasses

import numpy as np

from bertjax.errors import UserError
from bertjax.specs import ConfigSpec, require

SPAN_DISTRIBUTIONS = ("geometric", "uniform")


def span_length_probs(distribution: str, max_ngram: int, geometric_p: float = 0.2) -> np.ndarray:
    """[max_ngram] float32 P(span length = n words), n = 1..max_ngram.

    "geometric": P(n) proportional to p (1 - p)^(n - 1), truncated at max_ngram and renormalised
    (SpanBERT: p = 0.2, max 10); "uniform": 1 / max_ngram each.
    """
    if max_ngram < 1:
        raise UserError(f"max_ngram={max_ngram} must be >= 1 (SpanBERT uses 10)")
    lengths = np.arange(1, max_ngram + 1)
    if distribution == "geometric":
        if not 0.0 < geometric_p <= 1.0:
            raise UserError(f"span_geometric_p={geometric_p} must be in (0, 1]; SpanBERT uses 0.2")
        weights = geometric_p * (1.0 - geometric_p) ** (lengths - 1)
    elif distribution == "uniform":
        weights = np.ones(max_ngram)
    else:
        raise UserError(
            f"span_distribution={distribution!r} is unknown; use one of {SPAN_DISTRIBUTIONS}"
        )
    return (weights / weights.sum()).astype(np.float32)


MASK_PROB = 0.8  # BERT: of the selected positions, replaced by [MASK]
RANDOM_PROB = 0.1  # BERT: replaced by a random token; the remaining 10% keep the original token
MASKING_KINDS = ("token", "whole_word", "span")


@dataclasses.dataclass(frozen=True)
class MaskingSpec(ConfigSpec):
    """What is masked and how much (config fields of the same names)."""

    masking: str = "token"  # masked-LM unit: "token" (BERT), "whole_word", "span" (n-gram words)
    masked_lm_prob: float = 0.15  # fraction of non-special tokens selected for prediction
    max_predictions_per_seq: int = 20  # cap on masked positions per example
    max_ngram: int = 10  # masking="span": longest span, in words (SpanBERT: 10)
    span_distribution: str = "geometric"  # masking="span": "geometric" or "uniform" 1..max_ngram
    span_geometric_p: float = 0.2  # masking="span": P(n words) ~ p(1-p)^(n-1) (SpanBERT: 0.2)
    mask_token_prob: float = MASK_PROB  # of the selected units: shown as [MASK]
    random_token_prob: float = RANDOM_PROB  # shown as a random token (the rest: unchanged)

    def __post_init__(self):
        require(
            self.masking in MASKING_KINDS,
            f"masking={self.masking!r} is unknown; use one of {MASKING_KINDS}",
        )
        require(
            0 < self.masked_lm_prob < 1,
            f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1); BERT uses 0.15",
        )
        require(
            self.max_predictions_per_seq >= 1,
            f"max_predictions_per_seq={self.max_predictions_per_seq} must be >= 1; BERT uses 20",
        )
        require(
            0 <= self.mask_token_prob <= 1
            and 0 <= self.random_token_prob <= 1
            and self.mask_token_prob + self.random_token_prob <= 1,
            f"mask_token_prob={self.mask_token_prob} and random_token_prob="
            f"{self.random_token_prob} must be in [0, 1] with a sum <= 1 (BERT: 0.8 and 0.1; "
            "[MASK]-only: 1.0 and 0.0)",
        )
        if self.masking == "span":
            self.span_length_probs()  # raises on a bad max_ngram, distribution or p

    def wanted_predictions(self, max_seq_length: int) -> int:
        """Predictions the rate asks for in a full row (its [CLS] and [SEP] not maskable)."""
        return round(self.masked_lm_prob * (max_seq_length - 2))

    def span_length_probs(self) -> np.ndarray:
        return span_length_probs(self.span_distribution, self.max_ngram, self.span_geometric_p)
