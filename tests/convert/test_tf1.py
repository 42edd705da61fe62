"""Tests for bertjax/convert/tf1.py through `import_checkpoint`: TF1 checkpoints written with
TensorFlow's own checkpoint writer, named as google-research/bert's modeling.py names them."""

import json
import re
import sys

import numpy as np
import pytest
import tensorflow as tf
from flax import nnx

from bertjax.convert import hf, import_checkpoint, load_model, tf1, tf2_weights, weight_files
from bertjax.errors import UserError
from tests.convert.helpers import (
    ATOL,
    max_abs_diff,
    random_params,
    task_sentences,
    tiny_config,
    tiny_vocab,
    torch_outputs,
)

CONFIG = tiny_config()


def tf1_variables(params: dict, num_layers: int) -> dict[str, np.ndarray]:
    """BertForPreTraining parameters under modeling.py's variable names, in TF's layout (dense
    kernels [in, out]; seq_relationship output_weights [2, H]). Written out by hand here, apart
    from the library's mapping, so the two check each other."""
    bert, cls = params["bert"], params["cls"]

    def dense(module, prefix):
        kernel = np.asarray(module["kernel"])
        return {
            f"{prefix}/kernel": kernel.reshape(-1, kernel.shape[-1])
            if kernel.ndim == 3
            else kernel,
            f"{prefix}/bias": np.asarray(module["bias"]).reshape(-1),
        }

    def layer_norm(module, prefix):
        return {f"{prefix}/gamma": module["scale"], f"{prefix}/beta": module["bias"]}

    embeddings = bert["embeddings"]
    names = {
        "bert/embeddings/word_embeddings": embeddings["word_embeddings"]["embedding"],
        "bert/embeddings/position_embeddings": embeddings["position_embeddings"]["embedding"],
        "bert/embeddings/token_type_embeddings": embeddings["token_type_embeddings"]["embedding"],
        **layer_norm(embeddings["LayerNorm"], "bert/embeddings/LayerNorm"),
        **dense(bert["pooler"]["dense"], "bert/pooler/dense"),
    }
    for index in range(num_layers):
        layer, prefix = bert["encoder"]["layer"][index], f"bert/encoder/layer_{index}"
        attention = layer["attention"]
        for name in ("query", "key", "value"):
            kernel = np.asarray(attention["self"][name]["kernel"])  # [H, heads, head_size]
            names[f"{prefix}/attention/self/{name}/kernel"] = kernel.reshape(kernel.shape[0], -1)
            names[f"{prefix}/attention/self/{name}/bias"] = np.ravel(
                attention["self"][name]["bias"]
            )
        names.update(dense(attention["output"]["dense"], f"{prefix}/attention/output/dense"))
        names.update(
            layer_norm(attention["output"]["LayerNorm"], f"{prefix}/attention/output/LayerNorm")
        )
        names.update(dense(layer["intermediate"]["dense"], f"{prefix}/intermediate/dense"))
        names.update(dense(layer["output"]["dense"], f"{prefix}/output/dense"))
        names.update(layer_norm(layer["output"]["LayerNorm"], f"{prefix}/output/LayerNorm"))
    if "cls" in params:
        predictions = cls["predictions"]
        names.update(dense(predictions["transform"]["dense"], "cls/predictions/transform/dense"))
        names.update(
            layer_norm(predictions["transform"]["LayerNorm"], "cls/predictions/transform/LayerNorm")
        )
        names["cls/predictions/output_bias"] = predictions["bias"]
        names["cls/seq_relationship/output_weights"] = np.asarray(
            cls["seq_relationship"]["kernel"]
        ).T
        names["cls/seq_relationship/output_bias"] = cls["seq_relationship"]["bias"]
    return {name: np.asarray(value, np.float32) for name, value in names.items()}


def write_tf1_checkpoint(directory, variables, bert_config: dict, vocab: list[str]):
    """Writes `variables` with TensorFlow's checkpoint writer (SaveV2) as bert_model.ckpt."""
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(variables)
    tf.raw_ops.SaveV2(
        prefix=str(directory / "bert_model.ckpt"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(variables[name]) for name in names],
    )
    (directory / "bert_config.json").write_text(json.dumps(bert_config))
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    return directory


def bert_config_json(config) -> dict:
    """bert_config.json as google-research/bert writes it (no model_type, no layer_norm_eps)."""
    fields = hf.hf_config(config, pad_token_id=0)
    keep = (
        "attention_probs_dropout_prob hidden_act hidden_dropout_prob hidden_size "
        "initializer_range intermediate_size max_position_embeddings num_attention_heads "
        "num_hidden_layers type_vocab_size vocab_size"
    ).split()
    return {name: fields[name] for name in keep}


def test_names_follow_modeling_py():
    assert tf1.hf_name("bert/encoder/layer_11/attention/self/query/kernel") == (
        "bert.encoder.layer.11.attention.self.query.weight"
    )
    assert tf1.hf_name("bert/embeddings/LayerNorm/gamma") == "bert.embeddings.LayerNorm.weight"
    assert (
        tf1.hf_name("bert/embeddings/word_embeddings") == "bert.embeddings.word_embeddings.weight"
    )
    assert tf1.hf_name("cls/predictions/output_bias") == "cls.predictions.bias"
    assert tf1.hf_name("cls/seq_relationship/output_weights") == "cls.seq_relationship.weight"
    for not_a_weight in ("global_step", "bert/pooler/dense/kernel/adam_m", "bad_steps"):
        assert tf1.hf_name(not_a_weight) is None


def test_tf1_checkpoint_imports_exactly(tmp_path):
    params = random_params(CONFIG, seed=3)
    variables = tf1_variables(params, CONFIG.num_hidden_layers)
    # What a pretraining run leaves beside the weights: a step counter and Adam slots.
    variables["global_step"] = np.asarray(1000, np.float32)
    variables["bert/pooler/dense/kernel/adam_m"] = np.zeros((64, 64), np.float32)
    source = write_tf1_checkpoint(
        tmp_path / "tf1", variables, bert_config_json(CONFIG), tiny_vocab(300)
    )
    result = import_checkpoint(source, tmp_path / "imported")
    assert result.format == "TF1 google-research/bert" and result.initialised == []
    assert result.ignored == ["bert/pooler/dense/kernel/adam_m", "global_step"]
    assert result.config == CONFIG
    assert any("left out 2 tensors" in line for line in result.lines())
    imported = hf.params_to_hf(
        nnx.state(load_model(tmp_path / "imported"), nnx.Param).to_pure_dict()
    )
    for name, array in hf.params_to_hf(params).items():
        np.testing.assert_array_equal(imported[name], array, err_msg=name)
    # The checkpoint prefix names the same checkpoint.
    again = import_checkpoint(source / "bert_model.ckpt", tmp_path / "again")
    assert again.config == CONFIG
    with pytest.raises(UserError, match="already holds checkpoints; pass a new directory"):
        import_checkpoint(source, tmp_path / "again")


def test_tf1_errors(tmp_path):
    source = tmp_path / "tf1"
    params = random_params(CONFIG, seed=3)
    write_tf1_checkpoint(
        source, tf1_variables(params, 2), bert_config_json(CONFIG), tiny_vocab(300)
    )
    (source / "bert_config.json").unlink()
    with pytest.raises(UserError, match="no bert_config.json beside it"):
        import_checkpoint(source, tmp_path / "out")
    (source / "bert_config.json").write_text(json.dumps(bert_config_json(CONFIG)))
    (source / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(UserError, match="has 1 tokens but the model's vocab_size is 300"):
        import_checkpoint(source, tmp_path / "out")


def test_reading_tf_files_without_their_library_is_one_line(tmp_path, monkeypatch):
    """On a machine with JAX alone (an accelerator host) a TF1 checkpoint or a tf_model.h5 says
    what it needs, in one line, instead of an ImportError's traceback."""
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import raises
    with pytest.raises(UserError, match=r"the TF1 checkpoint .*bert_model.ckpt needs TensorFlow"):
        tf1.read_checkpoint(tmp_path / "bert_model.ckpt")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UserError, match=r"tf_model.h5 needs h5py .*install requirements.txt's"):
        tf2_weights.read_tf2_h5(tmp_path / "tf_model.h5")


def test_which_checkpoint_a_directory_names(tmp_path):
    """bert_model.ckpt first; else the one prefix there; several: one line naming them all (a
    training directory's model.ckpt-N steps), not the first of them in silence."""
    (tmp_path / "model.ckpt-100.index").touch()
    assert tf1.find_checkpoint(tmp_path) == tmp_path / "model.ckpt-100"
    assert tf1.find_checkpoint(tmp_path / "model.ckpt-100") == tmp_path / "model.ckpt-100"
    (tmp_path / "model.ckpt-200.index").touch()
    with pytest.raises(
        UserError, match=r"several TF checkpoints \(model.ckpt-100, model.ckpt-200\)"
    ):
        tf1.find_checkpoint(tmp_path)
    (tmp_path / "bert_model.ckpt.index").touch()
    assert tf1.find_checkpoint(tmp_path) == tmp_path / "bert_model.ckpt"
    assert tf1.find_checkpoint(tmp_path / "elsewhere") is None


def tf1_variables_from_hf(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Hugging Face BertModel state dict renamed to modeling.py's TF1 names and layout."""
    variables = {}
    for name, array in tensors.items():
        if name.endswith("position_ids"):
            continue
        name = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", "bert." + name.removeprefix("bert."))
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma")
        name = name.replace("LayerNorm.bias", "LayerNorm.beta")
        if name.endswith("_embeddings.weight"):
            name = name.removesuffix(".weight")
        elif name.endswith(".weight"):
            name, array = name.removesuffix(".weight") + ".kernel", array.T
        variables[name.replace(".", "/")] = np.ascontiguousarray(array, np.float32)
    return variables


def test_minilm_as_tf1_checkpoint_matches_transformers(tmp_path, minilm_dir, transformers):
    """The real MiniLM weights renamed to TF1 and written by TF: import, then compare outputs."""
    config = hf.bert_config_from_hf(json.loads((minilm_dir / "config.json").read_text()), source="")
    variables = tf1_variables_from_hf(weight_files.read_weights(minilm_dir))
    assert "bert/encoder/layer_5/attention/self/query/kernel" in variables
    vocab = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    source = write_tf1_checkpoint(tmp_path / "tf1", variables, bert_config_json(config), vocab)
    result = import_checkpoint(source, tmp_path / "imported")
    assert result.lowercase is True and result.config == config
    assert len(result.initialised) == 2  # BertModel weights: no MLM and no NSP head
    model = load_model(tmp_path / "imported")

    tokenizer = transformers.BertTokenizerFast(str(minilm_dir / "vocab.txt"), do_lower_case=True)
    sentences = (task_sentences() or ["A sentence.", "Another, longer sentence here."])[:32]
    batch = tokenizer(sentences, padding=True, return_tensors="np")
    ids, segments, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    reference = transformers.BertModel.from_pretrained(minilm_dir)
    expected = torch_outputs(reference, ids, segments, mask).last_hidden_state.numpy()
    ours = model.encode(ids, segments, mask)["sequence_output"]
    assert max_abs_diff(ours, expected) < ATOL
