"""scan_layers: the stacked, scanned encoder computes exactly what the per-layer list does."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bertjax.models.bert import (
    BertConfig,
    BertForPreTraining,
    count_parameters,
    stack_layers,
    unstack_layers,
)
from tests.test_train import random_batch, run_steps, tiny_config

CONFIG = BertConfig(
    vocab_size=1000, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
    intermediate_size=256,
)  # fmt: skip


def models(config=CONFIG):
    listed = BertForPreTraining(config, rngs=nnx.Rngs(0))
    scanned_config = dataclasses.replace(config, scan_layers=True)
    scanned = BertForPreTraining(scanned_config, rngs=nnx.Rngs(1))
    graphdef, _ = nnx.split(scanned, nnx.Param)
    params = nnx.state(listed, nnx.Param).to_pure_dict()
    return listed, graphdef, params


def inputs():
    batch = random_batch(3)
    return tuple(
        jnp.asarray(batch[k])
        for k in ("input_ids", "segment_ids", "input_mask", "masked_lm_positions")
    )


def test_stack_and_unstack_are_inverse_and_keep_the_parameter_count():
    listed, _, params = models()
    stacked = stack_layers(params)
    assert stacked["bert"]["encoder"]["layers"]["intermediate"]["dense"]["kernel"].shape == (
        3, 64, 256,
    )  # fmt: skip
    assert count_parameters(stacked) == count_parameters(listed)
    jax.tree.map(np.testing.assert_array_equal, unstack_layers(stacked), params)


@pytest.mark.parametrize("positions", ["absolute", "rotary"])
def test_scanned_forward_and_gradients_equal_the_layer_list(positions):
    config = dataclasses.replace(CONFIG, position_embedding_type=positions)
    listed, scanned_graphdef, params = models(config)
    args = inputs()
    listed_graphdef, _ = nnx.split(listed, nnx.Param)

    def loss(graphdef, p):
        outputs = nnx.merge(graphdef, p)(*args)
        return jnp.sum(outputs["mlm_logits"] ** 2) + jnp.sum(outputs["nsp_logits"])

    want, want_grads = jax.value_and_grad(lambda p: loss(listed_graphdef, p))(params)
    got, got_grads = jax.value_and_grad(lambda p: loss(scanned_graphdef, p))(stack_layers(params))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Float32 sums in another order: gradients agree to 1e-5 of each leaf's largest magnitude.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5 * max(np.abs(b).max(), 1e-3)),
        unstack_layers(got_grads),
        want_grads,
    )
    hidden = nnx.merge(scanned_graphdef, stack_layers(params)).encode(*args[:3])["hidden_states"]
    assert len(hidden) == 4


@pytest.mark.multi_device
def test_scanned_params_carry_the_layers_axis_and_train_sharded():
    config = tiny_config(scan_layers=True, mesh_shape={"data": 2, "fsdp": 4, "tensor": 1})
    state, history = run_steps(config, [random_batch(8, seed=s) for s in range(2)])
    kernel = state.params["bert"]["encoder"]["layers"]["intermediate"]["dense"]["kernel"]
    assert kernel.shape == (2, 128, 512)
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
    assert all(np.isfinite(h["mlm_loss_sum"]) for h in history)
