"""Hugging Face Flax BERT checkpoints (flax_model.msgpack) imported and run against the Flax
model that wrote them: transformers' own FlaxBertForPreTraining and
FlaxBertForSequenceClassification (deprecated in transformers 4.x, removed in v5: bertjax is
where their checkpoints go on)."""

import numpy as np
import pytest

from bertjax.convert import flax_weights, import_checkpoint, load_model
from bertjax.errors import UserError
from tests.convert.helpers import ATOL, tiny_vocab
from tests.convert.test_export_finetuned import bertjax_logits
from tests.convert.test_variants import inputs

transformers = pytest.importorskip("transformers", reason="transformers not installed")


def _flax_model(cls, tmp_path, max_shard_size="10GB", **config):
    settings = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, max_position_embeddings=40, **config)  # fmt: skip
    model = cls(transformers.BertConfig(**settings), seed=3)
    model.save_pretrained(tmp_path / "flax", max_shard_size=max_shard_size)
    (tmp_path / "flax" / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    assert not (tmp_path / "flax" / "model.safetensors").exists()
    return model


def test_a_flax_pretraining_checkpoint_imports_with_its_mlm_logits(tmp_path):
    model = _flax_model(transformers.FlaxBertForPreTraining, tmp_path)
    assert (tmp_path / "flax" / flax_weights.FLAX_FILE).is_file()
    ids, segments, mask = inputs()
    theirs = model(ids, attention_mask=mask, token_type_ids=segments).prediction_logits
    result = import_checkpoint(tmp_path / "flax", tmp_path / "imported")
    assert not result.initialised  # every head came from the file
    ours = load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask)
    real = mask.astype(bool)  # padded positions differ by the attention bias used
    np.testing.assert_allclose(np.asarray(ours)[real], np.asarray(theirs)[real], atol=ATOL)


def test_a_sharded_flax_checkpoint_imports_whole_and_a_missing_shard_is_refused(tmp_path):
    model = _flax_model(transformers.FlaxBertForPreTraining, tmp_path, max_shard_size="40KB")
    shards = sorted((tmp_path / "flax").glob("flax_model-*.msgpack"))
    assert len(shards) > 2 and not (tmp_path / "flax" / flax_weights.FLAX_FILE).exists()
    ids, segments, mask = inputs()
    theirs = model(ids, attention_mask=mask, token_type_ids=segments).prediction_logits
    result = import_checkpoint(tmp_path / "flax", tmp_path / "imported")
    assert not result.initialised  # every shard was read
    ours = load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[real], np.asarray(theirs)[real], atol=ATOL)
    shards[-1].unlink()
    with pytest.raises(UserError, match=rf"cannot read .*{shards[-1].name} .*pass an intact"):
        import_checkpoint(tmp_path / "flax", tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_a_flax_classifier_imports_as_a_fine_tuned_model(tmp_path):
    labels = {"id2label": {0: "neg", 1: "pos", 2: "neutral"}}
    model = _flax_model(transformers.FlaxBertForSequenceClassification, tmp_path, **labels)
    ids, segments, mask = inputs()
    theirs = model(ids, attention_mask=mask, token_type_ids=segments).logits
    result = import_checkpoint(tmp_path / "flax", tmp_path / "imported")
    assert result.task["labels"] == ["neg", "pos", "neutral"]
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    np.testing.assert_allclose(ours, np.asarray(theirs), atol=ATOL)
