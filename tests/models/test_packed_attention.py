"""Packed rows: with attention_segment_ids, no token attends across documents."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bertjax.models.bert import BertConfig, BertForPreTraining

CONFIG = BertConfig(
    vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64,
)  # fmt: skip


def test_changing_one_document_leaves_the_other_untouched():
    model = BertForPreTraining(CONFIG, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 500, size=(2, 16)).astype(np.int32)
    documents = np.array([[1] * 6 + [2] * 7 + [0] * 3, [1] * 10 + [2] * 6], np.int32)
    input_mask = (documents > 0).astype(np.int32)
    segments = np.zeros_like(ids)
    changed = ids.copy()
    changed[documents == 2] = rng.integers(5, 500, size=int((documents == 2).sum()))

    def sequence_output(token_ids, attention_segment_ids):
        encoded = model.encode(
            jnp.asarray(token_ids), jnp.asarray(segments), jnp.asarray(input_mask),
            attention_segment_ids=attention_segment_ids,
        )  # fmt: skip
        return np.asarray(encoded["sequence_output"])

    packed = jnp.asarray(documents)
    first = documents == 1
    np.testing.assert_allclose(
        sequence_output(changed, packed)[first], sequence_output(ids, packed)[first], atol=1e-6
    )
    # Without the document ids, attention crosses documents and the first one changes.
    assert not np.allclose(sequence_output(changed, None)[first], sequence_output(ids, None)[first])
