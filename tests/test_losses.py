"""The pretraining losses against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import losses


def test_masked_lm_sums_count_only_weighted_positions():
    logits = jnp.array([[[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]]])  # argmax 1, then 0
    sums = losses.masked_lm_sums(logits, jnp.array([[1, 2]]), jnp.array([[1.0, 0.0]]))
    expected = float(jax.nn.logsumexp(logits[0, 0]) - 2.0)
    np.testing.assert_allclose(sums["mlm_loss_sum"], expected, rtol=1e-6)
    assert float(sums["mlm_correct_sum"]) == 1.0 and float(sums["mlm_weight"]) == 1.0


def test_summarize_logs_next_sentence_numbers_only_where_examples_carried_them():
    mlm = {"mlm_loss_sum": 6.0, "mlm_correct_sum": 1.0, "mlm_weight": 3.0}
    paired = losses.summarize(
        mlm | {"nsp_loss_sum": 1.5, "nsp_correct_sum": 2.0, "nsp_weight": 4.0}
    )
    assert paired["nsp_loss"] == 0.375 and paired["nsp_accuracy"] == 0.5
    assert paired["loss"] == 2.0 + 0.375
    packed = losses.summarize(  # packed MLM-only rows: NSP weight 0, no NSP numbers (not 0.0)
        mlm | {"nsp_loss_sum": 0.0, "nsp_correct_sum": 0.0, "nsp_weight": 0.0}
    )
    assert "nsp_loss" not in packed and "nsp_accuracy" not in packed
    assert packed["loss"] == 2.0 and packed["mlm_accuracy"] == 1 / 3


def test_next_sentence_sums_and_denominator_count_only_weighted_examples():
    """A packed row (NSP weight 0, its label a filler) adds nothing to the NSP loss, accuracy or
    denominator; a batch of packed rows only divides by 1, not 0."""
    logits = jnp.array([[2.0, 0.0], [0.0, 5.0]])  # predicts 0 (wrong), then 1 (right, unweighted)
    labels = jnp.array([1, 1])
    weights = jnp.array([1.0, 0.0])
    sums = losses.next_sentence_sums(logits, labels, weights)
    expected = float(jax.nn.logsumexp(logits[0]) - logits[0, 1])
    np.testing.assert_allclose(sums["nsp_loss_sum"], expected, rtol=1e-6)
    assert float(sums["nsp_correct_sum"]) == 0.0 and float(sums["nsp_weight"]) == 1.0
    batch = {
        "masked_lm_weights": jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        "next_sentence_labels": labels,
        "next_sentence_weights": weights,
        "input_mask": jnp.array([[1, 1, 1, 0], [1, 1, 0, 0]]),
    }
    denominators = losses.loss_denominators(batch)
    assert {k: float(v) for k, v in denominators.items()} == {"mlm": 3.0, "nsp": 1.0, "rtd": 5.0}
    packed = dict(batch, next_sentence_weights=jnp.zeros(2))
    assert float(losses.loss_denominators(packed)["nsp"]) == 1.0
    assert float(losses.next_sentence_sums(logits, labels, jnp.zeros(2))["nsp_loss_sum"]) == 0.0


def test_electra_objective_is_generator_mlm_plus_lambda_times_discriminator_mean():
    mlm_logits = jnp.array([[[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]])
    batch = {
        "masked_lm_ids": jnp.array([[1, 2]]),
        "masked_lm_weights": jnp.array([[1.0, 1.0]]),
        "input_mask": jnp.array([[1, 1, 1, 0]]),
        "next_sentence_labels": jnp.array([0]),
    }
    rtd_logits = jnp.array([[3.0, -1.0, 0.5, 9.0]])  # the last is padding
    replaced = jnp.array([[1.0, 0.0, 1.0, 1.0]])
    outputs = {"mlm_logits": mlm_logits, "rtd_logits": rtd_logits, "replaced": replaced,
               "rtd_loss_weight": jnp.float32(50.0)}  # fmt: skip
    sums = losses.pretraining_sums(outputs, batch)
    loss = losses.objective_loss(sums, losses.loss_denominators(batch))
    mlm_mean = float(
        jnp.mean(jax.nn.logsumexp(mlm_logits[0], axis=-1) - mlm_logits[0, [0, 1], [1, 2]])
    )
    sigmoid_bce = jnp.logaddexp(0.0, rtd_logits[0, :3]) - replaced[0, :3] * rtd_logits[0, :3]
    rtd_mean = float(jnp.mean(sigmoid_bce))
    np.testing.assert_allclose(float(loss), mlm_mean + 50.0 * rtd_mean, rtol=1e-5)
    np.testing.assert_allclose(float(sums["rtd_loss_sum"]) / 3, rtd_mean, rtol=1e-5)


def test_an_interval_averages_over_its_applied_steps_and_times_its_timed_ones():
    """Of 2 steps, 1 applied (the other skipped: its sums are 0): grad_norm and learning_rate
    are the applied step's, param_norm the mean of both; after a resume only the steps this
    process timed count in the rates (the carried ones were timed by the killed run)."""
    from bertjax import metrics

    throughput = object.__new__(metrics.Throughput)  # no peak measurement
    throughput.tokens_per_step, throughput.flops_per_step, throughput.peak = 100, 1e3, 1e6
    sums = {
        "mlm_loss_sum": 6.0,
        "mlm_correct_sum": 1.0,
        "mlm_weight": 3.0,
        "finite_steps": 1.0,
        "grad_norm": 4.0,
        "learning_rate": 1e-3,
        "param_norm": 10.0,
    }
    line = throughput.interval_metrics(sums, steps=2, timed_steps=1, elapsed=0.5)
    assert (line["grad_norm"], line["learning_rate"], line["param_norm"]) == (4.0, 1e-3, 5.0)
    assert (line["steps_per_second"], line["tokens_per_second"], line["mfu"]) == (2.0, 200.0, 2e-3)


def test_replaced_token_precision_is_over_the_flagged_tokens_and_recall_over_the_replaced():
    """4 real tokens flagged replaced, 2 really replaced, 1 of them flagged: precision 1/4,
    recall 1/2 (a padding token, flagged and replaced, counts in neither)."""
    logits = jnp.array([[3.0, 2.0, 1.0, 0.5, -1.0, -2.0, 5.0]])
    replaced = jnp.array([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]])
    input_mask = jnp.array([[1, 1, 1, 1, 1, 1, 0]])
    sums = losses.replaced_token_sums(logits, replaced, input_mask, jnp.float32(50.0))
    mlm = {"mlm_weight": 1.0, "mlm_loss_sum": 0.0, "mlm_correct_sum": 0.0}
    metrics = losses.summarize(jax.device_get(sums) | mlm)
    assert metrics["rtd_precision"] == pytest.approx(0.25)
    assert metrics["rtd_recall"] == pytest.approx(0.5)
    assert metrics["replaced_fraction"] == pytest.approx(2 / 6)
    assert metrics["rtd_accuracy"] == pytest.approx(2 / 6)
