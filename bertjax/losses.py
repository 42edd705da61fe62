"""Pretraining losses as (sum, weight) pairs: averaging happens once, after the cross-device sum,
so padding and uneven numbers of masked positions never bias a metric."""

import jax
import jax.numpy as jnp
import optax


def masked_lm_sums(
    mlm_logits: jax.Array, masked_lm_ids: jax.Array, masked_lm_weights: jax.Array
) -> dict[str, jax.Array]:
    """mlm_logits [B, P, V] float32, ids [B, P], weights [B, P] (0 on padding slots)."""
    per_position = optax.softmax_cross_entropy_with_integer_labels(mlm_logits, masked_lm_ids)
    correct = (jnp.argmax(mlm_logits, axis=-1) == masked_lm_ids).astype(jnp.float32)
    return {
        "mlm_loss_sum": jnp.sum(per_position * masked_lm_weights),
        "mlm_correct_sum": jnp.sum(correct * masked_lm_weights),
        "mlm_weight": jnp.sum(masked_lm_weights),
    }


def next_sentence_weights(batch: dict) -> jax.Array:
    """[B] weight of each example's NSP loss: `next_sentence_weights` when the batch has it
    (packed MLM-only rows carry 0), else 1."""
    labels = batch["next_sentence_labels"]
    return batch.get("next_sentence_weights", jnp.ones(labels.shape, jnp.float32))


def next_sentence_sums(
    nsp_logits: jax.Array, labels: jax.Array, weights: jax.Array
) -> dict[str, jax.Array]:
    """nsp_logits [B, 2] float32, labels [B] (0 = B follows A, 1 = random), weights [B]."""
    per_example = optax.softmax_cross_entropy_with_integer_labels(nsp_logits, labels)
    correct = (jnp.argmax(nsp_logits, axis=-1) == labels).astype(jnp.float32)
    return {
        "nsp_loss_sum": jnp.sum(per_example * weights),
        "nsp_correct_sum": jnp.sum(correct * weights),
        "nsp_weight": jnp.sum(weights),
    }


def pretraining_sums(outputs: dict, batch: dict) -> dict[str, jax.Array]:
    return {
        **masked_lm_sums(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"]),
        **next_sentence_sums(
            outputs["nsp_logits"], batch["next_sentence_labels"], next_sentence_weights(batch)
        ),
    }


def total_loss(sums: dict[str, jax.Array]) -> jax.Array:
    """Mean MLM loss over real masked positions + mean NSP loss over examples (BERT's objective)."""
    mlm = sums["mlm_loss_sum"] / jnp.maximum(sums["mlm_weight"], 1.0)
    nsp = sums["nsp_loss_sum"] / jnp.maximum(sums["nsp_weight"], 1.0)
    return mlm + nsp


def summarize(sums: dict) -> dict[str, float]:
    """Host side: sums and weights -> the logged means."""
    mlm_weight = max(float(sums["mlm_weight"]), 1.0)
    nsp_weight = max(float(sums["nsp_weight"]), 1.0)
    mlm_loss = float(sums["mlm_loss_sum"]) / mlm_weight
    nsp_loss = float(sums["nsp_loss_sum"]) / nsp_weight
    return {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "mlm_accuracy": float(sums["mlm_correct_sum"]) / mlm_weight,
        "nsp_loss": nsp_loss,
        "nsp_accuracy": float(sums["nsp_correct_sum"]) / nsp_weight,
    }
