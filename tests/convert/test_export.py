"""Tests for bertjax/convert/export.py and the readers it shares with `init_from`: a checkpoint
written by a sharded 8-device run, exported, loaded by transformers, compared output by output."""

import collections
import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from bertjax import checkpointing, optim, sharding, train
from bertjax.convert import export_hf, hf, import_checkpoint, load_model, weight_files
from bertjax.data import corpus, sentences, vocab_files
from bertjax.data.corpus import SAMPLE_CORPUS_ZH
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, stack_layers
from bertjax.train_state import create_train_state
from tests.convert.helpers import (
    ATOL,
    max_abs_diff,
    random_params,
    tiny_config,
    tiny_vocab,
    torch_outputs,
)
from tests.helpers import load_config

pytestmark = pytest.mark.multi_device  # the exported run trains on a 2x2x2 mesh

CONFIG = tiny_config()
MESH = {"data": 2, "fsdp": 2, "tensor": 2}
STEPS = (1, 2)


def run_config(**mesh):
    config = load_config("cpu_smoke")
    for name in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "position_embedding_type",
        "position_embedding_init",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
    ):
        config[name] = getattr(CONFIG, name)  # the architecture of CONFIG, not the smoke recipe's
    config.mesh_shape = mesh or MESH
    return config


def sharded_state(config, seed: int):
    mesh = sharding.create_mesh(config.mesh_shape)
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(config))
    return create_train_state(CONFIG, tx, mesh, config.logical_axis_rules, seed)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A training workdir whose checkpoints (steps 1 and 2, different random parameters) were
    written from a data x fsdp x tensor = 2 x 2 x 2 mesh."""
    return write_run(tmp_path_factory.mktemp("run"), run_config(), tiny_vocab(300))


def write_run(workdir, config, vocab: list[str]):
    state, setup = sharded_state(config, seed=0)
    metadata = checkpointing.metadata_for(
        config, train.model_fields(BertConfig.from_config(config, CONFIG.vocab_size))
    )
    manager = checkpointing.create_checkpoint_manager(workdir / "checkpoints", save_every=1, keep=5)
    for step in STEPS:
        params = jax.device_put(random_params(CONFIG, seed=step), setup.shardings.params)
        checkpointing.save(manager, step, state.replace(params=params), metadata, force=True)
    manager.wait_until_finished()
    manager.close()
    (workdir / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    kernel = params["bert"]["encoder"]["layer"][0]["intermediate"]["dense"]["kernel"]
    assert len(kernel.addressable_shards) == 8 and kernel.addressable_shards[0].data.size < (
        kernel.size / 2
    ), "the checkpoint should hold sharded arrays"
    return workdir


@pytest.fixture(scope="module")
def exported(workdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    result = export_hf(workdir, out)
    assert result.step == 2
    return out


def model_inputs():
    """Three rows of token ids with padding at the end and two segments."""
    rng = np.random.default_rng(0)
    ids = rng.integers(6, CONFIG.vocab_size, (3, 24))
    mask = (np.arange(24)[None] < np.array([[24], [17], [9]])).astype(np.int64)
    segments = ((np.arange(24)[None] >= np.array([[12], [8], [5]])) & (mask == 1)).astype(np.int64)
    ids[:, 0] = 3  # [CLS]
    return ids * mask, segments, mask


def test_exported_files(exported):
    assert sorted(p.name for p in exported.iterdir()) == [
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"] and config["pad_token_id"] == 0
    assert hf.bert_config_from_hf(config, source="export") == CONFIG
    assert json.loads((exported / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_a_cased_run_exports_a_cased_tokenizer_of_the_models_length(tmp_path, transformers):
    """`--config.lowercase=False`: Hugging Face's tokenizer from the export keeps capitals (a
    lowercasing one gives other ids to every capitalised word), and truncates at the model's
    positions, not 512 (longer inputs index past its position table)."""
    config = run_config()
    config.lowercase = False
    vocab = [*tiny_vocab(294), "Hello", "hello", "World", "world", "##s", "!"]
    write_run(tmp_path / "run", config, vocab)
    export_hf(tmp_path / "run", tmp_path / "hf")
    settings = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert settings["do_lower_case"] is False
    assert settings["model_max_length"] == CONFIG.max_position_embeddings != 512
    texts = ["Hello worlds!", "hello World"]
    ours = WordPieceTokenizer(tmp_path / "hf" / "vocab.txt", lowercase=False).encode(texts)
    assert ours == [[294, 297, 298, 299], [295, 296]]
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert reference(texts, add_special_tokens=False)["input_ids"] == ours


def test_export_chooses_the_step(workdir, tmp_path):
    for step in STEPS:
        export_hf(workdir, tmp_path / str(step), step=step)
        tensors = weight_files.read_weights(tmp_path / str(step))
        expected = hf.params_to_hf(random_params(CONFIG, seed=step))
        assert sorted(tensors) == sorted(expected)
        for name, array in expected.items():
            np.testing.assert_array_equal(tensors[name], array, err_msg=name)
    with pytest.raises(UserError, match=r"no checkpoint at step 7; it has steps \[1, 2\]"):
        export_hf(workdir, tmp_path / "x", step=7)
    with pytest.raises(UserError, match="holds no checkpoint"):
        export_hf(tmp_path / "nowhere", tmp_path / "x")


def test_transformers_loads_it_and_agrees(exported, workdir, transformers):
    model, info = transformers.BertForPreTraining.from_pretrained(
        exported, output_loading_info=True
    )
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert info["mismatched_keys"] == [] and info["error_msgs"] == []
    ids, segments, mask = model_inputs()
    reference = torch_outputs(model, ids, segments, mask, output_hidden_states=True)

    ours = load_model(workdir)  # the same checkpoint, gathered onto one device
    encoded = ours.encode(ids, segments, mask)
    mlm = ours.mlm_logits_all(ids, segments, mask)
    nsp = ours.cls.seq_relationship(encoded["pooled_output"])
    assert np.abs(mlm).max() > 1.0, "outputs too small for the comparison to mean anything"
    assert max_abs_diff(mlm, reference.prediction_logits.numpy()) < ATOL
    assert max_abs_diff(nsp, reference.seq_relationship_logits.numpy()) < ATOL
    assert len(encoded["hidden_states"]) == len(reference.hidden_states) == 3
    pairs = zip(encoded["hidden_states"], reference.hidden_states, strict=True)
    for layer, (a, b) in enumerate(pairs):
        assert max_abs_diff(a, b.numpy()) < ATOL, f"hidden states of layer {layer}"


def test_other_transformers_classes_load_it(exported, transformers):
    for cls in (transformers.BertModel, transformers.BertForMaskedLM):
        _, info = cls.from_pretrained(exported, output_loading_info=True)
        assert info["missing_keys"] == [], cls.__name__
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    assert tokenizer("W7 w8", add_special_tokens=True)["input_ids"] == [3, 13, 14, 4]


def test_init_from_restores_onto_another_mesh(workdir):
    """A training workdir as --config.init_from: parameters land on the new run's shardings."""
    config = run_config(data=1, fsdp=8, tensor=1)
    _, setup = sharded_state(config, seed=5)
    fields = train.model_fields(BertConfig.from_config(config, CONFIG.vocab_size))
    params = checkpointing.load_init_params(str(workdir), setup.abstract_state.params, fields)
    kernel = params["bert"]["encoder"]["layer"][1]["attention"]["self"]["query"]["kernel"]
    assert (
        kernel.sharding
        == setup.shardings.params["bert"]["encoder"]["layer"][1]["attention"]["self"]["query"][
            "kernel"
        ]
    )
    expected = random_params(CONFIG, seed=2)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    with pytest.raises(UserError, match=r"has hidden_size=64 .* set --config.hidden_size=64"):
        checkpointing.load_init_params(
            str(workdir), setup.abstract_state.params, {**fields, "hidden_size": 128}
        )


def test_load_model_gives_the_checkpoint(workdir):
    model = load_model(workdir, step=1)
    params = nnx.state(model, nnx.Param).to_pure_dict()
    for a, b in zip(
        jax.tree.leaves(params), jax.tree.leaves(random_params(CONFIG, 1)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_scan_layers_checkpoints_export_and_cross_layouts(workdir, tmp_path):
    """A scan_layers run saves the encoder stacked: export unstacks it, and `init_from` moves
    parameters between the stacked and the per-layer layout in both directions."""
    scan_config = run_config()
    scan_config.scan_layers = True
    model_config = dataclasses.replace(CONFIG, scan_layers=True)
    mesh = sharding.create_mesh(scan_config.mesh_shape)
    tx = optim.create_optimizer(optim.OptimizerSpec.from_config(scan_config))
    state, setup = create_train_state(model_config, tx, mesh, scan_config.logical_axis_rules, 0)
    params = jax.device_put(stack_layers(random_params(CONFIG, seed=4)), setup.shardings.params)
    fields = train.model_fields(BertConfig.from_config(scan_config, CONFIG.vocab_size))
    manager = checkpointing.create_checkpoint_manager(
        tmp_path / "run" / "checkpoints", save_every=1, keep=1
    )
    metadata = checkpointing.metadata_for(scan_config, fields)
    checkpointing.save(manager, 3, state.replace(params=params), metadata, force=True)
    manager.wait_until_finished()
    manager.close()
    (tmp_path / "run" / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))

    export_hf(tmp_path / "run", tmp_path / "hf")
    tensors = weight_files.read_weights(tmp_path / "hf")
    for name, array in hf.params_to_hf(random_params(CONFIG, seed=4)).items():
        np.testing.assert_array_equal(tensors[name], array, err_msg=name)

    # Stacked checkpoint -> per-layer run, and per-layer checkpoint -> stacked run.
    _, list_setup = sharded_state(run_config(), seed=5)
    unstacked = checkpointing.load_init_params(
        str(tmp_path / "run"), list_setup.abstract_state.params, fields
    )
    stacked = checkpointing.load_init_params(str(workdir), setup.abstract_state.params, fields)
    for got, expected in (
        (unstacked, random_params(CONFIG, 4)),
        (stacked, stack_layers(random_params(CONFIG, 2))),
    ):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    layers_kernel = stacked["bert"]["encoder"]["layers"]["intermediate"]["dense"]["kernel"]
    assert (
        layers_kernel.sharding
        == setup.shardings.params["bert"]["encoder"]["layers"]["intermediate"]["dense"]["kernel"]
    )


def test_a_missing_or_foreign_vocabulary_is_refused_before_anything_is_written(workdir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    (copy / "vocab.txt").unlink()
    with pytest.raises(UserError, match="has no vocab.txt; copy the run's vocabulary there"):
        export_hf(copy, tmp_path / "out")
    (copy / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(299)))
    with pytest.raises(UserError, match=r"\(299 tokens\) is not the vocabulary of this checkp"):
        export_hf(copy, tmp_path / "out")
    size = len(vocab_files.read_vocab(workdir / "vocab.txt"))
    (copy / "vocab.txt").write_text("".join(f"t{i}\n" for i in range(size)))  # no [PAD]
    with pytest.raises(UserError, match=r"vocab.txt has no \[PAD\] token, which Hugging Face"):
        export_hf(copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_earlier_exports_files_this_one_would_not_overwrite_are_refused(workdir, tmp_path):
    """Exporting again into the same --out overwrites it; an --out holding Hugging Face files
    this export does not write (a SentencePiece run's tokenizer.json, which AutoTokenizer reads
    in place of vocab.txt; a pytorch_model.bin; an ELECTRA export's generator) is refused
    before anything is written, and nothing is deleted."""
    out = tmp_path / "out"
    export_hf(workdir, out, step=1)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    export_hf(workdir, out)  # the same files again: step 2's weights
    assert sorted(p.name for p in out.iterdir()) == sorted(first)
    assert (out / "model.safetensors").read_bytes() != first["model.safetensors"]
    for leftover in ("tokenizer.json", "pytorch_model.bin", "generator"):
        stale = tmp_path / leftover
        shutil.copytree(out, stale)
        (stale / leftover).mkdir() if leftover == "generator" else (stale / leftover).write_text(
            "x"
        )
        before = {p.name: p.stat().st_mtime_ns for p in stale.iterdir()}
        with pytest.raises(UserError, match=f"already holds {leftover} from an earlier run, which "
                           "transformers would load as part of this export; remove it or "
                           "choose an empty --out"):  # fmt: skip
            export_hf(workdir, stale, step=1)
        assert {p.name: p.stat().st_mtime_ns for p in stale.iterdir()} == before


def test_the_command_import_prints_trains_from_a_vocabulary_of_any_size(workdir, tmp_path):
    """`bertjax import` prints the full command to train from the model: with the vocabulary's
    size (it was left out, so any vocabulary but BERT's 30,522 tokens failed the config's
    vocab_size check); the printed fields validate as they are."""
    from bertjax import config as run_config_module
    from bertjax.convert.importer import run_overrides

    export_hf(workdir, tmp_path / "hf")
    result = import_checkpoint(str(tmp_path / "hf"), tmp_path / "imported")
    assert f"--config.vocab_size={CONFIG.vocab_size} " in result.lines()[-1]
    config = run_config_module.defaults()
    config.update(run_overrides(result))  # as it is: its paths were Paths, which update refused
    config.update({"corpus": SAMPLE_CORPUS_ZH, "max_seq_length": 32, "max_predictions_per_seq": 10})
    spec = run_config_module.validate(config, tmp_path / "run")
    assert spec.data.vocab_size == CONFIG.vocab_size == 300


def test_export_and_import_write_only_inside_out(workdir, tmp_path):
    """Output paths come from fixed file names, never from the checkpoint or source contents."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    export_hf(workdir, sandbox / "hf")
    import_checkpoint(str(sandbox / "hf"), sandbox / "imported")
    written = {p.relative_to(sandbox).parts[0] for p in sandbox.rglob("*")}
    assert written == {"hf", "imported"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sandbox"]


def test_chinese_checkpoint_exports_a_tokenizer_with_the_same_ids(workdir, tmp_path, transformers):
    """A Chinese run's vocabulary (characters, a few Latin and digit wordpieces) exported with
    the checkpoint: Hugging Face's tokenizers read from the export give bertjax's ids."""
    chapter = next(iter(corpus.read_documents(SAMPLE_CORPUS_ZH)))
    lines = sentences.split_sentences(chapter)
    pieces = ["the", "##re", "iphone", "12", "##8", "200", "xl", "##l", "a"]
    counts = collections.Counter("".join(lines))
    frequent = [c for c, _ in counts.most_common() if c.strip() and c not in pieces]
    tokens = [*tiny_vocab(6), *pieces, *frequent[: CONFIG.vocab_size - 6 - len(pieces)]]
    run = tmp_path / "run"
    shutil.copytree(workdir, run)
    (run / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    export_hf(run, tmp_path / "hf")
    texts = [
        *lines,
        "我用iPhone 12拍了2008张照片，ＸＬ码 there！",
        "全角１２３（）【】、。「」",
        "",
    ]
    ours = WordPieceTokenizer(tmp_path / "hf" / "vocab.txt", lowercase=True).encode(texts)
    # The 285 most frequent characters of the chapter cover 73% of it: [UNK] (id 2) is the rest.
    assert sum(row.count(2) for row in ours) < 0.4 * sum(map(len, ours))
    for cls in (transformers.AutoTokenizer, transformers.BertTokenizer):
        reference = cls.from_pretrained(tmp_path / "hf")
        assert reference(texts, add_special_tokens=False)["input_ids"] == ours, cls


def test_a_hugging_face_directory_given_as_a_workdir_names_the_import(exported, tmp_path):
    """--init, --workdir: a Hugging Face directory holds no bertjax checkpoint; the error says
    to import it first."""
    with pytest.raises(
        UserError,
        match=rf"it is a Hugging Face model: `bertjax import --from={exported} --out=DIR`",
    ):
        checkpointing.open_workdir(exported)
    (tmp_path / "finetune_settings.json").write_text("{}")  # a fine-tuning workdir
    with pytest.raises(UserError, match=r"is a fine-tuning workdir, which holds one model per "
                                        r"seed: pass .*/seed_<s>/model$") as error:  # fmt: skip
        checkpointing.open_workdir(tmp_path)
    assert "pass a training workdir" not in str(error.value)  # not predict's or embed's advice
