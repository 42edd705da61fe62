"""Architecture variants exported to Hugging Face and compared output by output with
transformers, padding included: pre-LN (RobertaPreLayerNormForMaskedLM) and relative positions
(`position_embedding_type="relative_key"`), alone and together, rotary positions with and
without factorised embeddings (RoFormerForMaskedLM), factorised embeddings with relative
positions (ElectraForMaskedLM); and imported back, bit for bit."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from bertjax import checkpointing, optim, sharding, train
from bertjax.convert import export_hf, import_checkpoint, load_model
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig
from bertjax.train_state import create_train_state
from tests.convert.helpers import ATOL, max_abs_diff, random_params, tiny_config, tiny_vocab
from tests.helpers import load_config

pytestmark = pytest.mark.multi_device  # the runs train on a 2x2x2 mesh

VARIANTS = {
    "pre_ln": dict(layer_norm_placement="pre", position_embedding_init="sinusoidal"),
    "relative": dict(position_embedding_type="relative_key", position_embedding_init="local"),
    "pre_ln_relative": dict(layer_norm_placement="pre", position_embedding_type="relative_key"),
    "rotary": dict(position_embedding_type="rotary"),
    # Factorised embeddings (embedding_size): RoFormer's or Electra's embeddings_project and
    # masked-LM head (H -> E).
    "rotary_factorised": dict(position_embedding_type="rotary", embedding_size=32),
    "factorised": dict(embedding_size=32, position_embedding_type="relative_key"),
}
ARCHITECTURES = {"pre_ln": "RobertaPreLayerNormForMaskedLM", "relative": "BertForPreTraining",
                 "pre_ln_relative": "RobertaPreLayerNormForMaskedLM",
                 "rotary": "RoFormerForMaskedLM",
                 "rotary_factorised": "RoFormerForMaskedLM",
                 "factorised": "ElectraForMaskedLM"}  # fmt: skip


def write_workdir(directory, config) -> None:
    """A training workdir with one checkpoint of random (non-trivial) parameters, written from
    a 2 x 2 x 2 mesh."""
    run = load_config("cpu_smoke")
    for field in dataclasses.fields(config):
        if field.name in run:
            run[field.name] = getattr(config, field.name)
    run.mesh_shape = {"data": 2, "fsdp": 2, "tensor": 2}
    mesh = sharding.create_mesh(run.mesh_shape)
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(run))
    state, setup = create_train_state(config, tx, mesh, run.logical_axis_rules, 0)
    params = jax.device_put(random_params(config, seed=3), setup.shardings.params)
    metadata = checkpointing.metadata_for(
        run, train.model_fields(BertConfig.from_config(run, config.vocab_size))
    )
    manager = checkpointing.create_checkpoint_manager(
        directory / "checkpoints", save_every=1, keep=1
    )
    checkpointing.save(manager, 1, state.replace(params=params), metadata, force=True)
    manager.wait_until_finished()
    manager.close()
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))


def inputs():
    rng = np.random.default_rng(0)
    ids = rng.integers(6, 300, (3, 24))
    mask = (np.arange(24)[None] < np.array([[24], [17], [9]])).astype(np.int64)
    segments = ((np.arange(24)[None] >= np.array([[12], [8], [5]])) & (mask == 1)).astype(np.int64)
    return ids * mask, segments, mask  # [PAD] = 0 after each row's length


def reference_logits(model, ids, segments, mask) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids),
            token_type_ids=torch.tensor(segments),
            attention_mask=torch.tensor(mask),
        )
    return (out.logits if hasattr(out, "logits") else out.prediction_logits).numpy()


def test_layouts_of_the_variants():
    pre = random_params(tiny_config(**VARIANTS["pre_ln"]), seed=0)
    layer = pre["bert"]["encoder"]["layer"][0]
    assert "LayerNorm" in layer["attention"] and "LayerNorm" in layer["intermediate"]
    assert "LayerNorm" not in layer["attention"]["output"] and "LayerNorm" not in layer["output"]
    assert "LayerNorm" in pre["bert"] and "position_embeddings" in pre["bert"]["embeddings"]
    relative = random_params(tiny_config(**VARIANTS["relative"]), seed=0)
    assert "position_embeddings" not in relative["bert"]["embeddings"]
    table = relative["bert"]["encoder"]["layer"][1]["attention"]["self"]["distance_embedding"]
    assert table["embedding"].shape == (2 * 40 - 1, 16)  # distances -39..39, head size 16


def test_local_init_starts_as_alibi():
    """Relative positions with the local init: at initialisation each head's logit bias is
    -slope_h * |i - j|, slope_h = 2^(-8 (h+1) / N), whatever the input."""
    from bertjax.models.bert import create_model

    config = tiny_config(**VARIANTS["relative"])
    attention = create_model(config, 0).bert.encoder.layer[0].attention.self
    query = np.random.default_rng(1).normal(size=(2, 10, 4, 16)).astype(np.float32)
    query[..., 0] = 0.0  # the content part of a query has no component 0 at init
    query += np.asarray(attention.query.bias[...])
    bias = np.asarray(attention.position_bias(query))
    distances = np.abs(np.arange(10)[:, None] - np.arange(10)[None, :])
    content = np.asarray(attention.distance_embedding.embedding[...])[:, 1:]
    assert bias.shape == (2, 4, 10, 10)
    slopes = 2.0 ** (-8.0 * np.arange(1, 5) / 4)
    noise = np.abs(query[..., 1:]).max() * np.abs(content).max() * 15 / 4  # 15 dims, / sqrt(16)
    for head, slope in enumerate(slopes):
        assert np.abs(bias[:, head] + slope * distances).max() < noise


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exported_variant_matches_transformers(variant, tmp_path, transformers):
    config = tiny_config(**VARIANTS[variant])
    write_workdir(tmp_path / "run", config)
    result = export_hf(tmp_path / "run", tmp_path / "hf")
    fields = json.loads((tmp_path / "hf" / "config.json").read_text())
    rotary = config.position_embedding_type == "rotary"
    assert fields.get("position_embedding_type", "rotary") == config.position_embedding_type
    pre = config.layer_norm_placement == "pre"
    assert result.architecture == fields["architectures"][0] == ARCHITECTURES[variant]
    loader = getattr(transformers, ARCHITECTURES[variant])
    model, info = loader.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    # The pooler is exported for RobertaPreLayerNormModel; the masked-LM class has none.
    pooler = ["roberta_prelayernorm.pooler.dense.bias", "roberta_prelayernorm.pooler.dense.weight"]
    assert sorted(info["unexpected_keys"]) == (pooler if pre else [])
    if rotary or config.embedding_size:  # RoFormer and Electra: no pooler, no NSP head
        from safetensors.numpy import load_file

        names = load_file(tmp_path / "hf" / "model.safetensors")
        assert not [name for name in names if "pooler" in name or "seq_relationship" in name]
        assert not rotary or "roformer.encoder.embed_positions.weight" in names
        assert "left out: the pooler and the next-sentence head" in result.lines()[-1]
    if pre:
        assert fields["max_position_embeddings"] == config.max_position_embeddings + 1  # [PAD]=0
        _, base_info = transformers.AutoModel.from_pretrained(
            tmp_path / "hf", output_loading_info=True
        )
        assert base_info["missing_keys"] == []
    ids, segments, mask = inputs()
    reference = reference_logits(model, ids, segments, mask)
    ours = np.asarray(load_model(tmp_path / "run").mlm_logits_all(ids, segments, mask))
    real = mask.astype(bool)
    assert np.abs(ours).max() > 1.0, "outputs too small for the comparison to mean anything"
    assert max_abs_diff(ours[real], reference[real]) < ATOL


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_exported_variant_imports_back(variant, tmp_path, transformers):
    """export -> import gives the model back: the same masked-LM logits, bit for bit (pre-LN
    through RoBERTa-PreLayerNorm's names and shifted position tables)."""
    config = tiny_config(**VARIANTS[variant])
    write_workdir(tmp_path / "run", config)
    export_hf(tmp_path / "run", tmp_path / "hf")
    result = import_checkpoint(str(tmp_path / "hf"), tmp_path / "imported")
    fields = ("position_embedding_type", "layer_norm_placement", "max_position_embeddings")
    for field in (*fields, "embedding_size"):
        assert getattr(result.config, field) == getattr(config, field), field
    assert "--config.layer_norm_placement=" + config.layer_norm_placement in result.lines()[-1]
    ids, segments, mask = inputs()
    original = load_model(tmp_path / "run").mlm_logits_all(ids, segments, mask)
    imported = load_model(tmp_path / "imported").mlm_logits_all(ids, segments, mask)
    np.testing.assert_array_equal(np.asarray(original), np.asarray(imported))


def test_factorised_embeddings_no_class_holds_are_refused_before_writing(tmp_path):
    """RoBERTa-PreLayerNorm's classes have no embeddings_project: a pre-LN model with
    embedding_size != hidden_size is refused in one line, pretrained or fine-tuned; a post-LN
    one's sequence-level heads (Electra's is a GELU layer, not BERT's tanh pooler) too."""
    from bertjax.convert import task_heads

    config = tiny_config(embedding_size=32, layer_norm_placement="pre")
    write_workdir(tmp_path / "run", config)
    message = "embeddings are 32 wide, projected to hidden_size=64 .* RobertaPreLayerNorm classes"
    with pytest.raises(UserError, match=message):
        export_hf(tmp_path / "run", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    for kind in ("classification", "tagging"):
        with pytest.raises(UserError, match=message):
            task_heads.check_exportable({"kind": kind, "name": "t", "labels": []}, config)
    post = tiny_config(embedding_size=32)
    for kind in ("classification", "multilabel", "regression", "multiple_choice"):
        with pytest.raises(UserError, match=f"this {kind} model has factorised embeddings"):
            task_heads.check_exportable({"kind": kind, "pooling": "cls"}, post)
    for kind in task_heads.TOKEN_KINDS:
        task_heads.check_exportable({"kind": kind}, post)  # exported as Electra's classes


def test_a_roberta_prelayernorm_without_a_wordpiece_vocabulary_is_refused(tmp_path):
    """A byte-level BPE model has vocab.json and a BPE tokenizer.json; a pre-LN model with its
    WordPiece vocabulary in a tokenizer.json instead of vocab.txt imports."""
    from tokenizers import Tokenizer, models

    config = tiny_config(**VARIANTS["pre_ln"])
    write_workdir(tmp_path / "run", config)
    export_hf(tmp_path / "run", tmp_path / "hf")
    wordpiece = models.WordPiece.from_file(str(tmp_path / "hf" / "vocab.txt"))
    Tokenizer(wordpiece).save(str(tmp_path / "hf" / "tokenizer.json"))
    (tmp_path / "hf" / "vocab.txt").unlink()
    import_checkpoint(str(tmp_path / "hf"), tmp_path / "from_tokenizer_json")
    assert (tmp_path / "from_tokenizer_json" / "vocab.txt").read_bytes() == (
        tmp_path / "run" / "vocab.txt"
    ).read_bytes()
    Tokenizer(models.BPE({"a": 0, "b": 1}, [])).save(str(tmp_path / "hf" / "tokenizer.json"))
    with pytest.raises(UserError, match="RoBERTa-PreLayerNorm model without a WordPiece vocab"):
        import_checkpoint(str(tmp_path / "hf"), tmp_path / "imported")
    assert not (tmp_path / "imported").exists()


def test_relative_bias_is_the_same_on_the_fused_and_the_explicit_path():
    """Training with attention dropout takes the explicit path; without, the fused one: both
    must add the relative-position bias alike."""
    from bertjax.models.attention import explicit_attention, fused_attention

    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 12, 4, 16)).astype(np.float32) for _ in range(3))
    mask = np.arange(12)[None, None, None, :] < np.array([12, 7])[:, None, None, None]
    bias = rng.normal(size=(2, 4, 12, 12)).astype(np.float32)
    fused = fused_attention(q, k, v, mask, implementation="xla", bias=bias)
    explicit = explicit_attention(q, k, v, mask, bias=bias)
    assert max_abs_diff(fused, explicit) < 1e-5
    assert max_abs_diff(fused, fused_attention(q, k, v, mask, implementation="xla")) > 0.1
