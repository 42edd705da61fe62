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
