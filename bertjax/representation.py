"""Whether an encoder's token states have collapsed onto a few directions.

A fine-tuning head reads the final token states; an encoder whose states all point the same way
gives it less than a random one does (docs/electra.md: an ELECTRA discriminator at effective
rank ~4 fine-tuned 13-36 points below random initialisation). Held-out evaluation reports two
statistics of the real tokens' final states, from additive sums so they accumulate over batches
and hosts like the losses do:

- token_cosine: the mean cosine similarity of pairs of distinct tokens;
- token_effective_rank: exp of the entropy of the normalised eigenvalues of the covariance of the
  tokens' unit vectors (Roy & Vetterli 2007): ~H/2 for a random BERT-mini (H = 256: 117), a
  handful when collapsed.
"""

import jax
import jax.numpy as jnp
import numpy as np

NO_SPREAD = 1e-6  # total variance of unit vectors below which float32 sums are only rounding


def token_state_sums(states: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
    """Final states [B, L, H] and 1/0 weights [B, L] -> the sums `token_state_stats` reads: the
    count, the sum of the unit vectors [H] and of their outer products [H, H] (float32)."""
    states = states.astype(jnp.float32)
    unit = states / jnp.maximum(jnp.linalg.norm(states, axis=-1, keepdims=True), 1e-12)
    weights = weights.astype(jnp.float32)
    weighted = unit * weights[..., None]
    return {
        "state_count": jnp.sum(weights),
        "state_unit_sum": jnp.sum(weighted, axis=(0, 1)),
        "state_unit_outer": jnp.einsum("blh,blk->hk", weighted, unit),
    }


def token_state_stats(sums: dict) -> dict[str, float]:
    """Host side: `token_state_sums` (added over batches) -> token_cosine, token_effective_rank."""
    count = float(sums["state_count"])
    unit_sum = np.asarray(sums["state_unit_sum"], np.float64)
    outer = np.asarray(sums["state_unit_outer"], np.float64)
    if count < 2:
        return {"token_cosine": float("nan"), "token_effective_rank": float("nan")}
    mean = unit_sum / count
    covariance = outer / count - np.outer(mean, mean)
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance), 0.0, None)
    cosine = (unit_sum @ unit_sum - count) / (count * (count - 1))
    return {"token_cosine": float(cosine), "token_effective_rank": effective_rank(eigenvalues)}


def effective_rank(variances: np.ndarray) -> float:
    """exp(entropy) of the variances' shares: how many equal directions hold that spread; 0
    when there is no spread beyond float32 rounding of the sums (every token state points the
    same way; unit vectors' total variance is 1 - |mean|^2, at most 1)."""
    total = variances.sum()
    if total <= NO_SPREAD:
        return 0.0
    shares = variances[variances > 0] / total
    return float(np.exp(-np.sum(shares * np.log(shares))))
