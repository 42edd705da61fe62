"""benchmarks/discriminator_probe.py and benchmarks/representation_rank.py, the scripts behind
docs/electra.md's collapse measurements: the probe's two trainers (bertjax's discriminator and
transformers' ElectraForPreTraining, its independent reference) compute the same thing from the
same start, its unigram corruption touches only the masked positions, and the representation
statistics read only the real tokens' states."""

import types

import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import discriminator_probe as probe
from benchmarks import representation_rank
from bertjax.models.bert import create_model
from bertjax.models.config import BertConfig
from bertjax.models.electra import create_electra
from bertjax.optim import OptimizerSpec

CONFIG = BertConfig(
    vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=16, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)  # fmt: skip
GENERATOR_FRACTION = 0.25


def rows(seed: int) -> dict:
    """Two rows of 12: one padded after 9 tokens, one packed from two examples (7 + 5)."""
    rng = np.random.default_rng(seed)
    mask = np.array([[1] * 9 + [0] * 3, [1] * 12], np.int32)
    return {
        "input_ids": (rng.integers(5, CONFIG.vocab_size, (2, 12)) * mask).astype(np.int32),
        "segment_ids": np.array([[0] * 5 + [1] * 7, [0] * 4 + [1] * 3 + [0] * 2 + [1] * 3]),
        "input_mask": mask,
        "attention_segment_ids": np.array([[1] * 9 + [0] * 3, [1] * 7 + [2] * 5], np.int32),
        "masked_lm_positions": np.array([[1, 3, 6, 0], [2, 5, 8, 10]], np.int32),
        "masked_lm_ids": rng.integers(5, CONFIG.vocab_size, (2, 4)).astype(np.int32),
        "masked_lm_weights": np.array([[1, 1, 1, 0], [1, 1, 1, 1]], np.float32),
    }


def test_unigram_corruption_replaces_only_the_weighted_masked_positions():
    batch = rows(0)
    probabilities = np.full(CONFIG.vocab_size, 1.0 / CONFIG.vocab_size)
    corrupted, replaced = probe.unigram_corruption(batch, probabilities, np.random.default_rng(0))
    corrupted, replaced = np.asarray(corrupted), np.asarray(replaced)
    original = batch["input_ids"].copy()
    used = batch["masked_lm_weights"] > 0
    for row in range(len(original)):  # the row before masking
        original[row, batch["masked_lm_positions"][row][used[row]]] = batch["masked_lm_ids"][row][
            used[row]
        ]
    np.testing.assert_array_equal(replaced, (corrupted != original).astype(np.float32))
    masked = np.zeros_like(replaced, bool)
    masked[0, [1, 3, 6]] = masked[1, [2, 5, 8, 10]] = True
    assert not replaced[~masked].any()
    np.testing.assert_array_equal(corrupted[~masked], batch["input_ids"][~masked])


def test_the_transformers_reference_trains_like_the_bertjax_discriminator():
    """Same initial discriminator (bertjax's, exported), same corrupted rows (padded and packed),
    same AdamW, schedule and clipping: the held-out logits agree before and after 6 steps. The
    clipping threshold is below the gradients' norm and the decay is strong enough that
    leaving either out of the reference fails the comparison."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    optimizer = OptimizerSpec(
        num_train_steps=6, warmup_steps=2, learning_rate=3e-3, weight_decay=0.5, max_grad_norm=1e-3
    )
    spec = types.SimpleNamespace(
        objective=types.SimpleNamespace(generator_hidden_fraction=GENERATOR_FRACTION)
    )
    ours_step, ours_outputs = probe.bertjax_trainer(CONFIG, spec, optimizer)
    start = create_electra(CONFIG, GENERATOR_FRACTION, 1.0, 0)
    theirs_step, theirs_outputs = probe.transformers_trainer(CONFIG, optimizer, start)
    probabilities = np.full(CONFIG.vocab_size, 1.0 / CONFIG.vocab_size)
    rng = np.random.default_rng(1)
    held_out = rows(100)
    held_ids, _ = probe.unigram_corruption(held_out, probabilities, rng)
    real = held_out["input_mask"] > 0

    def logits_agree(tolerance: float) -> float:
        ours, ours_states = ours_outputs(held_ids, held_out)
        theirs, theirs_states = theirs_outputs(held_ids, held_out)
        np.testing.assert_allclose(ours[real], theirs[real], atol=tolerance)
        np.testing.assert_allclose(ours_states[real], theirs_states[real], atol=tolerance)
        return ours[real]

    before = logits_agree(1e-5)
    for step in range(6):
        batch = rows(step)
        ids, replaced = probe.unigram_corruption(batch, probabilities, rng)
        ours_step(ids, replaced, batch)
        theirs_step(ids, replaced, batch)
    after = logits_agree(1e-5)
    assert np.abs(after - before).max() > 1e-2  # the steps moved the logits well past tolerance


def test_representation_statistics_read_the_real_tokens_only():
    bert = create_model(CONFIG, 0).bert
    batch = {k: jnp.asarray(v) for k, v in rows(0).items()}
    stats = representation_rank.representation_stats(bert, [batch], by_layer=True)
    padding_changed = batch | {"input_ids": batch["input_ids"].at[0, 9:].set(7)}
    assert representation_rank.representation_stats(bert, [padding_changed], True) == stats
    assert len(stats["layer_ranks"]) == CONFIG.num_hidden_layers + 1
    states = np.asarray(bert(batch["input_ids"], batch["segment_ids"], batch["input_mask"],
                             attention_segment_ids=batch["attention_segment_ids"],
                             deterministic=True)["sequence_output"])  # fmt: skip
    tokens = states[np.asarray(batch["input_mask"]) > 0]
    assert stats["token_effective_rank"] == pytest.approx(
        representation_rank.token_stats(tokens)["token_effective_rank"], rel=1e-6
    )
    unit = states[:, 0] / np.linalg.norm(states[:, 0], axis=-1, keepdims=True)
    assert stats["cls_cosine"] == pytest.approx(float(unit[0] @ unit[1]), abs=1e-5)
