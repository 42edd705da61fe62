"""Hugging Face Electra directories imported as BERT encoders and run against transformers' own
Electra classes: the discriminator's hidden states (ElectraForPreTraining, what Google's
ELECTRA-Small, -Base and -Large are; Small's embeddings narrower than its hidden size) and a
generator's (ElectraForMaskedLM: embeddings wider than it), and the logits of a fine-tuned
ElectraForTokenClassification, ElectraForQuestionAnswering, ElectraForSequenceClassification and
ElectraForMultipleChoice. Every weight is randomised first
(biases and LayerNorms too), so a wrong name changes the outputs."""

import json

import numpy as np
import pytest

from bertjax.convert import import_checkpoint, load_model
from bertjax.errors import UserError
from tests.convert.helpers import ATOL, tiny_vocab, torch_outputs
from tests.convert.test_export_finetuned import bertjax_logits
from tests.convert.test_variants import inputs

transformers = pytest.importorskip("transformers", reason="transformers not installed")
torch = pytest.importorskip("torch", reason="torch not installed")


def _electra(cls, directory, **config):
    sizes = dict(vocab_size=300, embedding_size=64, hidden_size=64, num_hidden_layers=2)
    heads = dict(num_attention_heads=4, intermediate_size=128, max_position_embeddings=40)
    model = cls(transformers.ElectraConfig(**(sizes | heads | config))).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            scale = 0.2 if parameter.ndim > 1 else 0.5
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale + 0.1)
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    return model


@pytest.mark.parametrize(
    "cls_name, sizes",
    [("ElectraForPreTraining", {}),
     ("ElectraForPreTraining", dict(embedding_size=32)),  # ELECTRA-Small's layout: E < H
     ("ElectraForMaskedLM", dict(embedding_size=128))],  # a generator: E > G
)  # fmt: skip
def test_an_electra_discriminator_or_generator_imports_as_a_bert_encoder(tmp_path, cls_name, sizes):
    model = _electra(getattr(transformers, cls_name), tmp_path / "electra", **sizes)
    ids, segments, mask = inputs()
    theirs = torch_outputs(model, ids, segments, mask, output_hidden_states=True).hidden_states
    result = import_checkpoint(tmp_path / "electra", tmp_path / "imported")
    assert result.config.hidden_size == 64 and result.task is None
    assert result.config.embedding_size == sizes.get("embedding_size", 0)
    assert ("--config.embedding_size" in result.lines()[-1]) == bool(sizes)
    if cls_name == "ElectraForPreTraining":
        assert any(name.startswith("discriminator_predictions.") for name in result.ignored)
    else:  # a generator's masked-LM head is BERT's: imported, and its logits are transformers'
        assert result.ignored == []
        logits = load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask)
        reference = torch_outputs(model, ids, segments, mask).logits.numpy()
        real = mask.astype(bool)
        np.testing.assert_allclose(np.asarray(logits)[real], reference[real], atol=ATOL)
    ours = load_model(tmp_path / "imported").encode(ids, segments, mask)["sequence_output"]
    real = mask.astype(bool)  # padded positions differ by the attention bias used
    assert np.abs(np.asarray(ours)).max() > 1.0, "outputs too small to mean anything"
    np.testing.assert_allclose(np.asarray(ours)[real], theirs[-1].numpy()[real], atol=ATOL)


@pytest.mark.parametrize(
    "cls_name, kind, labels, embedding_size",
    [("ElectraForTokenClassification", "tagging", ["O", "B-PER", "I-PER"], 64),
     ("ElectraForTokenClassification", "tagging", ["O", "B-LOC"], 32),
     ("ElectraForQuestionAnswering", "qa", [], 64)],
)  # fmt: skip
def test_a_fine_tuned_electra_tagger_or_qa_model_imports_with_its_logits(
    tmp_path, cls_name, kind, labels, embedding_size
):
    id2label = dict(enumerate(labels)) if labels else {0: "LABEL_0", 1: "LABEL_1"}
    model = _electra(
        getattr(transformers, cls_name), tmp_path / "electra", id2label=id2label,
        embedding_size=embedding_size,
    )  # fmt: skip
    ids, segments, mask = inputs()
    out = torch_outputs(model, ids, segments, mask)
    if kind == "qa":
        theirs = np.stack([out.start_logits.numpy(), out.end_logits.numpy()], axis=-1)
    else:
        theirs = out.logits.numpy()
    result = import_checkpoint(tmp_path / "electra", tmp_path / "imported")
    assert result.task["kind"] == kind and result.task["labels"] == labels
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=ATOL)


@pytest.mark.parametrize(
    "cls_name, sizes",
    [("ElectraForSequenceClassification", dict(num_labels=3)),
     ("ElectraForSequenceClassification", dict(num_labels=1, embedding_size=32)),  # regression
     ("ElectraForMultipleChoice", {})],  # ElectraConfig's summary: first token, dense, GELU
)  # fmt: skip
def test_an_electra_classifier_imports_with_its_two_layer_head_and_logits(
    tmp_path, cls_name, sizes
):
    """Hugging Face's Electra sequence head (dense, GELU, dense on the first token) is bertjax's
    `sequence_head="gelu"`."""
    model = _electra(getattr(transformers, cls_name), tmp_path / "electra", **sizes)
    ids, segments, mask = inputs()
    if cls_name == "ElectraForMultipleChoice":  # one question, its three choices
        ids, segments, mask = (x[None] for x in (ids, segments, mask))
    theirs = torch_outputs(model, ids, segments, mask).logits.numpy()
    result = import_checkpoint(tmp_path / "electra", tmp_path / "imported")
    kind = {"ElectraForMultipleChoice": "multiple_choice"}.get(
        cls_name, "regression" if sizes.get("num_labels") == 1 else "classification"
    )
    assert result.task["kind"] == kind and result.task["sequence_head"] == "gelu"
    assert result.ignored == []
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    np.testing.assert_allclose(ours, theirs, atol=ATOL)


def test_a_bert_config_with_narrower_embeddings_is_refused_in_one_line(tmp_path):
    """BERT's classes ignore `embedding_size` (their tables are hidden_size wide), so a BERT
    config.json saying another one describes weights BERT would not compute."""
    model = _electra(transformers.ElectraForPreTraining, tmp_path / "electra", embedding_size=32)
    fields = model.config.to_dict() | {"model_type": "bert", "architectures": ["BertModel"]}
    (tmp_path / "electra" / "config.json").write_text(json.dumps(fields))
    with pytest.raises(UserError, match="BERT config saying embedding_size=32, which BERT's"):
        import_checkpoint(tmp_path / "electra", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()
