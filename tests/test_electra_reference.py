"""benchmarks/electra_reference.py, the transformers ELECTRA loop that checks bertjax's runs: its
corruption is bertjax's, and its generator shares the discriminator's embeddings."""

import jax.numpy as jnp
import numpy as np
import pytest

from bertjax.models.config import BertConfig
from bertjax.models.electra import replace_masked_tokens

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
reference = pytest.importorskip("benchmarks.electra_reference")


def test_corruption_matches_bertjax_replace_masked_tokens():
    rng = np.random.default_rng(0)
    batch = {
        "input_ids": rng.integers(5, 50, (3, 12)),
        "masked_lm_positions": np.array([[1, 4, 7, 0], [2, 3, 0, 0], [5, 6, 9, 10]]),
        "masked_lm_ids": rng.integers(5, 50, (3, 4)),
        "masked_lm_weights": np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32),
    }
    sampled = batch["masked_lm_ids"] + 50  # every sample differs from the original ...
    sampled[0, 0] = batch["masked_lm_ids"][0, 0]  # ... but this one
    corrupted, replaced = reference.corrupt(batch, torch.as_tensor(sampled))
    original, expected = replace_masked_tokens(
        *(jnp.asarray(batch[k]) for k in ("input_ids", "masked_lm_positions", "masked_lm_ids")),
        jnp.asarray(batch["masked_lm_weights"]),
        jnp.asarray(sampled),
    )
    np.testing.assert_array_equal(corrupted.numpy(), np.asarray(expected))
    np.testing.assert_array_equal(replaced.numpy(), np.asarray(expected != original))
    assert replaced[0, 1].item() == 0.0 and replaced.sum().item() == 8


def test_generator_shares_the_discriminators_embeddings_and_starts_at_the_prior():
    config = BertConfig(
        vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=32,
    )  # fmt: skip
    generator, discriminator = reference.build_models(config, 0.25, 0.15)
    assert generator.electra.embeddings is discriminator.electra.embeddings
    words = discriminator.electra.embeddings.word_embeddings.weight
    assert generator.generator_lm_head.weight is words
    assert generator.config.hidden_size == 16 and generator.config.embedding_size == 64
    bias = discriminator.discriminator_predictions.dense_prediction.bias.item()
    assert bias == pytest.approx(np.log(0.15 / 0.85), abs=1e-6)
