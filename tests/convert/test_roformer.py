"""Rotary-position models and Hugging Face's RoFormer (bertjax/convert/roformer.py): a RoFormer
that transformers made imports and computes transformers' logits, as do its sequence classifiers
(a GELU head); what RoFormer cannot hold is refused in one line before anything is
written. (bertjax's own rotary exports are compared with transformers, and imported back, in
test_variants.py and test_export_finetuned.py.)"""

import json

import numpy as np
import pytest

from bertjax.convert import electra, export_hf, import_checkpoint, load_model, task_heads
from bertjax.errors import UserError
from tests.convert.helpers import ATOL, max_abs_diff, tiny_config, tiny_vocab
from tests.convert.test_variants import inputs, reference_logits, write_workdir

FIELDS = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=128, max_position_embeddings=40, pad_token_id=0)  # fmt: skip


def transformers_roformer(directory, transformers, name="RoFormerForMaskedLM", **overrides):
    """A RoFormer of class `name` saved by transformers, every weight random (biases and
    LayerNorms too), with a BERT vocab.txt; returns the torch model."""
    import torch

    torch.manual_seed(0)
    model = getattr(transformers, name)(transformers.RoFormerConfig(**FIELDS | overrides))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "embed_positions" not in name:  # RoFormer's fixed sines and cosines
                parameter.normal_(0.1 * ("bias" in name or "LayerNorm" in name), 0.2)
    model.save_pretrained(directory, safe_serialization=True)
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    return model


@pytest.mark.parametrize("embedding_size", [64, 32])  # 32: embeddings_project, head 64 -> 32
def test_a_roformer_transformers_made_imports_with_its_logits(
    tmp_path, transformers, embedding_size
):
    model = transformers_roformer(tmp_path / "hf", transformers, embedding_size=embedding_size)
    result = import_checkpoint(tmp_path / "hf", tmp_path / "imported")
    assert result.config.position_embedding_type == "rotary"
    assert result.config.embedding_width == embedding_size
    assert result.config.layer_norm_placement == "post"
    assert result.initialised == [
        "pooler (bert.pooler)",
        "next-sentence head (cls.seq_relationship)",
    ]
    assert result.ignored == []  # embed_positions is RoFormer's fixed table, not a weight
    assert "--config.position_embedding_type=rotary" in result.lines()[-1]
    ids, segments, mask = inputs()
    ours = np.asarray(load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask))
    real = mask.astype(bool)
    assert np.abs(ours).max() > 1.0
    assert max_abs_diff(ours[real], reference_logits(model, ids, segments, mask)[real]) < ATOL


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (dict(rotary_value=True), "rotates values as well as queries and keys"),
        (dict(hidden_act="gelu_new"), "hidden_act='gelu_new'"),
    ],
)
def test_roformers_bertjax_does_not_compute_are_refused(tmp_path, transformers, edit, message):
    transformers_roformer(tmp_path / "hf", transformers, **edit)
    with pytest.raises(UserError, match=message):
        import_checkpoint(tmp_path / "hf", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()


def test_roformers_jieba_tokenizer_is_refused(tmp_path, transformers):
    """RoFormer's own tokenizer keeps jieba's words whole where the vocabulary has them: not
    BertTokenizer's ids."""
    transformers_roformer(tmp_path / "hf", transformers)
    settings = {"tokenizer_class": "RoFormerTokenizer", "do_lower_case": True}
    (tmp_path / "hf" / "tokenizer_config.json").write_text(json.dumps(settings))
    with pytest.raises(UserError, match="sets tokenizer_class='RoFormerTokenizer'"):
        import_checkpoint(tmp_path / "hf", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()


@pytest.mark.multi_device
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(layer_norm_placement="pre"), "rotary positions and pre-LN blocks"),
        (dict(rope_theta=500000.0), "rope_theta=500000.0, and Hugging Face's RoFormer only"),
    ],
)
def test_rotary_models_roformer_cannot_hold_are_refused_before_writing(
    tmp_path, overrides, message
):
    config = tiny_config(position_embedding_type="rotary", **overrides)
    write_workdir(tmp_path / "run", config)
    with pytest.raises(UserError, match=message):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_rotary_heads_without_a_roformer_class_and_rotary_electra_are_refused():
    config = tiny_config(position_embedding_type="rotary")
    for kind in ("classification", "multilabel", "regression", "multiple_choice"):
        with pytest.raises(UserError, match=f"this {kind} model has rotary positions"):
            task_heads.check_exportable({"kind": kind, "pooling": "cls"}, config)
    for kind in task_heads.TOKEN_KINDS:
        task_heads.check_exportable({"kind": kind}, config)  # exported as RoFormer's classes
    with pytest.raises(UserError, match="this ELECTRA run has rotary positions"):
        electra.check_exportable(config)


SUMMARY = dict(summary_type="first", summary_use_proj=True, summary_activation="gelu",
               summary_proj_to_labels=False)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("RoFormerForSequenceClassification", dict(num_labels=3)),
        ("RoFormerForMultipleChoice", SUMMARY),
    ],
)
def test_roformer_sequence_heads_transformers_made_import_with_their_logits(
    tmp_path, transformers, name, overrides
):
    """Its sequence-level heads are the GELU head (`sequence_head="gelu"`; Electra's:
    test_electra_import.py)."""
    import torch

    from tests.convert.test_export_finetuned import bertjax_logits

    model = transformers_roformer(tmp_path / "hf", transformers, name, **overrides).eval()
    result = import_checkpoint(tmp_path / "hf", tmp_path / "imported")
    assert result.task["sequence_head"] == "gelu" and result.ignored == []
    ids, segments, mask = inputs()
    if name.endswith("MultipleChoice"):  # one question, its three choices
        ids, segments, mask = (x[None] for x in (ids, segments, mask))
    torch_inputs = {"input_ids": ids, "token_type_ids": segments, "attention_mask": mask}
    with torch.no_grad():
        theirs = model(**{k: torch.as_tensor(np.asarray(v)) for k, v in torch_inputs.items()})
    ours = bertjax_logits(tmp_path / "imported", ids, segments, mask)
    assert np.abs(ours).max() > 0.1
    np.testing.assert_allclose(ours, theirs.logits.numpy(), atol=ATOL, rtol=0)


def test_a_multiple_choice_summary_bertjax_does_not_compute_is_refused(tmp_path, transformers):
    """RoFormerConfig has no summary fields: its sequence summary then is the last token's state,
    unprojected."""
    transformers_roformer(tmp_path / "hf", transformers, "RoFormerForMultipleChoice")
    wrong = "summary_type='last', summary_use_proj=False, summary_activation=None"
    with pytest.raises(UserError, match=f"sequence summary \\({wrong}\\) is not the one"):
        import_checkpoint(tmp_path / "hf", tmp_path / "imported")
    assert not (tmp_path / "imported").exists()


def test_sequence_heads_hugging_face_has_no_class_for_are_refused_naming_the_fix():
    """A rotary (or factorised) encoder with BERT's pooler head, a pre-LN one with the GELU head."""
    rotary = tiny_config(position_embedding_type="rotary")
    with pytest.raises(UserError, match="fine-tune with --config.sequence_head=gelu to export"):
        task_heads.check_exportable({"kind": "classification", "sequence_head": "pooler"}, rotary)
    task_heads.check_exportable({"kind": "classification", "sequence_head": "gelu"}, rotary)
    pre_ln = tiny_config(layer_norm_placement="pre")
    task = {"kind": "regression", "sequence_head": "gelu"}
    with pytest.raises(UserError, match="fine-tune with --config.sequence_head=pooler to export"):
        task_heads.check_exportable(task, pre_ln)
    # A post-LN BERT encoder exports either head: BERT's class or Electra's.
    post = tiny_config()
    assert task_heads.architecture(post, task) == "ElectraForSequenceClassification"
    task["sequence_head"] = "pooler"
    assert task_heads.architecture(post, task) == "BertForSequenceClassification"
