import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bertjax import optim
from bertjax.errors import UserError
from tests.helpers import load_config


def _config(**overrides):
    config = load_config("cpu_smoke")
    config.update(overrides)
    return config


def test_schedule_warmup_then_linear_decay_to_zero():
    schedule = optim.learning_rate_schedule(
        optim.OptimizerSpec.from_config(
            _config(learning_rate=1e-3, warmup_steps=10, num_train_steps=110)
        )
    )
    np.testing.assert_allclose(
        [schedule(s) for s in (0, 5, 10, 60, 110)], [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-9
    )


def _schedule(**overrides):
    return optim.learning_rate_schedule(optim.OptimizerSpec.from_config(_config(**overrides)))


def test_wsd_schedule_holds_the_peak_then_cools_down_by_one_minus_sqrt():
    schedule = _schedule(
        lr_schedule="wsd", learning_rate=1e-3, warmup_steps=10, num_train_steps=110,
        lr_decay_fraction=0.4,
    )  # fmt: skip
    # Cooldown: the last 44 steps, from step 66; 1e-3 * (1 - sqrt(11 / 44)) = 5e-4 at step 77.
    np.testing.assert_allclose(
        [schedule(s) for s in (5, 10, 40, 66, 77, 110, 120)],
        [5e-4, 1e-3, 1e-3, 1e-3, 5e-4, 0.0, 0.0],
        atol=1e-9,
    )


def test_cosine_schedule_is_half_a_cosine_after_warmup():
    schedule = _schedule(
        lr_schedule="cosine", learning_rate=1e-3, warmup_steps=10, num_train_steps=110
    )
    steps = np.arange(10, 111)
    expected = 0.5e-3 * (1 + np.cos(np.pi * (steps - 10) / 100))
    np.testing.assert_allclose([schedule(s) for s in steps], expected, rtol=1e-5, atol=1e-9)


def test_a_longer_wsd_run_keeps_every_rate_before_its_cooldown():
    """Extending a wsd run (a larger num_train_steps on resume) leaves the rates of the steps
    before the old cooldown as they were, so the extended run is the longer run from the start;
    a linear schedule's rates all move."""
    steps = jnp.arange(0, 800)
    short, long = (
        _schedule(lr_schedule="wsd", warmup_steps=100, num_train_steps=total)(steps)
        for total in (1000, 3000)
    )
    np.testing.assert_array_equal(short, long)
    linear_short, linear_long = (
        _schedule(warmup_steps=100, num_train_steps=total)(steps) for total in (1000, 3000)
    )
    assert not np.allclose(linear_short[100:], linear_long[100:])


def test_rate_change_says_how_the_resumed_steps_rate_moves():
    saved = _config(lr_schedule="wsd", learning_rate=1e-3, warmup_steps=10, num_train_steps=100)
    assert optim.rate_change(saved, {**saved, "num_train_steps": 200}, 50) == (
        "learning rate at step 50 unchanged: 0.001"
    )
    linear = {**saved, "lr_schedule": "linear"}
    assert optim.rate_change(linear, {**linear, "num_train_steps": 190}, 55) == (
        "learning rate at step 55: 0.0005 -> 0.00075"
    )
    # A checkpoint of a later bertjax, with a schedule this one lacks: the new rate alone.
    later = {**saved, "lr_schedule": "one_cycle"}
    assert optim.rate_change(later, linear, 55) == "learning rate at step 55: 0.0005"


def test_weight_decay_mask_skips_layernorm_and_biases():
    params = {
        "dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
        "LayerNorm": {"scale": jnp.ones(2), "bias": jnp.ones(2)},
        "word_embeddings": {"embedding": jnp.ones((5, 2))},
    }
    mask = optim.weight_decay_mask(params)
    assert mask == {
        "dense": {"kernel": True, "bias": False},
        "LayerNorm": {"scale": False, "bias": False},
        "word_embeddings": {"embedding": True},
    }


def test_weight_decay_mask_skips_the_untrained_prefixes():
    params = {
        "bert": {
            "pooler": {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}},
            "pooler_extra": {"kernel": jnp.ones((2, 2))},  # a prefix names whole path parts
            "encoder": {"layer": {0: {"output": {"dense": {"kernel": jnp.ones((2, 2))}}}}},
        },
        "cls": {"seq_relationship": {"kernel": jnp.ones((2, 2))}},
    }
    mask = optim.weight_decay_mask(params, untrained=("bert/pooler", "cls/seq_relationship"))
    assert mask == {
        "bert": {
            "pooler": {"dense": {"kernel": False, "bias": False}},
            "pooler_extra": {"kernel": True},
            "encoder": {"layer": {0: {"output": {"dense": {"kernel": True}}}}},
        },
        "cls": {"seq_relationship": {"kernel": False}},
    }
    assert optim.weight_decay_mask(params)["bert"]["pooler"]["dense"]["kernel"]


@pytest.mark.parametrize("objective, packing, untrained", [
    ("electra", True, ("bert/pooler",)),
    ("bert", True, ("bert/pooler", "cls/seq_relationship")),
    ("bert", False, ()),  # sentence pairs: next-sentence prediction trains both
])  # fmt: skip
def test_each_objective_names_what_it_does_not_train(objective, packing, untrained):
    from bertjax.models.config import BertConfig
    from bertjax.objectives import ObjectiveSpec

    objective_spec = ObjectiveSpec(objective=objective)
    assert objective_spec.untrained_parameters(packing) == untrained
    # Each prefix names parameters the model has (a misspelt one would mask nothing).
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)  # fmt: skip
    model = nnx.eval_shape(lambda: objective_spec.model_factory(config)(0))
    paths = ["/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    for prefix in untrained:
        assert any(path.startswith(prefix + "/") for path in paths), prefix


def test_weight_decay_mask_of_an_nnx_state_is_the_mask_of_its_pure_dict():
    """An nnx.State (what nnx.split returns) ends each path in `.value`: the mask must still
    read the parameter's name, or nothing is decayed."""
    _, state = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.Param)
    assert optim.weight_decay_mask(state.to_pure_dict()) == {"kernel": True, "bias": False}
    assert optim.weight_decay_mask(state).to_pure_dict() == {"kernel": True, "bias": False}


@pytest.mark.parametrize("optimizer, kernel_step", [("adamw", 0.05), ("lamb", 0.1)])
def test_optimizer_applies_decay_only_where_masked(optimizer, kernel_step):
    """Zero gradient: the kernel moves only by decoupled decay, AdamW's lr*wd*w = 0.05 and
    LAMB's the same scaled by the trust ratio ||w|| / ||wd*w|| = 2 (BERT-large's phase configs
    train with LAMB); the bias not at all."""
    config = _config(
        learning_rate=0.1, warmup_steps=0, num_train_steps=10, weight_decay=0.5, max_grad_norm=1.0,
        optimizer=optimizer,
    )  # fmt: skip
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(config))
    params = {"dense": {"kernel": jnp.ones((2,)), "bias": jnp.ones((2,))}}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], [-kernel_step] * 2, rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], [0.0, 0.0])


def first_moment(opt_state) -> dict:
    """Adam's first moment after one update: (1 - b1) times the gradient the optimizer used,
    i.e. after clipping. (The first update itself is lr * sign(g) whatever the gradient's scale,
    so the moment is where clipping shows.)"""
    return optax.tree_utils.tree_get(opt_state, "mu")


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
@pytest.mark.parametrize(
    "max_grad_norm, gradient, used",
    [
        (2.0, [6.0, 8.0], [1.2, 1.6]),  # norm 10 > 2: scaled by 2 / 10, to norm exactly 2
        (2.0, [0.3, 0.4], [0.3, 0.4]),  # norm 0.5 < 2: untouched
        (0.0, [6.0, 8.0], [6.0, 8.0]),  # 0 disables clipping
    ],
)
def test_optimizer_clips_the_global_gradient_norm(optimizer, max_grad_norm, gradient, used):
    """bertjax's optimizer clips the global norm over all leaves at max_grad_norm."""
    config = _config(
        optimizer=optimizer, learning_rate=0.1, warmup_steps=0, num_train_steps=10,
        weight_decay=0.0, max_grad_norm=max_grad_norm,
    )  # fmt: skip
    tx = optim.create_optimizer(config)
    params = {"a": {"kernel": jnp.ones((1,))}, "b": {"bias": jnp.ones((1,))}}
    grads = {"a": {"kernel": jnp.asarray(gradient[:1])}, "b": {"bias": jnp.asarray(gradient[1:])}}
    _, state = tx.update(grads, tx.init(params), params)
    moment = first_moment(state)
    one_minus_b1 = 1.0 - config.adam_b1
    np.testing.assert_allclose(moment["a"]["kernel"], one_minus_b1 * used[0], rtol=1e-6)
    np.testing.assert_allclose(moment["b"]["bias"], one_minus_b1 * used[1], rtol=1e-6)
    np.testing.assert_allclose(
        optax.global_norm(moment) / one_minus_b1, np.linalg.norm(used), rtol=1e-6
    )


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"warmup_steps": 20, "num_train_steps": 10}, "warmup_steps=20"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"num_train_steps": 0, "warmup_steps": 0}, "num_train_steps"),
        ({"lr_schedule": "onecycle"}, "lr_schedule='onecycle' is unknown"),
        ({"lr_schedule": "wsd", "lr_decay_fraction": 1.5}, "lr_decay_fraction=1.5"),
        (
            {"lr_schedule": "wsd", "warmup_steps": 90, "num_train_steps": 100},
            "the cooldown's 20 steps",
        ),
    ],
)
def test_bad_schedule_is_a_user_error(overrides, match):
    with pytest.raises(UserError, match=match):
        optim.learning_rate_schedule(optim.OptimizerSpec.from_config(_config(**overrides)))


def test_lamb_scales_each_layer_update_by_its_trust_ratio():
    config = _config(
        optimizer="lamb", learning_rate=0.1, warmup_steps=0, num_train_steps=10, weight_decay=0.0,
        max_grad_norm=0.0,
    )  # fmt: skip
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(config))
    params = {"a": {"kernel": jnp.full((4,), 3.0)}, "b": {"kernel": jnp.full((4,), 0.5)}}
    grads = {"a": {"kernel": jnp.full((4,), 1e-3)}, "b": {"kernel": jnp.full((4,), 5.0)}}
    updates, _ = tx.update(grads, tx.init(params), params)
    # First Adam step: m/sqrt(v) = sign(g) = 1 everywhere, so each layer's update is
    # lr * ||w|| / ||1|| per element: 0.1 * 3 and 0.1 * 0.5, whatever the gradient scale.
    np.testing.assert_allclose(updates["a"]["kernel"], -0.3, rtol=1e-3)
    np.testing.assert_allclose(updates["b"]["kernel"], -0.05, rtol=1e-3)


def test_lamb_leaves_biases_and_layernorm_out_of_the_trust_ratio():
    """As the reference LAMB for BERT (TF-Addons' exclude_from_layer_adaptation, apex FusedLAMB):
    parameters without weight decay take Adam's step. optax.lamb scaled them too, so a bias
    starting at 0 stayed near it (0.016 after 100 steps at lr 1e-2, where Adam goes 0.5)."""
    config = _config(
        optimizer="lamb", learning_rate=0.01, warmup_steps=0, num_train_steps=1000,
        weight_decay=0.0, max_grad_norm=0.0,
    )  # fmt: skip
    spec = optim.OptimizerSpec.from_config(config)
    tx, schedule = optim.create_optimizer(spec), optim.learning_rate_schedule(spec)
    params = {
        "dense": {"kernel": jnp.full((4,), 2.0), "bias": jnp.zeros((4,))},
        "LayerNorm": {"scale": jnp.full((4,), 2.0), "bias": jnp.zeros((4,))},
    }
    grads = jax.tree.map(jnp.ones_like, params)
    state = tx.init(params)
    for step in range(100):
        updates, state = tx.update(grads, state, params)
        if step == 0:  # Adam's first step is lr * sign(g); the kernel's is scaled by ||w|| / 1
            np.testing.assert_allclose(updates["dense"]["kernel"], -0.02, rtol=1e-3)
            np.testing.assert_allclose(updates["LayerNorm"]["scale"], -0.01, rtol=1e-3)
        params = optax.apply_updates(params, updates)
    adams_steps = -sum(float(schedule(step)) for step in range(100))  # each lr * m / sqrt(v) = 1
    for bias in (params["dense"]["bias"], params["LayerNorm"]["bias"]):
        np.testing.assert_allclose(bias, adams_steps, rtol=1e-3)


def test_a_fine_tunes_schedule_spans_its_last_partial_batch():
    from bertjax.finetune import steps

    assert steps.schedule_steps(10, 4, 3) == 9  # 3 batches an epoch, the last of 2 rows
    assert steps.schedule_steps(3, 32, 2) == 2  # fewer examples than a batch: still a step
    assert steps.schedule_steps(8, 4, 3) == 6
