"""The CPU variants (bertjax/models/cpu_kernels.py) and their selection: which path runs where,
that each variant computes what the plain operation computes, and that the plain path (what
GPU and TPU run) contains none of them. Both paths run here on CPU, forced by
`use_cpu_kernels`."""

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bertjax.errors import UserError
from bertjax.models import attention, cpu_kernels
from bertjax.models.bert import BertConfig, create_model
from tests.models.test_bert import BATCH, LENGTH, PREDICTIONS, TINY, tiny_batch

KEY = jax.random.key(7)


def five_sigma(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


# --- selection ----------------------------------------------------------------------------------


def test_selection_follows_the_backend_unless_forced(monkeypatch):
    assert cpu_kernels.active(None)  # these tests run on CPU
    assert cpu_kernels.active(True) and not cpu_kernels.active(False)
    for backend in ("gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert not cpu_kernels.active(None)
        assert cpu_kernels.active(True)
    with pytest.raises(UserError, match="use_cpu_kernels='yes' must be None"):
        dataclasses.replace(TINY, use_cpu_kernels="yes").validate()


def train_jaxprs(config: BertConfig) -> tuple[str, str]:
    """The jaxprs of the model's pretraining outputs (dropout on) and of their gradient."""
    model = create_model(config, seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    batch = tiny_batch()

    def loss(params, key):
        outputs = nnx.merge(graphdef, params)(
            **batch, deterministic=False, rngs=nnx.Rngs(dropout=key)
        )
        return jnp.sum(outputs["mlm_logits"]) + jnp.sum(outputs["nsp_logits"])

    return tuple(str(jax.make_jaxpr(f)(params, KEY)) for f in (loss, jax.grad(loss)))


def row_shapes(jaxpr: str) -> set[str]:
    """Arrays of the jaxpr whose leading axis is B*L or B*P: activations flattened to rows."""
    return set(re.findall(rf"\w+\[(?:{BATCH * LENGTH}|{BATCH * PREDICTIONS}),[\d,]*\]", jaxpr))


def test_the_plain_path_runs_library_operations_only(monkeypatch):
    """Forced off, the forward graph has no custom VJP and no Threefry call of our own, and
    neither it nor its gradient has an activation flattened to rows; forced on, they have all
    three; with the default (None) under a GPU or TPU backend they are exactly the plain ones."""
    config = dataclasses.replace(TINY, attention_probs_dropout_prob=0.1)
    cpu = train_jaxprs(dataclasses.replace(config, use_cpu_kernels=True))
    plain = train_jaxprs(dataclasses.replace(config, use_cpu_kernels=False))
    assert "custom_vjp_call" in cpu[0] and "threefry2x32" in cpu[0]
    assert row_shapes(cpu[0]) and row_shapes(cpu[1])
    assert "custom_vjp_call" not in plain[0] and "threefry2x32" not in plain[0]
    assert not row_shapes(plain[0]) and not row_shapes(plain[1])
    assert train_jaxprs(config) == cpu  # the default on this CPU
    for backend in ("gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert train_jaxprs(config) == plain


def test_both_paths_compute_the_same_model():
    """Same parameters (the flag changes no initialiser), the same logits and gradients within
    float32 rounding without dropout; with dropout, other masks (test_dropout.py)."""
    batch = tiny_batch()
    results = {}
    for use in (True, False):
        model = create_model(dataclasses.replace(TINY, use_cpu_kernels=use), seed=0)
        graphdef, params = nnx.split(model, nnx.Param)

        def loss(params, graphdef=graphdef):
            outputs = nnx.merge(graphdef, params)(**batch)
            return jnp.sum(jnp.sin(outputs["mlm_logits"])) + jnp.sum(outputs["nsp_logits"]), outputs

        grads, outputs = jax.grad(loss, has_aux=True)(params)
        results[use] = (params.to_pure_dict(), outputs, grads.to_pure_dict())
    (cpu_params, cpu_out, cpu_grads), (params, out, grads) = results[True], results[False]
    jax.tree.map(np.testing.assert_array_equal, cpu_params, params)
    for name in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(cpu_out[name], out[name], rtol=1e-5, atol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), cpu_grads, grads
    )


# --- matmuls on rows --------------------------------------------------------------------------


def test_row_matmuls_equal_the_layers_they_replace():
    """Dense on rows, the stacked query/key/value matmul and merge_heads on rows give what
    nnx.Linear, the three LinearGeneral projections and the output LinearGeneral give on
    [B, L, ...] inputs (the plain path), values and gradients."""
    x = jax.random.normal(jax.random.key(0), (BATCH, LENGTH, TINY.hidden_size))
    rows = attention.Dense(TINY.hidden_size, 64, rngs=nnx.Rngs(0), use_cpu_kernels=True)
    plain = attention.Dense(TINY.hidden_size, 64, rngs=nnx.Rngs(0), use_cpu_kernels=False)
    linear = nnx.Linear(TINY.hidden_size, 64, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(plain(x), linear(x))
    np.testing.assert_allclose(rows(x), linear(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        jax.grad(lambda v: jnp.sum(jnp.sin(rows(v))))(x),
        jax.grad(lambda v: jnp.sum(jnp.sin(linear(v))))(x),
        rtol=1e-5,
        atol=1e-5,
    )
    layers = {}
    for use in (True, False):
        config = dataclasses.replace(TINY, use_cpu_kernels=use)
        layers[use] = (
            attention.BertSelfAttention(config, rngs=nnx.Rngs(1)),
            attention.BertSelfOutput(config, rngs=nnx.Rngs(3)),
        )
        # Non-zero biases, so a misplaced bias would show.
        for projection in (layers[use][0].query, layers[use][0].key, layers[use][0].value):
            projection.bias[...] = jax.random.normal(jax.random.key(2), projection.bias.shape)
        layers[use][1].dense.bias[...] = jax.random.normal(jax.random.key(4), (TINY.hidden_size,))
    (self_rows, output_rows), (self_plain, output_plain) = layers[True], layers[False]
    stacked, separate = self_rows.project_qkv(x), self_plain.project_qkv(x)
    for ours, projection, theirs in zip(
        stacked, (self_plain.query, self_plain.key, self_plain.value), separate, strict=True
    ):
        np.testing.assert_array_equal(theirs, projection(x))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    context = stacked[0]
    np.testing.assert_array_equal(output_plain.merge_heads(context), output_plain.dense(context))
    np.testing.assert_allclose(
        output_rows.merge_heads(context), output_plain.merge_heads(context), atol=1e-5
    )


# --- the vocabulary-bias gradient -------------------------------------------------------------


def test_vocab_bias_gradient_equals_plain_addition():
    """add_vocab_bias computes the bias gradient as a matmul; it must equal autodiff of `+`."""
    logits = jax.random.normal(jax.random.key(0), (4, 5, 300))
    bias = jax.random.normal(jax.random.key(1), (300,))
    weights = jax.random.normal(jax.random.key(2), (4, 5, 300))

    def loss(add):
        return lambda x, b: jnp.sum(jnp.tanh(add(x, b)) * weights)

    ours = jax.grad(loss(cpu_kernels.add_vocab_bias), (0, 1))(logits, bias)
    plain = jax.grad(loss(lambda x, b: x + b), (0, 1))(logits, bias)
    np.testing.assert_array_equal(ours[0], plain[0])
    np.testing.assert_allclose(ours[1], plain[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cpu_kernels.add_vocab_bias(logits, bias), logits + bias)


# --- dropout masks from 16-bit draws ----------------------------------------------------------


def test_drop_fraction_is_the_rate():
    shape = (64, 4, 128, 128)  # an attention-probabilities mask, 4.2 M draws
    keep = np.asarray(cpu_kernels.keep_mask(KEY, 0.1, shape))
    drop_probability = cpu_kernels.drop_threshold(0.1) / 2**16
    assert abs(drop_probability - 0.1) < 2**-17
    n = keep.size
    assert abs((1 - keep.mean()) - drop_probability) < five_sigma(drop_probability, n)


def test_draws_are_uniform_over_16_bits():
    draws = np.asarray(cpu_kernels.random_draws_16bit(KEY, (256, 4096))).astype(np.int64)
    assert draws.min() >= 0 and draws.max() < 2**16
    # Chi-square over 64 equal bins of the value, and over the 16 values of the low 4 bits.
    for counts in (np.bincount(draws.ravel() >> 10, minlength=64), np.bincount(draws.ravel() & 15)):
        expected = draws.size / counts.size
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        dof = counts.size - 1
        # mean dof, sd sqrt(2 dof): 6 sd is far beyond chance (p < 1e-6)
        assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2


def test_draws_sharing_a_hash_are_independent():
    """Columns 4g to 4g + 3 come from one hash: each pair of them is dropped together with
    probability rate^2, as independent draws are, and so are columns of neighbouring hashes."""
    rate, rows, columns = 0.1, 4096, 512
    dropped = ~np.asarray(cpu_kernels.keep_mask(KEY, rate, (rows, columns)))
    p = cpu_kernels.drop_threshold(rate) / 2**16
    step = cpu_kernels.DRAWS_PER_HASH
    first = dropped[:, 0::step]
    for other in (1, 2, 3, 4):  # the same hash's other three draws, then the next hash's first
        both = first[:, : columns // 4 - 1] & dropped[:, other::step][:, : columns // 4 - 1]
        assert abs(both.mean() - p * p) < five_sigma(p * p, both.size), other


def test_odd_last_axis_and_one_dimensional_shapes():
    for shape in ((3, 130), (1001,)):
        keep = np.asarray(cpu_kernels.keep_mask(KEY, 0.25, shape))
        assert keep.shape == shape
        assert abs((1 - keep.mean()) - 0.25) < five_sigma(0.25, keep.size)


def test_rates_the_16_bit_draws_cannot_express_are_refused():
    for bad in (-0.1, 1.0, 1 - 2**-18):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            cpu_kernels.drop_threshold(bad)
