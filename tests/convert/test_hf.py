"""Tests for bertjax/convert/hf.py: names and shapes both ways, missing heads, config mapping."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from bertjax.convert import hf, import_checkpoint, weight_files
from bertjax.errors import UserError
from bertjax.models.bert import create_model
from tests.convert.helpers import random_params, tiny_config, tiny_vocab, write_hf_dir

CONFIG = tiny_config()
H, HEADS, HEAD_SIZE, INTERMEDIATE = 64, 4, 16, 128


def abstract_params(config=CONFIG):
    return nnx.state(nnx.eval_shape(lambda: create_model(config, 0)), nnx.Param).to_pure_dict()


def fresh_params():
    return random_params(CONFIG, seed=99)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def params():
    return random_params(CONFIG, seed=0)


def test_keys_and_shapes_are_hugging_faces(params):
    tensors = hf.params_to_hf(params)
    per_layer = {
        "attention.self.query.weight": (H, H),
        "attention.self.query.bias": (H,),
        "attention.self.key.weight": (H, H),
        "attention.self.key.bias": (H,),
        "attention.self.value.weight": (H, H),
        "attention.self.value.bias": (H,),
        "attention.output.dense.weight": (H, H),
        "attention.output.dense.bias": (H,),
        "attention.output.LayerNorm.weight": (H,),
        "attention.output.LayerNorm.bias": (H,),
        "intermediate.dense.weight": (INTERMEDIATE, H),
        "intermediate.dense.bias": (INTERMEDIATE,),
        "output.dense.weight": (H, INTERMEDIATE),
        "output.dense.bias": (H,),
        "output.LayerNorm.weight": (H,),
        "output.LayerNorm.bias": (H,),
    }
    expected = {
        "bert.embeddings.word_embeddings.weight": (300, H),
        "bert.embeddings.position_embeddings.weight": (40, H),
        "bert.embeddings.token_type_embeddings.weight": (2, H),
        "bert.embeddings.LayerNorm.weight": (H,),
        "bert.embeddings.LayerNorm.bias": (H,),
        "bert.pooler.dense.weight": (H, H),
        "bert.pooler.dense.bias": (H,),
        "cls.predictions.bias": (300,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.predictions.decoder.weight": (300, H),
        "cls.predictions.decoder.bias": (300,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
    }
    for layer in range(2):
        expected.update({f"bert.encoder.layer.{layer}.{k}": v for k, v in per_layer.items()})
    assert {name: array.shape for name, array in tensors.items()} == expected
    assert all(array.dtype == np.float32 for array in tensors.values())


def test_orientation_of_every_kind_of_weight(params):
    """Hugging Face computes x @ W.T + b: each of our kernels maps to the same linear map."""
    tensors = hf.params_to_hf(params)
    layer = params["bert"]["encoder"]["layer"][1]
    query = tensors["bert.encoder.layer.1.attention.self.query.weight"]
    head, dim, hidden = 2, 5, 7
    assert (
        query[head * HEAD_SIZE + dim, hidden]
        == layer["attention"]["self"]["query"]["kernel"][hidden, head, dim]
    )
    query_bias = tensors["bert.encoder.layer.1.attention.self.query.bias"]
    assert (
        query_bias[head * HEAD_SIZE + dim] == layer["attention"]["self"]["query"]["bias"][head, dim]
    )
    output = tensors["bert.encoder.layer.1.attention.output.dense.weight"]
    assert (
        output[hidden, head * HEAD_SIZE + dim]
        == layer["attention"]["output"]["dense"]["kernel"][head, dim, hidden]
    )
    intermediate = tensors["bert.encoder.layer.1.intermediate.dense.weight"]
    np.testing.assert_array_equal(intermediate, layer["intermediate"]["dense"]["kernel"].T)
    np.testing.assert_array_equal(
        tensors["cls.seq_relationship.weight"], params["cls"]["seq_relationship"]["kernel"].T
    )
    embeddings = params["bert"]["embeddings"]
    np.testing.assert_array_equal(
        tensors["bert.embeddings.LayerNorm.weight"], embeddings["LayerNorm"]["scale"]
    )
    np.testing.assert_array_equal(
        tensors["cls.predictions.decoder.weight"], embeddings["word_embeddings"]["embedding"]
    )
    np.testing.assert_array_equal(
        tensors["cls.predictions.decoder.bias"], params["cls"]["predictions"]["bias"]
    )


def test_round_trip_is_exact(params):
    conversion = hf.params_from_hf(
        hf.params_to_hf(params), abstract_params(), fresh_params, source="test"
    )
    assert conversion.initialised == [] and conversion.ignored == []
    assert_trees_equal(conversion.params, params)


def test_bert_model_source_gets_heads_initialised(params):
    """BertModel's state dict: no "bert." prefix, a position_ids buffer, no heads."""
    tensors = {
        name.removeprefix("bert."): array
        for name, array in hf.params_to_hf(params).items()
        if name.startswith("bert.")
    }
    tensors["embeddings.position_ids"] = np.arange(40)[None]
    conversion = hf.params_from_hf(tensors, abstract_params(), fresh_params, source="test")
    assert conversion.initialised == [
        "masked-LM head (cls.predictions)",
        "next-sentence head (cls.seq_relationship)",
    ]
    assert conversion.ignored == []
    assert_trees_equal(conversion.params["bert"], params["bert"])
    assert_trees_equal(conversion.params["cls"], fresh_params()["cls"])


def test_masked_lm_source_gets_pooler_and_nsp_initialised(params):
    tensors = {
        name: array
        for name, array in hf.params_to_hf(params).items()
        if not name.startswith(("bert.pooler.", "cls.seq_relationship."))
    }
    tensors["classifier.weight"] = np.zeros((3, H), np.float32)
    conversion = hf.params_from_hf(tensors, abstract_params(), fresh_params, source="test")
    assert conversion.initialised == [
        "pooler (bert.pooler)",
        "next-sentence head (cls.seq_relationship)",
    ]
    assert conversion.ignored == ["classifier.weight"]
    assert_trees_equal(conversion.params["cls"]["predictions"], params["cls"]["predictions"])
    assert_trees_equal(conversion.params["bert"]["pooler"], fresh_params()["bert"]["pooler"])


def test_old_layer_norm_names_are_read(params):
    tensors = {}
    for name, array in hf.params_to_hf(params).items():
        if ".LayerNorm." in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        tensors[name] = array
    conversion = hf.params_from_hf(tensors, abstract_params(), fresh_params, source="test")
    assert_trees_equal(conversion.params, params)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("bert.encoder.layer.1.output.dense.bias"), "lacks 1 BERT weights"),
        (lambda t: t.pop("cls.predictions.transform.dense.bias"), "has part of the masked-LM"),
        (
            lambda t: t.update({"bert.pooler.dense.weight": np.zeros((H, H + 1), np.float32)}),
            r"bert.pooler.dense.weight has shape \[64, 65\] but its config implies \[64, 64\]",
        ),
        (
            lambda t: t.update({"cls.predictions.decoder.weight": np.zeros((300, H), np.float32)}),
            "ties the MLM decoder",
        ),
    ],
)
def test_unconvertible_sources_are_user_errors(params, edit, message):
    tensors = hf.params_to_hf(params)
    edit(tensors)
    with pytest.raises(UserError, match=message):
        hf.params_from_hf(tensors, abstract_params(), fresh_params, source="test")


def test_config_round_trip_and_refusals():
    fields = hf.hf_config(CONFIG, pad_token_id=0)
    assert fields["architectures"] == ["BertForPreTraining"] and fields["hidden_act"] == "gelu"
    assert hf.bert_config_from_hf(fields, source="test") == CONFIG
    # A TF1 bert_config.json has no model_type or layer_norm_eps.
    tf1 = {k: v for k, v in fields.items() if k not in ("model_type", "layer_norm_eps")}
    assert hf.bert_config_from_hf(tf1, source="test").layer_norm_eps == 1e-12
    # Each optional field is read, not left at bertjax's default (RoBERTa-style eps 1e-5, ...).
    others = dict(
        max_position_embeddings=40, type_vocab_size=1, hidden_dropout_prob=0.2,
        attention_probs_dropout_prob=0.3, initializer_range=0.05, layer_norm_eps=1e-5,
    )  # fmt: skip
    read = hf.bert_config_from_hf({**fields, **others}, source="test")
    assert {name: getattr(read, name) for name in others} == others
    refusals = [
        ({"hidden_act": "gelu_new"}, "hidden_act='gelu_new'"),
        ({"hidden_act": "relu"}, "exact GELU"),
        ({"position_embedding_type": "relative_key_query"}, "'relative_key_query'; bertjax"),
        ({"model_type": "roberta"}, "'roberta' model"),
        ({"hidden_size": None}, r"lacks config fields \['hidden_size'\]"),
        ({"num_attention_heads": 5}, "not divisible"),
    ]
    for change, message in refusals:
        with pytest.raises(UserError, match=message):
            hf.bert_config_from_hf({**fields, **change}, source="test")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"position_embedding_type": "rotary"}, "'rotary', which BERT's classes do not compute"),
        ({"layer_norm_placement": "pre"}, "'pre', which BERT's classes ignore"),
    ],
)
def test_bert_configs_saying_what_bert_does_not_compute_are_refused(
    tmp_path, params, change, message
):
    # Only roformer.to_bert / prelayernorm.to_bert give these to a BERT config; in a BERT
    # config.json, transformers would build the model without them.
    source = write_hf_dir(tmp_path / "hf", params, CONFIG, tiny_vocab(300))
    fields = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**fields, **change}))
    with pytest.raises(UserError, match=message):
        import_checkpoint(source, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    # A TF1 bert_config.json (no model_type) likewise.
    tf1 = {k: v for k, v in fields.items() if k != "model_type"}
    (tmp_path / "bert_config.json").write_text(json.dumps({**tf1, **change}))
    with pytest.raises(UserError, match=message):
        hf.read_bert_config(tmp_path / "bert_config.json")


def test_pickled_weights_are_refused(tmp_path, params):
    source = write_hf_dir(tmp_path / "hf", params, CONFIG, tiny_vocab(300))
    (source / "model.safetensors").rename(source / "pytorch_model.bin")
    with pytest.raises(UserError, match="pytorch_model.bin, which bertjax never unpickles"):
        import_checkpoint(source, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(UserError, match="is neither a Hugging Face BERT directory"):
        import_checkpoint(tmp_path / "nonexistent", tmp_path / "model")


def test_sharded_safetensors_are_read(tmp_path, params):
    tensors = hf.params_to_hf(params)
    names = sorted(tensors)
    shards = {"model-1.safetensors": names[:10], "model-2.safetensors": names[10:]}
    weight_map = {}
    for file, shard_names in shards.items():
        weight_files.write_safetensors({n: tensors[n] for n in shard_names}, tmp_path / file)
        weight_map.update(dict.fromkeys(shard_names, file))
    (tmp_path / weight_files.SAFETENSORS_INDEX).write_text(
        f'{{"weight_map": {weight_map}}}'.replace("'", '"')
    )
    read = weight_files.read_weights(tmp_path)
    assert sorted(read) == names
    np.testing.assert_array_equal(read[names[3]], tensors[names[3]])


def test_a_cased_vocabulary_without_tokenizer_settings_imports_cased(tmp_path, params):
    """google's cased checkpoints ship a vocab.txt and no tokenizer settings: its capitals say
    the model is cased (imported as uncased, training and fine-tuning would lowercase the text
    into ids the model never saw); an all-lowercase one imports uncased."""
    cased = [*tiny_vocab(298), "Hello", "hello"]
    source = write_hf_dir(tmp_path / "cased", params, CONFIG, cased)
    result = import_checkpoint(source, tmp_path / "cased_model")
    assert result.lowercase is False
    meta = json.loads((tmp_path / "cased_model" / "vocab_meta.json").read_text())
    assert meta["lowercase"] is False
    source = write_hf_dir(tmp_path / "uncased", params, CONFIG, tiny_vocab(300))
    assert import_checkpoint(source, tmp_path / "uncased_model").lowercase is True
