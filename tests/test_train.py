"""One real train step, overfitting, 1 vs 8 devices, checkpoint round trip (tiny config)."""

import functools

import jax
import numpy as np
import optax
import pytest

from bertjax import checkpoint_compatibility, checkpointing, optim, sharding, train_step
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig
from bertjax.objectives import ObjectiveSpec
from bertjax.train_state import create_train_state
from tests.helpers import load_config

VOCAB = 1000
SEQ = 32
PREDICTIONS = 5


def tiny_config(**overrides):
    config = load_config("cpu_smoke")
    config.update(
        dict(
            max_seq_length=SEQ,
            max_predictions_per_seq=PREDICTIONS,
            batch_size=8,
            num_train_steps=100,
            warmup_steps=0,
            learning_rate=1e-3,
        )
    )
    config.update(overrides)
    return config


def random_batch(batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch with the BERT feature layout: padding at the end of each row, masked positions
    sorted and unique, a padded prediction slot in every row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(SEQ // 2, SEQ + 1, size=batch_size)
    positions = np.arange(SEQ)[None, :]
    input_mask = (positions < lengths[:, None]).astype(np.int32)
    input_ids = rng.integers(5, VOCAB, size=(batch_size, SEQ)).astype(np.int32) * input_mask
    segment_ids = ((positions >= lengths[:, None] // 2) & (input_mask == 1)).astype(np.int32)
    masked_positions = np.stack(
        [np.sort(rng.choice(np.arange(1, n), PREDICTIONS, replace=False)) for n in lengths]
    ).astype(np.int32)
    weights = np.ones((batch_size, PREDICTIONS), np.float32)
    weights[:, -1] = 0.0
    masked_positions[:, -1] = 0
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "masked_lm_positions": masked_positions,
        "masked_lm_ids": np.take_along_axis(input_ids, masked_positions, 1) * (weights > 0),
        "masked_lm_weights": weights,
        "next_sentence_labels": rng.integers(0, 2, size=batch_size).astype(np.int32),
    }


def setup_run(config, devices=None, seed=0):
    mesh = sharding.create_mesh(config.mesh_shape, devices=devices)
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(config))
    model_config = BertConfig.from_config(config, VOCAB)
    objective = ObjectiveSpec.from_config(config)
    if objective.is_electra:
        model_config = objective.model_factory(model_config)
    state, setup = create_train_state(model_config, tx, mesh, config.logical_axis_rules, seed)
    step_fn = train_step.compile_train_step(
        setup, tx, optim.learning_rate_schedule(optim.OptimizerSpec.from_config(config)), mesh
    )
    return mesh, state, setup, step_fn


def run_steps(config, batches, devices=None):
    mesh, state, _, step_fn = setup_run(config, devices)
    key = jax.random.key(1)
    history = []
    for local_batch in batches:
        batch = sharding.global_batch_from_local(local_batch, mesh)
        state, metrics = step_fn(state, batch, key)
        history.append(jax.device_get(metrics))
    return state, history


def test_one_train_step_is_real():
    config = tiny_config()
    mesh, state, _, step_fn = setup_run(config)
    before = jax.device_get(state.params)
    batch = sharding.global_batch_from_local(random_batch(8), mesh)
    state, metrics = step_fn(state, batch, jax.random.key(0))
    metrics = jax.device_get(metrics)
    assert int(state.step) == 1
    mlm_loss = metrics["mlm_loss_sum"] / metrics["mlm_weight"]
    # Untrained: cross-entropy close to ln(vocab), NSP close to ln 2.
    assert abs(mlm_loss - np.log(VOCAB)) < 0.5
    assert abs(metrics["nsp_loss_sum"] / metrics["nsp_weight"] - np.log(2)) < 0.3
    assert metrics["mlm_weight"] == 8 * (PREDICTIONS - 1)
    assert np.isfinite(metrics["grad_norm"]) and metrics["grad_norm"] > 0
    after = jax.device_get(state.params)
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after)
    assert all(jax.tree.leaves(changed)), "every parameter should receive an update"


@pytest.mark.parametrize("max_grad_norm", [1e-3, 0.0])
def test_train_step_clips_the_gradient_at_max_grad_norm(max_grad_norm):
    """The train step reports the gradient's norm before clipping, and the optimizer uses the
    gradient clipped to norm max_grad_norm (Adam's first moment after one step is (1 - b1) times
    the gradient used); with max_grad_norm = 0 it uses the gradient as it is."""
    config = tiny_config(max_grad_norm=max_grad_norm)
    mesh, state, _, step_fn = setup_run(config)
    batch = sharding.global_batch_from_local(random_batch(8), mesh)
    state, metrics = step_fn(state, batch, jax.random.key(0))
    grad_norm = float(metrics["grad_norm"])
    assert grad_norm > 100 * max_grad_norm  # an untrained model's gradient: clipping bites
    moment = optax.tree_utils.tree_get(state.opt_state, "mu")
    used_norm = float(optax.global_norm(moment)) / (1.0 - config.adam_b1)
    np.testing.assert_allclose(used_norm, max_grad_norm or grad_norm, rtol=1e-4)


@pytest.mark.parametrize("objective", ["bert", "electra"])
def test_the_train_step_returns_the_types_it_takes(objective):
    """So a run compiles its step once, and a fresh state has a restored state's types. Before,
    ELECTRA's discriminator bias started weakly typed (set from a Python float) and was float32
    after step 1: the step compiled twice (24.9 s on a 20-step CPU toy run, against 14.4 s once)."""
    config = tiny_config()
    mesh = sharding.create_mesh(config.mesh_shape)
    spec = optim.OptimizerSpec.from_config(config)
    tx = optim.create_optimizer(spec)
    model = BertConfig.from_config(config, VOCAB)
    factory = ObjectiveSpec(objective=objective).model_factory(model)
    state, setup = create_train_state(factory, tx, mesh, config.logical_axis_rules, 0)
    step_fn = train_step.compile_train_step(setup, tx, optim.learning_rate_schedule(spec), mesh)
    batch = sharding.global_batch_from_local(random_batch(8), mesh)
    new_state, _ = jax.eval_shape(step_fn, state, batch, jax.random.key(0))

    def types(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype, jax.typeof(x).weak_type), tree)

    assert types(new_state) == types(state)
    assert types(state) == types(setup.abstract_state)  # what a restore creates


def test_overfits_one_fixed_batch():
    config = tiny_config(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_train_steps=300
    )
    batch = random_batch(8, seed=3)
    # One device: this is about learning (8 forced devices on 2 cores: 47.5 s -> 21.3 s alone).
    _, history = run_steps(config, [batch] * 150, devices=jax.devices()[:1])
    first = history[0]["mlm_loss_sum"] / history[0]["mlm_weight"]
    last = history[-1]["mlm_loss_sum"] / history[-1]["mlm_weight"]
    assert first > 6.0
    assert last < 0.05, f"MLM loss after 150 steps on one batch: {last}"
    assert history[-1]["nsp_correct_sum"] == 8


@pytest.mark.multi_device
def test_one_device_and_eight_devices_give_the_same_loss():
    config = tiny_config()
    batches = [random_batch(8, seed=s) for s in range(3)]
    _, single = run_steps(config, batches, devices=jax.devices()[:1])
    eight_config = tiny_config(mesh_shape={"data": 8, "fsdp": 1, "tensor": 1})
    state8, multi = run_steps(eight_config, batches, devices=jax.devices()[:8])
    assert (
        len(state8.params["bert"]["embeddings"]["word_embeddings"]["embedding"].sharding.device_set)
        == 8
    )
    for one, eight in zip(single, multi, strict=True):
        for name in ("mlm_loss_sum", "nsp_loss_sum", "grad_norm"):
            np.testing.assert_allclose(eight[name], one[name], rtol=1e-5)


@pytest.mark.multi_device
@pytest.mark.parametrize(
    "objective, hidden, embedding_size",
    [
        ("bert", 32, 0),
        ("bert", 128, 32),  # the two XLA got wrong; more widths: slow
        pytest.param("bert", 128, 40, marks=pytest.mark.slow),
        pytest.param("electra", 128, 32, marks=pytest.mark.slow),
    ],
)
def test_a_2x2x2_mesh_trains_as_one_device_does_at_widths_xla_got_wrong(
    objective, hidden, embedding_size
):
    """Over data, fsdp and tensor axes at once, the losses and gradient norms of one device: a
    32-wide BERT, and embeddings narrower than hidden 128 (the tables, their projection and the
    MLM head that maps back; ELECTRA's generator as wide as the discriminator, so that its two
    heads split over the tensor axis). Before the MLM head's dense layer named its output as
    the tied table names it ("embed", not "mlp"), XLA (jax 0.10.2) computed a wrong gradient in
    each of these: grad_norm 2.68 for 2.84 at E = 32 under 128; at hidden 32 a 0.13 error."""
    fields = dict(objective=objective, hidden_size=hidden, intermediate_size=4 * hidden,
                  embedding_size=embedding_size, generator_hidden_fraction=1.0)  # fmt: skip
    batches = [random_batch(8, seed=s) for s in range(3)]
    _, single = run_steps(tiny_config(**fields), batches, devices=jax.devices()[:1])
    mesh_config = tiny_config(**fields, mesh_shape={"data": 2, "fsdp": 2, "tensor": 2})
    state, multi = run_steps(mesh_config, batches, devices=jax.devices()[:8])
    width = embedding_size or hidden
    embeddings = state.params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert embeddings.shape == (VOCAB, width)
    assert ("embeddings_project" in state.params["bert"]) == bool(embedding_size)
    losses = ("mlm_loss_sum", "nsp_loss_sum") if objective == "bert" else ("mlm_loss_sum",)
    losses += ("rtd_loss_sum",) if objective == "electra" else ()
    for one, eight in zip(single, multi, strict=True):
        for name in (*losses, "grad_norm"):
            np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, err_msg=name)


def test_checkpoint_restores_into_differently_seeded_state_on_another_mesh(tmp_path):
    config = tiny_config()
    mesh, state, _, step_fn = setup_run(config, devices=jax.devices()[:8])
    batch = sharding.global_batch_from_local(random_batch(8), mesh)
    state, _ = step_fn(state, batch, jax.random.key(0))
    manager = checkpointing.create_checkpoint_manager(tmp_path, save_every=1, keep=2)
    checkpointing.save(manager, 1, state, {"model": {"vocab_size": VOCAB}}, force=True)
    manager.wait_until_finished()
    saved = jax.device_get(state)

    # Restore with a fresh manager into a 1-device state initialised from another seed.
    _, other_state, other_setup, _ = setup_run(config, devices=jax.devices()[:1], seed=7)
    assert not np.array_equal(
        jax.device_get(other_state.params["bert"]["pooler"]["dense"]["kernel"]),
        saved.params["bert"]["pooler"]["dense"]["kernel"],
    )
    manager = checkpointing.create_checkpoint_manager(tmp_path, save_every=1, keep=2)
    restored, step = checkpointing.restore_or_init(
        manager, other_setup.abstract_state, lambda: other_state, {"vocab_size": VOCAB}
    )
    assert step == 1
    assert len(restored.params["bert"]["pooler"]["dense"]["kernel"].sharding.device_set) == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), saved)


def test_restore_refuses_a_checkpoint_of_another_architecture(tmp_path):
    config = tiny_config()
    _, state, setup, _ = setup_run(config, devices=jax.devices()[:1])
    manager = checkpointing.create_checkpoint_manager(tmp_path, save_every=1, keep=2)
    checkpointing.save(manager, 1, state, {"model": {"vocab_size": VOCAB}}, force=True)
    manager.wait_until_finished()
    before = files_under(tmp_path)
    with pytest.raises(UserError) as refusal:
        checkpointing.restore_or_init(manager, setup.abstract_state, None, {"vocab_size": 2000})
    message = str(refusal.value)
    assert "\n" not in message
    assert "has vocab_size=1000 but the config asks for 2000" in message  # the field
    assert message.endswith("use the original config or a new --workdir")  # the fix
    assert files_under(tmp_path) == before  # nothing set aside, rewritten or added


def files_under(directory) -> dict[str, tuple[bytes | None, int]]:
    """Every file and directory below `directory`: relative path -> (contents, None for a
    directory; modification time in ns, which a directory's added or removed entries change)."""
    return {
        str(path.relative_to(directory)): (
            path.read_bytes() if path.is_file() else None,
            path.stat().st_mtime_ns,
        )
        for path in sorted(directory.rglob("*"))
    }


def test_an_old_full_width_generator_checkpoint_is_refused_before_anything_is_read(tmp_path):
    """ELECTRA checkpoints saved before embedding_size existed gave a generator as wide as the
    embeddings an H -> H projection bertjax no longer builds: refused in one line, kept."""
    config = tiny_config()
    _, state, setup, _ = setup_run(config, devices=jax.devices()[:1])
    manager = checkpointing.create_checkpoint_manager(tmp_path, save_every=1, keep=2)
    old = {"objective": "electra", "generator_hidden_fraction": 1.0, "hidden_size": 128}
    checkpointing.save(manager, 1, state, {"model": old}, force=True)
    manager.wait_until_finished()
    before = files_under(tmp_path)
    with pytest.raises(UserError, match="ELECTRA checkpoint with a full-width generator"):
        checkpointing.restore_or_init(manager, setup.abstract_state, None, {})
    assert files_under(tmp_path) == before
    # A checkpoint saved since, and one of a narrower generator, pass.
    for saved in (old | {"embedding_size": 0}, old | {"generator_hidden_fraction": 0.25}):
        checkpoint_compatibility.check_generator_layout(saved, "w")


@pytest.mark.parametrize(
    "saved_with, resumed_with",
    [({"max_grad_norm": 1.0}, {"max_grad_norm": 0.0}), ({}, {"optimizer": "lamb"})],
)
def test_a_checkpoint_of_other_optimizer_settings_is_refused_not_set_aside(
    tmp_path, saved_with, resumed_with
):
    """Gradient clipping switched on or off, or adamw <-> lamb, changes which arrays the
    optimizer state holds: the intact checkpoint was set aside as unreadable (every step in
    turn), and the next run started over. Now one line names the settings it was saved with."""
    _, state, _, _ = setup_run(tiny_config(**saved_with), devices=jax.devices()[:1])
    saved_config = {"optimizer": "adamw", "max_grad_norm": 1.0} | saved_with
    directory = tmp_path / "checkpoints"
    manager = checkpointing.create_checkpoint_manager(directory, save_every=1, keep=2)
    for step in (1, 2):
        checkpointing.save(manager, step, state, {"model": {}, "config": saved_config}, force=True)
    checkpointing.close_manager(manager)
    # A new manager, as a resumed run has (one that saved knew the items' handlers: the check
    # passed the tests while a real resume set the latest checkpoint aside)
    manager = checkpointing.create_checkpoint_manager(directory, save_every=1, keep=2)
    before = files_under(tmp_path)
    _, _, other_setup, _ = setup_run(tiny_config(**resumed_with), devices=jax.devices()[:1])
    with pytest.raises(UserError) as refusal:
        checkpointing.restore_or_init(manager, other_setup.abstract_state, None, {})
    message = str(refusal.value)
    assert "\n" not in message and message.startswith("checkpoint at step 2 in ")
    expected = f"--config.optimizer=adamw --config.max_grad_norm={saved_config['max_grad_norm']}"
    assert f"resume with the optimizer settings it was saved with ({expected})" in message
    assert message.endswith(f"--config.init_from={tmp_path}")
    assert files_under(tmp_path) == before  # nothing set aside
    _, _, same_setup, _ = setup_run(tiny_config(**saved_with), devices=jax.devices()[:1])
    _, step = checkpointing.restore_or_init(manager, same_setup.abstract_state, None, {})
    assert step == 2


def test_a_checkpoint_whose_parameters_read_as_nan_is_set_aside(tmp_path):
    """Bytes damaged on disk can read back as NaN: the run resumed, trained NaN parameters
    (every update skipped) and ended "Done.", while keep-N deleted the good checkpoints. Now
    such a step is set aside as unreadable and the previous one restored."""
    _, state, setup, _ = setup_run(tiny_config(), devices=jax.devices()[:1])
    manager = checkpointing.create_checkpoint_manager(tmp_path, save_every=1, keep=3)
    checkpointing.save(manager, 1, state, {"model": {}}, force=True)
    kernel = state.params["bert"]["pooler"]["dense"]["kernel"]
    damaged = dict(state.params["bert"]["pooler"]["dense"], kernel=kernel.at[0, 0].set(np.nan))
    params = {**state.params, "bert": {**state.params["bert"], "pooler": {"dense": damaged}}}
    checkpointing.save(manager, 2, state.replace(params=params), {"model": {}}, force=True)
    manager.wait_until_finished()
    restored, step = checkpointing.restore_or_init(manager, setup.abstract_state, None, {})
    assert step == 1 and (tmp_path / "2.unreadable").is_dir()
    assert np.isfinite(np.asarray(restored.params["bert"]["pooler"]["dense"]["kernel"])).all()


# Without dropout (slow, 24 s): accumulation equals the whole batch (tests/test_memory_levers.py)
# and a step's loss does not depend on the step (the bit-identical resume tests).
@pytest.mark.parametrize("dropout", [0.1, pytest.param(0.0, marks=pytest.mark.slow)])
def test_each_step_and_each_microbatch_draws_its_own_dropout(dropout):
    """The same parameters and batch at steps 0 and 1 give other losses under dropout (its masks
    come from the step), the same without it; and accumulated microbatches each get their own
    key (two identical microbatches: not twice one's loss)."""
    config = tiny_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    mesh, state, setup, _ = setup_run(config)
    spec = optim.OptimizerSpec.from_config(config)
    step = jax.jit(
        functools.partial(
            train_step.train_step, setup=setup, tx=optim.create_optimizer(spec),
            schedule=optim.learning_rate_schedule(spec),
        ),
        static_argnames="grad_accum_steps",
    )  # fmt: skip
    half = random_batch(8)
    batch = {k: np.repeat(v, 2, axis=0) for k, v in half.items()}  # rows 2i, 2i + 1 the same
    key = jax.random.key(7)

    def loss(state, batch, **kwargs):
        return float(step(state, batch, key, **kwargs)[1]["mlm_loss_sum"])

    at_step_0 = loss(state, batch)
    assert (loss(state.replace(step=state.step + 1), batch) != at_step_0) == (dropout > 0)
    one = loss(state, half)  # microbatch m holds rows m, m + 2, ...: each equals `half`
    accumulated = loss(state, batch, grad_accum_steps=2)
    if dropout:
        assert abs(accumulated - 2 * one) > 1e-3 * abs(one)
    else:
        np.testing.assert_allclose(accumulated, 2 * one, rtol=1e-5)


@pytest.mark.multi_device
@pytest.mark.parametrize("objective", ["bert", "electra"])
def test_the_abstract_state_is_the_initialised_one(objective):
    """What a restore reads into (setup.abstract_state, built from one abstract model) has the
    tree, shapes, dtypes, weak types and shardings of the state init makes."""
    config = tiny_config(
        objective=objective, mesh_shape={"data": 2, "fsdp": 2, "tensor": 2},
        generator_hidden_fraction=1.0,
    )  # fmt: skip
    _, state, setup, _ = setup_run(config, devices=jax.devices()[:8])
    made, made_tree = jax.tree.flatten(state)
    abstract, abstract_tree = jax.tree.flatten(setup.abstract_state)
    assert made_tree == abstract_tree
    for array, shape in zip(made, abstract, strict=True):
        assert (array.shape, array.dtype, array.weak_type) == (
            shape.shape, shape.dtype, shape.weak_type,
        )  # fmt: skip
        assert array.sharding.is_equivalent_to(shape.sharding, array.ndim)


def test_a_resume_with_another_objective_or_generator_width_is_one_line():
    """The objective's fields are compared like the architecture's: another objective or
    generator width cannot read the checkpoint's parameters (a checkpoint naming no objective
    holds BERT's)."""
    saved = {"objective": "electra", "generator_hidden_fraction": 0.25, "hidden_size": 128,
             "embedding_size": 0}  # fmt: skip
    checkpoint_compatibility.check_compatible(saved, dict(saved), "w")  # the same: no error
    for field, value in (("objective", "bert"), ("generator_hidden_fraction", 0.5)):
        with pytest.raises(UserError, match=f"has {field}=.* but the config asks for {value};"):
            checkpoint_compatibility.check_compatible(saved, {**saved, field: value}, "w")
    with pytest.raises(UserError, match="has objective=bert but the config asks for electra"):
        checkpoint_compatibility.check_compatible({"hidden_size": 128}, saved, "w")
