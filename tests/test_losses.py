"""The pretraining losses against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np

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
