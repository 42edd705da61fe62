"""ELECTRA's model: sampling without gradient, the replaced positions, the generator's shape,
and parity of both networks with transformers' Electra models (random weights, every leaf)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bertjax import losses
from bertjax.convert import electra, weight_files
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig
from bertjax.models.electra import (
    ElectraForPreTraining,
    create_electra,
    generator_config,
    replace_masked_tokens,
)
from bertjax.objectives import ObjectiveSpec

VOCAB, SEQ, PREDICTIONS = 120, 24, 6
CONFIG = BertConfig(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=32,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
GENERATOR_PARAMS = ("generator", "generator_predictions", "generator_lm_head")


def masked_batch(seed: int = 0, batch_size: int = 4) -> dict:
    """Rows with padding at the end, sorted unique masked positions whose ids are [MASK] (id 3)
    in input_ids, and one padded prediction slot per row."""
    rng = np.random.default_rng(seed)
    original = rng.integers(5, VOCAB, (batch_size, SEQ)).astype(np.int32)
    lengths = rng.integers(SEQ // 2, SEQ + 1, batch_size)
    input_mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
    original *= input_mask
    positions = np.stack(
        [np.sort(rng.choice(np.arange(1, n), PREDICTIONS, replace=False)) for n in lengths]
    ).astype(np.int32)
    weights = np.ones((batch_size, PREDICTIONS), np.float32)
    weights[:, -1], positions[:, -1] = 0.0, 0
    input_ids = original.copy()
    np.put_along_axis(input_ids, positions[:, :-1], 3, axis=1)
    return {
        "input_ids": input_ids,
        "segment_ids": np.zeros_like(input_ids),
        "input_mask": input_mask,
        "masked_lm_positions": positions,
        "masked_lm_ids": np.take_along_axis(original, positions, 1) * (weights > 0),
        "masked_lm_weights": weights,
        "original": original,
    }


def test_generator_config_follows_electra():
    small = dataclass_fields(generator_config(CONFIG, 0.25))
    assert small == (16, 1, 64, 2)  # width H/4, at least one head, 4x feed-forward, same depth
    base = BertConfig(vocab_size=10)  # 768 wide, 12 heads
    assert dataclass_fields(generator_config(base, 1 / 3)) == (256, 4, 1024, 12)


def dataclass_fields(config: BertConfig) -> tuple:
    return (
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
        config.num_hidden_layers,
    )


def test_replaced_positions_are_the_masked_ones_where_the_sample_differs():
    batch = masked_batch()
    model = create_electra(CONFIG, 0.25, 50.0, 0)
    outputs = model(jax.tree.map(jnp.asarray, batch), jax.random.key(3))
    sampled = np.asarray(outputs["sampled_ids"])
    expected = np.zeros_like(batch["input_ids"], np.float32)
    for row in range(len(sampled)):
        for slot, position in enumerate(batch["masked_lm_positions"][row]):
            if batch["masked_lm_weights"][row, slot] > 0:
                expected[row, position] = sampled[row, slot] != batch["masked_lm_ids"][row, slot]
    np.testing.assert_array_equal(np.asarray(outputs["replaced"]), expected)
    # Some samples equal the original (a replacement that is not one), most differ.
    real = batch["masked_lm_weights"] > 0
    assert 0 < expected.sum() <= real.sum()


def test_replace_masked_tokens_restores_the_original_and_keeps_padding_slots():
    batch = masked_batch(seed=1)
    sampled = np.full_like(batch["masked_lm_ids"], 4)
    original, corrupted = replace_masked_tokens(
        *(jnp.asarray(batch[k]) for k in ("input_ids", "masked_lm_positions")),
        jnp.asarray(batch["masked_lm_ids"]),
        jnp.asarray(batch["masked_lm_weights"]),
        jnp.asarray(sampled),
    )
    np.testing.assert_array_equal(original, batch["original"])
    changed = np.asarray(corrupted) != batch["original"]
    assert changed.sum() == (batch["masked_lm_weights"] > 0).sum()  # position 0 ([CLS]) kept
    assert not changed[:, 0].any()


def test_generator_receives_no_gradient_through_the_sampling():
    """The discriminator's loss reaches the shared embeddings and the discriminator, never the
    generator's own parameters (samples are drawn from stop_gradient(logits))."""
    batch = jax.tree.map(jnp.asarray, masked_batch(seed=2))
    model = create_electra(CONFIG, 0.25, 50.0, 0)
    graphdef, params = nnx.split(model, nnx.Param)

    def discriminator_loss(params):
        outputs = nnx.merge(graphdef, params)(batch, jax.random.key(0))
        sums = losses.pretraining_sums(outputs, batch)
        return sums["rtd_loss_sum"]

    grads = nnx.to_pure_dict(jax.grad(discriminator_loss)(params))
    for name in GENERATOR_PARAMS:
        norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[name])]
        assert max(norms) == 0.0, name
    assert float(jnp.abs(grads["bert"]["embeddings"]["word_embeddings"]["embedding"]).max()) > 0
    assert float(jnp.abs(grads["discriminator_predictions"]["dense"]["kernel"]).max()) > 0


def test_objective_spec_checks_its_fields():
    with pytest.raises(UserError, match="objective='t5' is unknown"):
        ObjectiveSpec(objective="t5")
    with pytest.raises(UserError, match="generator_hidden_fraction=0"):
        ObjectiveSpec(objective="electra", generator_hidden_fraction=0)
    with pytest.raises(UserError, match="discriminator_weight=-1"):
        ObjectiveSpec(discriminator_weight=-1)


def test_electra_flops_count_both_networks():
    bert, electra_spec = ObjectiveSpec(), ObjectiveSpec(objective="electra")
    kwargs = dict(seq_len=128, vocab_size=30522, predictions_fraction=20 / 128)
    base = BertConfig(vocab_size=30522)
    discriminator_only = bert.flops_per_token(base, **{**kwargs, "predictions_fraction": 0.0})
    total = electra_spec.flops_per_token(base, **kwargs)
    # ELECTRA-base with a 1/4 generator: ~1.1x BERT-base's encoder FLOPs (the paper's Table 1
    # puts the generator at a small fraction of the discriminator's compute).
    assert 1.05 < total / discriminator_only < 1.2


def random_electra_params(config: BertConfig, fraction: float, seed: int) -> dict:
    abstract = nnx.state(nnx.eval_shape(lambda: create_electra(config, fraction, 50.0, 0)))
    leaves, treedef = jax.tree.flatten(abstract.to_pure_dict())
    rng = np.random.default_rng(seed)
    values = [
        (
            rng.normal(size=leaf.shape) * (0.2 if leaf.ndim > 1 else 0.5) + (leaf.ndim == 1) * 0.1
        ).astype(np.float32)
        for leaf in leaves
    ]
    return jax.tree.unflatten(treedef, values)


def write_dir(directory, tensors: dict, fields: dict):
    directory.mkdir(parents=True)
    weight_files.write_safetensors(tensors, directory / weight_files.SAFETENSORS_FILE)
    (directory / "config.json").write_text(json.dumps(fields))
    return directory


@pytest.mark.parametrize(
    "position_embedding_type, embedding_size, fraction",
    [("absolute", 0, 0.25), ("relative_key", 0, 0.25),
     ("absolute", 32, 0.25),  # ELECTRA-Small's layout: E < H, both networks project
     ("relative_key", 16, 0.25),  # E = G: the generator has no projection (nor has HF's)
     ("absolute", 0, 1.0)],  # G = E = H: neither has one
)  # fmt: skip
def test_both_networks_match_transformers_electra(
    tmp_path, position_embedding_type, embedding_size, fraction
):
    """Every leaf random: ElectraForPreTraining logits (discriminator) and ElectraForMaskedLM
    logits (generator) within 1e-4 of bertjax's, loaded with no missing or unexpected keys;
    with the shared embeddings as wide as the discriminator (H = 64), narrower (E = 32) and as
    wide as the generator (E = G = 16)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = dataclasses.replace(
        CONFIG, position_embedding_type=position_embedding_type, embedding_size=embedding_size
    )
    params = random_electra_params(config, fraction, seed=0)
    model = nnx.merge(nnx.graphdef(create_electra(config, fraction, 50.0, 0)), params)
    projects = (embedding_size or 64) != 64, (embedding_size or 64) != round(64 * fraction)
    projections = ("embeddings_project" in params[name] for name in ("bert", "generator"))
    assert tuple(projections) == projects
    discriminator = write_dir(
        tmp_path / "d",
        electra.discriminator_tensors(params),
        electra.hf_config(config, pad_token_id=0),
    )
    generator = write_dir(
        tmp_path / "g",
        electra.generator_tensors(params),
        electra.hf_config(config, pad_token_id=0, generator_hidden_fraction=fraction),
    )
    batch = masked_batch(seed=4)
    segments = (np.arange(SEQ)[None] >= SEQ // 2).astype(np.int32) * batch["input_mask"]
    inputs = dict(
        input_ids=torch.tensor(batch["original"]),
        attention_mask=torch.tensor(batch["input_mask"]),
        token_type_ids=torch.tensor(segments),
    )
    real = batch["input_mask"].astype(bool)
    jax_batch = {**jax.tree.map(jnp.asarray, batch), "segment_ids": jnp.asarray(segments)}
    for directory, loader, ours in (
        (discriminator, transformers.ElectraForPreTraining,
         model.discriminator_logits(jnp.asarray(batch["original"]), jax_batch)),
        (generator, transformers.ElectraForMaskedLM,
         model.mlm_logits_all(jnp.asarray(batch["original"]), jnp.asarray(segments),
                              jnp.asarray(batch["input_mask"]))),
    ):  # fmt: skip
        reference, info = loader.from_pretrained(directory, output_loading_info=True)
        assert info["missing_keys"] == [] and info["unexpected_keys"] == [], directory
        with torch.no_grad():
            theirs = reference.eval()(**inputs).logits.numpy()
        np.testing.assert_allclose(np.asarray(ours)[real], theirs[real], atol=1e-4, rtol=0)


def test_pre_ln_electra_export_is_refused_in_one_line():
    with pytest.raises(UserError, match="pre-LN blocks .* cannot hold"):
        electra.check_exportable(BertConfig(vocab_size=10, layer_norm_placement="pre"))


def test_electra_module_is_the_pretraining_model_of_the_objective():
    model = ObjectiveSpec(objective="electra").model_factory(CONFIG, masked_lm_prob=0.2)(0)
    assert isinstance(model, ElectraForPreTraining)
    assert model.generator_config.hidden_size == 16
    # The discriminator starts at the replacement rate (docs/electra.md), not at 0.5.
    bias = model.discriminator_predictions.dense_prediction.bias[...]
    np.testing.assert_allclose(np.asarray(bias), [np.log(0.2 / 0.8)], rtol=1e-6)
