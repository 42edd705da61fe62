"""Rotary positions (`position_embedding_type="rotary"`, bertjax/models/positions.py): the
property that defines them, checked directly, and what it buys a packed row. That they are
RoFormer's rotation is checked against transformers in tests/convert/test_variants.py."""

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bertjax.models import positions
from bertjax.models.bert import BertConfig, BertForPreTraining

CONFIG = BertConfig(
    vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=64, position_embedding_type="rotary",
)  # fmt: skip


def rotated_scores(query: np.ndarray, key: np.ndarray, length: int, theta: float) -> np.ndarray:
    """[L, L] dot products of `query` at every position with `key` at every position, both
    rotated (one head)."""
    q = positions.rotate(jnp.broadcast_to(jnp.asarray(query), (1, length, 1, query.size)), theta)
    k = positions.rotate(jnp.broadcast_to(jnp.asarray(key), (1, length, 1, key.size)), theta)
    return np.asarray(jnp.einsum("bind,bjnd->ij", q, k))


def test_rotated_scores_depend_on_the_distance_alone():
    """The same query and key vectors anywhere in a row: their score depends on j - i only (a
    Toeplitz matrix), differs with the distance, and at distance 0 is the plain dot product."""
    rng = np.random.default_rng(0)
    query, key = rng.normal(size=(2, 16)).astype(np.float32)
    scores = rotated_scores(query, key, 48, 10000.0)
    np.testing.assert_allclose(scores[1:, 1:], scores[:-1, :-1], atol=1e-4)
    np.testing.assert_allclose(np.diag(scores), float(query @ key), rtol=1e-5)
    assert np.ptp(scores[0]) > 1.0  # positions do change the scores
    slower = rotated_scores(query, key, 48, 1e6)  # a larger theta turns slower
    assert np.abs(slower[0, :4] - query @ key).max() < np.abs(scores[0, :4] - query @ key).max()


def test_rotation_keeps_lengths_and_bfloat16_follows_float32():
    x = np.random.default_rng(1).normal(size=(2, 40, 4, 8)).astype(np.float32)
    rotated = np.asarray(positions.rotate(jnp.asarray(x), 10000.0))
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(rotated[:, 0], x[:, 0])  # position 0 is not turned
    half = positions.rotate(jnp.asarray(x, jnp.bfloat16), 10000.0)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half, np.float32), rotated, atol=0.05)


def test_a_packed_document_is_encoded_alike_at_any_offset():
    """With rotary positions a document's outputs do not depend on where a packed row puts it
    (its scores depend on distances; attention across documents is masked); with absolute
    positions they do."""
    rng = np.random.default_rng(2)
    alone = rng.integers(5, 500, size=20).astype(np.int32)
    before = rng.integers(5, 500, size=30).astype(np.int32)
    ids = np.stack([np.concatenate([alone, np.zeros(30, np.int32)]),
                    np.concatenate([before, alone])])  # fmt: skip
    documents = np.array([[1] * 20 + [0] * 30, [1] * 30 + [2] * 20], np.int32)

    def document_outputs(config):
        model = BertForPreTraining(config, rngs=nnx.Rngs(0))
        mask = jnp.asarray((documents > 0).astype(np.int32))
        encoded = model.encode(
            jnp.asarray(ids),
            jnp.zeros_like(mask),
            mask,
            attention_segment_ids=jnp.asarray(documents),
        )["sequence_output"]
        return np.asarray(encoded[0, :20]), np.asarray(encoded[1, 30:])

    at_start, after_another = document_outputs(CONFIG)
    np.testing.assert_allclose(at_start, after_another, atol=2e-5)
    absolute = dataclasses.replace(CONFIG, position_embedding_type="absolute")
    at_start, after_another = document_outputs(absolute)
    assert np.abs(at_start - after_another).max() > 0.1
