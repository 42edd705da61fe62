"""Tests for bertjax/vocabulary_growth.py: which vocabulary a run from --config.init_from may
use, and how the parameters' vocabulary axes grow."""

import numpy as np
import pytest

from bertjax.errors import UserError
from bertjax.vocabulary_growth import grow_vocabulary_axes, init_vocabulary

BASE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "a"]


def _vocab_dir(path, tokens):
    path.mkdir()
    (path / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return str(path)


def test_the_same_vocabulary_or_one_that_extends_it(tmp_path):
    model = _vocab_dir(tmp_path / "model", BASE)
    assert init_vocabulary(model, _vocab_dir(tmp_path / "same", BASE)) is None
    assert init_vocabulary(model, _vocab_dir(tmp_path / "more", [*BASE, "η", "##η"])) == len(BASE)


@pytest.mark.parametrize(
    "tokens, where",
    [
        # Same size, two tokens swapped: the embedding rows would belong to other tokens.
        ([*BASE[:5], "a", "##s", "the"], "part from them at id 5"),
        (BASE[:6], "'s 6 part from them at id 6"),  # fewer tokens
        (["η", *BASE], "part from them at id 0"),  # new tokens before the base's
    ],
)
def test_another_vocabulary_is_refused(tmp_path, tokens, where):
    model = _vocab_dir(tmp_path / "model", BASE)
    with pytest.raises(UserError, match=rf"init_from={model} has another vocabulary .*{where}"):
        init_vocabulary(model, _vocab_dir(tmp_path / "other", tokens))


def test_a_sentencepiece_model_must_be_the_same_file(tmp_path):
    model = _vocab_dir(tmp_path / "model", BASE)
    (tmp_path / "model" / "sentencepiece.model").write_bytes(b"one")
    other = _vocab_dir(tmp_path / "other", BASE)
    with pytest.raises(UserError, match="has another vocabulary"):
        init_vocabulary(model, other)
    (tmp_path / "other" / "sentencepiece.model").write_bytes(b"one")
    assert init_vocabulary(model, other) is None


def test_a_model_dir_without_vocab_txt_is_not_compared(tmp_path):
    (tmp_path / "old").mkdir()
    assert init_vocabulary(str(tmp_path / "old"), _vocab_dir(tmp_path / "v", BASE)) is None


def test_vocabulary_axes_grow_by_mean_rows():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(8, 3)).astype(np.float32)
    grown = grow_vocabulary_axes(embeddings, (11, 3), 8)
    np.testing.assert_array_equal(grown[:8], embeddings)
    np.testing.assert_allclose(grown[8:], np.tile(embeddings.mean(0), (3, 1)), rtol=1e-6)
    bias = rng.normal(size=8).astype(np.float32)
    np.testing.assert_allclose(grow_vocabulary_axes(bias, (9,), 8)[8], bias.mean(), rtol=1e-6)
    assert grow_vocabulary_axes(embeddings, (8, 3), 8) is embeddings
    with pytest.raises(ValueError, match="cannot grow"):
        grow_vocabulary_axes(embeddings, (8, 4), 8)  # not a vocabulary axis
