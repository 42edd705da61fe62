"""bertjax's training against an independent PyTorch loop (`benchmarks/training_parity.py`).

The slow tests train BERT-tiny for 100 steps (AdamW, peak 1e-3 after 10 warmup steps) on both
sides from the same initial weights and the same pipeline batches, and compare per-step losses and
final parameters within `training_parity.Tolerances` (measured values and reasons: the section
"Training dynamics against an independent PyTorch implementation" of docs/results.md):

  python -m pytest tests/test_training_parity.py -m slow

The fast tests check that the PyTorch side's decay groups and schedule are bertjax's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

INSTALL = "pip install -r requirements-test.txt"
pytest.importorskip("torch", reason=f"torch not installed: {INSTALL}")
transformers = pytest.importorskip("transformers", reason=f"transformers not installed: {INSTALL}")

from benchmarks import training_parity  # noqa: E402
from bertjax import optim  # noqa: E402
from bertjax.convert import hf  # noqa: E402
from bertjax.models.bert import BertConfig, create_model  # noqa: E402

STEPS = 100
TOLERANCES = training_parity.Tolerances()


@pytest.fixture(scope="module")
def parity(tmp_path_factory) -> training_parity.ParityRun:
    """Both sides, 100 steps, on NSP pairs of the embedded corpus (vocabulary cached in tmp)."""
    cache_dir = tmp_path_factory.mktemp("vocab_cache")
    return training_parity.run_parity(STEPS, cache_dir=str(cache_dir))


@pytest.mark.slow
def test_losses_agree_at_every_step(parity):
    ours, theirs = parity.bertjax.metrics, parity.torch.metrics
    assert len(ours["loss"]) == len(theirs["loss"]) == STEPS
    loss_diff = np.abs(ours["loss"] - theirs["loss"])
    worst = int(loss_diff.argmax())
    assert loss_diff[worst] <= TOLERANCES.loss, (
        f"step {worst}: bertjax loss {ours['loss'][worst]:.6f}, torch {theirs['loss'][worst]:.6f}"
    )
    # Same gradients before clipping, same learning rate at every update.
    np.testing.assert_allclose(ours["grad_norm"], theirs["grad_norm"], rtol=1e-3)
    np.testing.assert_allclose(
        ours["learning_rate"], theirs["learning_rate"], rtol=2e-5, atol=1e-10
    )


@pytest.mark.slow
def test_final_parameters_agree(parity):
    assert training_parity.failures(parity.numbers, TOLERANCES) == []
    drifted = [
        f"{d.name}: drift {d.drift:.3g}, max |Δ| {d.max_abs:.3g}"
        for d in parity.diffs
        if d.drift > TOLERANCES.param_drift and d.has_gradient
    ]
    assert not drifted, drifted


@pytest.mark.slow
def test_training_moved_the_parameters_far(parity):
    """The agreement is not that of two runs that barely left their common start."""
    losses = parity.torch.metrics["loss"]
    assert losses[0] - losses[-10:].mean() > 0.8
    assert parity.torch.metrics["learning_rate"].max() == pytest.approx(1e-3)
    matrices = [d for d in parity.diffs if d.name.endswith(".weight") and "LayerNorm" not in d.name]
    # Share of each final weight matrix that training put there (the rest is the initial value).
    assert min(d.moved for d in matrices) > 0.05, sorted((d.moved, d.name) for d in matrices)[:3]


@pytest.mark.slow
def test_weight_decay_on_layernorm_and_biases_fails_the_check(parity):
    """The subtlest wrong setting measured (eps 1e-8 and clipping at 0.5 differ far more): the
    PyTorch side re-run with decay on every parameter must break the tolerances."""
    wrong = training_parity.perturbed(parity, "decay_all")
    assert wrong.numbers["max_param_drift"] > 10 * TOLERANCES.param_drift


def test_torch_decay_groups_are_bertjax_weight_decay_mask():
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    params = nnx.state(nnx.eval_shape(lambda: create_model(config, 0)), nnx.Param).to_pure_dict()
    mask = optim.weight_decay_mask(params)
    ours = {
        hf.hf_name([str(getattr(key, "key", key)) for key in path]): bool(decayed)
        for path, decayed in jax.tree_util.tree_flatten_with_path(mask)[0]
    }
    model = transformers.BertForPreTraining(
        transformers.BertConfig(**hf.hf_config(config, pad_token_id=0))
    )
    recipe = training_parity.recipe_from_config(training_parity.parity_config(10))
    theirs = {
        name: training_parity.is_decayed(name, recipe) for name, _ in model.named_parameters()
    }
    assert theirs == {name: ours[name] for name in theirs}
    assert set(ours) - set(theirs) <= set(training_parity.TIED)  # tied: same tensor, listed once
    assert any(theirs.values()) and not all(theirs.values())


def test_torch_schedule_is_bertjax_schedule():
    config = training_parity.parity_config(120)
    recipe = training_parity.recipe_from_config(config)
    steps = np.arange(config.num_train_steps + 5)
    ours = np.asarray(
        optim.learning_rate_schedule(optim.OptimizerSpec.from_config(config))(jnp.asarray(steps))
    )
    theirs = [recipe.learning_rate * training_parity.lr_factor(int(s), recipe) for s in steps]
    # optax evaluates in float32: ~6e-6 relative near the end, 6e-11 (not 0) after it.
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-10)


@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_wsd_schedule_is_transformers_one_minus_sqrt_wsd_schedule(fraction):
    """transformers' get_wsd_schedule (decay_type="1-sqrt") is the independent reference."""
    config = training_parity.parity_config(120)
    config.update(lr_schedule="wsd", lr_decay_fraction=fraction)
    spec = optim.OptimizerSpec.from_config(config)
    stable = spec.num_train_steps - spec.warmup_steps - spec.cooldown_steps
    theirs = _torch_rates(
        transformers.get_wsd_schedule, spec, num_warmup_steps=spec.warmup_steps,
        num_stable_steps=stable, num_decay_steps=spec.cooldown_steps, decay_type="1-sqrt",
    )  # fmt: skip
    ours = optim.learning_rate_schedule(spec)(jnp.arange(len(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-10)


def test_cosine_schedule_is_transformers_cosine_schedule():
    config = training_parity.parity_config(120)
    config.update(lr_schedule="cosine")
    spec = optim.OptimizerSpec.from_config(config)
    theirs = _torch_rates(
        transformers.get_cosine_schedule_with_warmup, spec,
        num_warmup_steps=spec.warmup_steps, num_training_steps=spec.num_train_steps,
    )  # fmt: skip
    ours = optim.learning_rate_schedule(spec)(jnp.arange(len(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-10)


def _torch_rates(make_scheduler, spec, **kwargs) -> list[float]:
    """The rate a torch optimizer under `make_scheduler` applies at each of the run's updates
    and the step after (where both are 0; past it transformers' cosine rises again, a step no
    run takes)."""
    import torch

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=spec.learning_rate)
    scheduler = make_scheduler(optimizer, **kwargs)
    rates = []
    for _ in range(spec.num_train_steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates
