"""The pretraining losses against Optax's reference implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertjax import losses


def test_cross_entropy_equals_optax_in_value_and_gradient():
    logits_key, labels_key = jax.random.split(jax.random.key(0))
    # Large logits too: both must stay finite (logsumexp is shifted by the maximum).
    scales = jnp.array([1.0, 30.0, 300.0])[:, None, None]
    logits = jax.random.normal(logits_key, (3, 7, 501)) * scales
    labels = jax.random.randint(labels_key, (3, 7), 0, 501)

    def ours(x):
        return losses.cross_entropy_with_integer_labels(x, labels)

    def reference(x):
        return optax.softmax_cross_entropy_with_integer_labels(x, labels)

    np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-6, atol=1e-5)
    weights = jax.random.uniform(jax.random.key(2), (3, 7))
    grad_ours = jax.grad(lambda x: jnp.sum(ours(x) * weights))(logits)
    grad_reference = jax.grad(lambda x: jnp.sum(reference(x) * weights))(logits)
    np.testing.assert_allclose(grad_ours, grad_reference, rtol=1e-6, atol=1e-7)
    assert np.isfinite(np.asarray(ours(logits))).all()


def test_masked_lm_sums_count_only_weighted_positions():
    logits = jnp.array([[[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]]])  # argmax 1, then 0
    sums = losses.masked_lm_sums(logits, jnp.array([[1, 2]]), jnp.array([[1.0, 0.0]]))
    expected = float(jax.nn.logsumexp(logits[0, 0]) - 2.0)
    np.testing.assert_allclose(sums["mlm_loss_sum"], expected, rtol=1e-6)
    assert float(sums["mlm_correct_sum"]) == 1.0 and float(sums["mlm_weight"]) == 1.0
