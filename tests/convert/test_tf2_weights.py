"""Hugging Face TF 2 BERT checkpoints (tf_model.h5) imported and run against the TF model that wrote
them: transformers' own TFBertForPreTraining, TFBertForSequenceClassification,
TFRoFormerForMaskedLM, TFElectraForPreTraining and TFElectraForMaskedLM (removed in transformers v5
with the rest of its TF classes: bertjax is where their checkpoints go on). Every weight is
randomised first (biases and LayerNorms too), so a wrong name or transpose changes the outputs."""

import h5py
import numpy as np
import pytest

from bertjax.convert import import_checkpoint, load_model, tf2_weights
from bertjax.errors import UserError
from tests.convert.helpers import ATOL, tiny_vocab
from tests.convert.test_export_finetuned import bertjax_logits
from tests.convert.test_variants import inputs

transformers = pytest.importorskip("transformers", reason="transformers not installed")
pytest.importorskip("tf_keras", reason="tf-keras (transformers' TF classes under Keras 3) absent")


def _tf_model(cls, directory, config_class=None, **config):
    settings = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, max_position_embeddings=40, **config)  # fmt: skip
    model = cls((config_class or transformers.BertConfig)(**settings))
    model(model.dummy_inputs)  # builds the weights
    rng = np.random.default_rng(3)
    for weight in model.weights:
        if "embed_positions" in weight.name:  # RoFormer's fixed sine/cosine table
            continue
        scale = 0.2 if len(weight.shape) > 1 else 0.5
        weight.assign((rng.normal(size=weight.shape) * scale + 0.1).astype(np.float32))
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    assert (directory / tf2_weights.TF2_FILE).is_file()
    assert not (directory / "model.safetensors").exists()
    return model


def _tf_outputs(model, ids, segments, mask):
    return model(input_ids=ids, attention_mask=mask, token_type_ids=segments, training=False)


def test_a_tf_pretraining_checkpoint_imports_with_its_mlm_and_nsp_logits(tmp_path):
    model = _tf_model(transformers.TFBertForPreTraining, tmp_path / "tf")
    ids, segments, mask = inputs()
    theirs = _tf_outputs(model, ids, segments, mask)
    result = import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    assert not result.initialised  # every head came from the file
    net = load_model(tmp_path / "imported")
    mlm = np.asarray(net.mlm_logits_all(ids, segments, mask))
    nsp = np.asarray(net.cls.seq_relationship(net.encode(ids, segments, mask)["pooled_output"]))
    assert np.abs(mlm).max() > 1.0, "outputs too small for the comparison to mean anything"
    real = mask.astype(bool)  # padded positions differ by the attention bias used
    np.testing.assert_allclose(mlm[real], np.asarray(theirs.prediction_logits)[real], atol=ATOL)
    np.testing.assert_allclose(nsp, np.asarray(theirs.seq_relationship_logits), atol=ATOL)


def test_a_tf_classifier_imports_as_a_fine_tuned_model(tmp_path):
    labels = {"id2label": {0: "neg", 1: "pos", 2: "neutral"}}
    model = _tf_model(transformers.TFBertForSequenceClassification, tmp_path / "tf", **labels)
    ids, segments, mask = inputs()
    theirs = _tf_outputs(model, ids, segments, mask).logits
    result = import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    assert result.task["labels"] == ["neg", "pos", "neutral"]
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    np.testing.assert_allclose(ours, np.asarray(theirs), atol=ATOL)


def test_a_tf_roformer_imports_with_its_mlm_logits(tmp_path):
    model = _tf_model(transformers.TFRoFormerForMaskedLM, tmp_path / "tf",
                      transformers.RoFormerConfig, embedding_size=64)  # fmt: skip
    ids, segments, mask = inputs()
    theirs = np.asarray(_tf_outputs(model, ids, segments, mask).logits)
    result = import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    assert result.config.position_embedding_type == "rotary"
    ours = np.asarray(load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask))
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=ATOL)


def test_a_damaged_or_sharded_tf_checkpoint_is_refused_in_one_line(tmp_path):
    _tf_model(transformers.TFBertForPreTraining, tmp_path / "tf")
    h5 = tmp_path / "tf" / tf2_weights.TF2_FILE
    h5.write_bytes(h5.read_bytes()[:4096])  # cut short, as by an interrupted download
    with pytest.raises(UserError, match=r"cannot read .*tf_model\.h5 .*pass an intact"):
        import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    with h5py.File(h5, "w") as f:  # HDF5, but not Keras's weights layout
        f["weights"] = np.zeros(3)
    with pytest.raises(UserError, match="is not a transformers TF checkpoint"):
        import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    h5.rename(tmp_path / "tf" / "tf_model-00001-of-00002.h5")
    (tmp_path / "tf" / tf2_weights.TF2_INDEX).write_text("{}")
    with pytest.raises(UserError, match="sharded TF weights, which bertjax does not read"):
        import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()  # nothing written


TF_TO_PYTORCH_NAMES = [
    ("tf_bert_model/bert/encoder/layer_._11/output/LayerNorm/gamma:0",
     "bert.encoder.layer.11.output.LayerNorm.weight"),
    ("tf_bert_for_pre_training/mlm___cls/predictions/transform/dense/kernel:0",
     "cls.predictions.transform.dense.weight"),
    ("tf_bert_model/bert/embeddings/position_embeddings/embeddings:0",
     "bert.embeddings.position_embeddings.weight"),
    ("tf_bert_for_pre_training/nsp___cls/seq_relationship/bias:0", "cls.seq_relationship.bias"),
]  # fmt: skip


@pytest.mark.parametrize(("tf_name", "pytorch_name"), TF_TO_PYTORCH_NAMES)
def test_tf_weight_names_become_pytorch_names(tf_name, pytorch_name):
    assert tf2_weights.pytorch_name(tf_name) == pytorch_name


@pytest.mark.parametrize("cls_name", ["TFElectraForPreTraining", "TFElectraForMaskedLM"])
def test_a_tf_electra_with_narrow_embeddings_imports_with_its_outputs(tmp_path, cls_name):
    """ELECTRA-Small's layout (embeddings 32 wide under hidden 64: `embeddings_project`) in TF:
    the discriminator's final states, and a masked LM's logits through its H -> E head."""
    model = _tf_model(getattr(transformers, cls_name), tmp_path / "tf",
                      transformers.ElectraConfig, embedding_size=32)  # fmt: skip
    ids, segments, mask = inputs()
    theirs = model(input_ids=ids, attention_mask=mask, token_type_ids=segments,
                   output_hidden_states=True, training=False)  # fmt: skip
    result = import_checkpoint(tmp_path / "tf", tmp_path / "imported")
    assert result.config.embedding_size == 32
    net = load_model(tmp_path / "imported")
    real = mask.astype(bool)
    if cls_name == "TFElectraForMaskedLM":
        assert result.ignored == []
        ours, reference = net.mlm_logits_all(ids, segments, mask), theirs.logits
    else:
        assert all(name.startswith("discriminator_predictions.") for name in result.ignored)
        ours = net.encode(ids, segments, mask)["sequence_output"]
        reference = theirs.hidden_states[-1]
    assert np.abs(np.asarray(ours)).max() > 1.0, "outputs too small to mean anything"
    np.testing.assert_allclose(np.asarray(ours)[real], np.asarray(reference)[real], atol=ATOL)
