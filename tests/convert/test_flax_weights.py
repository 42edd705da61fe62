"""Hugging Face Flax BERT checkpoints (flax_model.msgpack) imported and run against the Flax
model that wrote them: transformers' own FlaxBertForPreTraining and
FlaxBertForSequenceClassification (deprecated in transformers 4.x, removed in v5: bertjax is
where their checkpoints go on)."""

import numpy as np
import pytest

from bertjax.convert import flax_weights, import_checkpoint, load_model
from tests.convert.helpers import ATOL, tiny_vocab
from tests.convert.test_export_finetuned import bertjax_logits
from tests.convert.test_variants import inputs

transformers = pytest.importorskip("transformers", reason="transformers not installed")


def _flax_model(cls, tmp_path, **config):
    settings = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, max_position_embeddings=40, **config)  # fmt: skip
    model = cls(transformers.BertConfig(**settings), seed=3)
    model.save_pretrained(tmp_path / "flax")
    (tmp_path / "flax" / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    assert (tmp_path / "flax" / flax_weights.FLAX_FILE).is_file()
    assert not (tmp_path / "flax" / "model.safetensors").exists()
    return model


def test_a_flax_pretraining_checkpoint_imports_with_its_mlm_logits(tmp_path):
    model = _flax_model(transformers.FlaxBertForPreTraining, tmp_path)
    ids, segments, mask = inputs()
    theirs = model(ids, attention_mask=mask, token_type_ids=segments).prediction_logits
    result = import_checkpoint(tmp_path / "flax", tmp_path / "imported")
    assert not result.initialised  # every head came from the file
    ours = load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask)
    real = mask.astype(bool)  # padded positions differ by the attention bias used
    np.testing.assert_allclose(np.asarray(ours)[real], np.asarray(theirs)[real], atol=ATOL)


def test_a_flax_classifier_imports_as_a_fine_tuned_model(tmp_path):
    labels = {"id2label": {0: "neg", 1: "pos", 2: "neutral"}}
    model = _flax_model(transformers.FlaxBertForSequenceClassification, tmp_path, **labels)
    ids, segments, mask = inputs()
    theirs = model(ids, attention_mask=mask, token_type_ids=segments).logits
    result = import_checkpoint(tmp_path / "flax", tmp_path / "imported")
    assert result.task["labels"] == ["neg", "pos", "neutral"]
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    np.testing.assert_allclose(ours, np.asarray(theirs), atol=ATOL)
