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


def replaced_token_sums(
    rtd_logits: jax.Array, replaced: jax.Array, input_mask: jax.Array, loss_weight: jax.Array
) -> dict[str, jax.Array]:
    """ELECTRA's discriminator: rtd_logits [B, L] float32, replaced [B, L] 1.0/0.0 labels,
    input_mask [B, L] (real tokens count), loss_weight: lambda, the weight of its mean loss."""
    weights = input_mask.astype(jnp.float32)
    per_token = optax.sigmoid_binary_cross_entropy(rtd_logits, replaced)
    predicted = (rtd_logits > 0).astype(jnp.float32)
    loss_sum = jnp.sum(per_token * weights)
    return {
        "rtd_loss_sum": loss_sum,
        "rtd_weighted_loss_sum": loss_weight * loss_sum,
        "rtd_correct_sum": jnp.sum((predicted == replaced) * weights),
        "rtd_replaced_sum": jnp.sum(replaced * weights),
        "rtd_predicted_sum": jnp.sum(predicted * weights),
        "rtd_true_positive_sum": jnp.sum(predicted * replaced * weights),
        "rtd_weight": jnp.sum(weights),
    }


def pretraining_sums(outputs: dict, batch: dict) -> dict[str, jax.Array]:
    """The metric sums of a model's outputs: masked LM always; next-sentence prediction when the
    model has that head (BERT), replaced-token detection when it has that one (ELECTRA)."""
    sums = masked_lm_sums(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"])
    if "nsp_logits" in outputs:
        sums |= next_sentence_sums(
            outputs["nsp_logits"], batch["next_sentence_labels"], next_sentence_weights(batch)
        )
    if "rtd_logits" in outputs:
        sums |= replaced_token_sums(
            outputs["rtd_logits"], outputs["replaced"], batch["input_mask"],
            outputs["rtd_loss_weight"],
        )  # fmt: skip
    return sums


# Each loss term: (its sum in the metric sums, the batch weight its mean divides by).
LOSS_TERMS = {
    "mlm": ("mlm_loss_sum", "mlm_weight"),
    "nsp": ("nsp_loss_sum", "nsp_weight"),
    "rtd": ("rtd_weighted_loss_sum", "rtd_weight"),
}


def loss_denominators(batch: dict) -> dict[str, jax.Array]:
    """What each loss term's mean divides by, from the whole batch (so gradients summed over its
    microbatches are exactly the whole batch's): masked positions, NSP examples, real tokens."""
    return {
        "mlm": jnp.maximum(jnp.sum(batch["masked_lm_weights"]), 1.0),
        "nsp": jnp.maximum(jnp.sum(next_sentence_weights(batch)), 1.0),
        "rtd": jnp.maximum(jnp.sum(batch["input_mask"].astype(jnp.float32)), 1.0),
    }


def objective_loss(sums: dict[str, jax.Array], denominators: dict[str, jax.Array]) -> jax.Array:
    """The training loss: the sum of each present term's (weighted) sum over its denominator
    (BERT: mean MLM + mean NSP; ELECTRA: generator's mean MLM + lambda x mean discriminator)."""
    return sum(
        sums[loss_sum] / denominators[term]
        for term, (loss_sum, _) in LOSS_TERMS.items()
        if loss_sum in sums
    )


def summarize(sums: dict) -> dict[str, float]:
    """Host side: sums and weights -> the logged means (`loss` is the training objective)."""
    mlm_weight = max(float(sums["mlm_weight"]), 1.0)
    mlm_loss = float(sums["mlm_loss_sum"]) / mlm_weight
    result = {
        "loss": sum(
            float(sums[loss_sum]) / max(float(sums[weight]), 1.0)
            for loss_sum, weight in LOSS_TERMS.values()
            if loss_sum in sums
        ),
        "mlm_loss": mlm_loss,
        "mlm_accuracy": float(sums["mlm_correct_sum"]) / mlm_weight,
    }
    if float(sums.get("nsp_weight", 0.0)) > 0:  # packed rows alone: no NSP numbers, not 0.0
        nsp_weight = float(sums["nsp_weight"])
        result["nsp_loss"] = float(sums["nsp_loss_sum"]) / nsp_weight
        result["nsp_accuracy"] = float(sums["nsp_correct_sum"]) / nsp_weight
    if "rtd_weight" in sums:
        result |= _replaced_token_metrics(sums)
    return result


def _replaced_token_metrics(sums: dict) -> dict[str, float]:
    """Discriminator loss and accuracy over real tokens; precision and recall of "replaced"; the
    fraction of real tokens that were replaced (samples equal to the original are not)."""
    tokens = max(float(sums["rtd_weight"]), 1.0)
    true_positive = float(sums["rtd_true_positive_sum"])
    return {
        "rtd_loss": float(sums["rtd_loss_sum"]) / tokens,
        "rtd_accuracy": float(sums["rtd_correct_sum"]) / tokens,
        "rtd_precision": true_positive / max(float(sums["rtd_predicted_sum"]), 1.0),
        "rtd_recall": true_positive / max(float(sums["rtd_replaced_sum"]), 1.0),
        "replaced_fraction": float(sums["rtd_replaced_sum"]) / tokens,
    }
