"""`bertjax import` and `bertjax export` on the command line: results, and one-line errors."""

import json
import re
import types

import pytest

from bertjax import cli, startup
from bertjax.commands import COMMANDS
from tests.convert.helpers import random_params, tiny_config, tiny_vocab, write_hf_dir
from tests.test_cli import assert_one_line_error, run_cli


def test_import_then_export(tmp_path):
    config = tiny_config()
    # BertForMaskedLM's weights: no pooler, no next-sentence head.
    drop = ("bert.pooler.", "cls.seq_relationship.")
    source = write_hf_dir(
        tmp_path / "hf", random_params(config, 0), config, tiny_vocab(300), drop=drop
    )
    imported = run_cli("import", f"--from={source}", f"--out={tmp_path / 'model'}")
    assert imported.returncode == 0, imported.stderr
    lines = imported.stdout.splitlines()
    assert lines[0].startswith("Imported Hugging Face BERT from")
    assert "initialised pooler (bert.pooler): not in the source" in lines
    assert "initialised next-sentence head (cls.seq_relationship): not in the source" in lines

    out = tmp_path / "exported"
    exported = run_cli("export", f"--workdir={tmp_path / 'model'}", f"--out={out}")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"Exported step 0 of {tmp_path / 'model'} -> {out}")
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 64
    assert (out / "model.safetensors").is_file() and (out / "vocab.txt").is_file()

    elsewhere = tmp_path / "not_written"
    wrong_step = run_cli(
        "export", f"--workdir={tmp_path / 'model'}", "--step=5", f"--out={elsewhere}"
    )
    assert_one_line_error(wrong_step, "has no checkpoint at step 5; it has steps [0]", elsewhere)


@pytest.mark.parametrize("workdir, loads", [("gs://bucket/run", True), ("workdirs/run", False)])
def test_export_loads_tensorflow_only_for_a_workdir_in_a_bucket(workdir, loads, monkeypatch):
    """Export starts without TensorFlow (tests/test_tf_free.py); etils reads gs:// through its
    gfile, so a bucket's workdir loads it first, with the start-up notices hidden."""
    from bertjax.convert import export

    calls = []
    monkeypatch.setattr(startup, "import_tensorflow_quietly", lambda quiet: calls.append(quiet))
    result = types.SimpleNamespace(lines=lambda: ["exported"])
    monkeypatch.setattr(export, "export_hf", lambda *args, **kwargs: result)
    _, fv, arguments = cli.parse(["bertjax", "export", f"--workdir={workdir}", "--out=o"])
    COMMANDS["export"].run(fv, arguments)
    assert calls == ([True] if loads else [])


@pytest.mark.parametrize(
    "args, expected",
    [
        (("import", "--out={tmp}/out"), "import needs --from="),
        (("export", "--workdir={tmp}/model"), "export needs --workdir=DIR"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, expected, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in args]
    assert_one_line_error(run_cli(*args), expected, tmp_path / "out", tmp_path / "model")


def test_usage_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "bertjax export --workdir=DIR [--step=N] --out=HF_DIR" in result.stdout
    assert "bertjax import --from=" in result.stdout


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "mecab"},
         "tokenizer_class"),
        ({"word_tokenizer_type": "sudachi"}, "word_tokenizer_type"),
        ({"do_basic_tokenize": False}, "do_basic_tokenize"),
        ({"tokenize_chinese_chars": False}, "tokenize_chinese_chars"),
        ({"do_lower_case": True, "strip_accents": False}, "strip_accents"),
        ({"do_lower_case": False, "strip_accents": True}, "strip_accents"),
    ],
)  # fmt: skip
def test_a_tokenizer_bertjax_does_not_reproduce_is_refused(tmp_path, settings, field):
    """A model whose tokenizer splits text otherwise than BertTokenizer's basic tokenization
    (Japanese MeCab words, no CJK split, accents kept while lowercasing) would get other ids from
    bertjax's tokenizer than it was trained on."""
    from bertjax.convert import importer
    from bertjax.errors import UserError

    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    expected = f"sets {field}={settings[field]!r}: bertjax tokenizes as BertTokenizer"
    with pytest.raises(UserError, match=re.escape(expected)):
        importer.tokenizer_casing(tmp_path / "tokenizer_config.json")


def test_importing_a_japanese_mecab_model_stops_before_writing(tmp_path):
    config = tiny_config()
    source = write_hf_dir(tmp_path / "hf", random_params(config, 0), config, tiny_vocab(300))
    settings = {"tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "mecab"}
    (source / "tokenizer_config.json").write_text(json.dumps(settings))
    result = run_cli("import", f"--from={source}", f"--out={tmp_path / 'out'}")
    expected = "sets tokenizer_class='BertJapaneseTokenizer': bertjax tokenizes as BertTokenizer"
    assert_one_line_error(result, expected, tmp_path / "out")


@pytest.mark.parametrize(
    "settings, lowercase",
    [
        ({"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None}, True),
        ({"do_lower_case": False, "strip_accents": False, "do_basic_tokenize": True}, False),
        ({"tokenizer_class": "BertTokenizer"}, None),
    ],
)
def test_bert_tokenizer_settings_give_the_casing(tmp_path, settings, lowercase):
    from bertjax.convert import importer

    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    assert importer.tokenizer_casing(tmp_path / "tokenizer_config.json") is lowercase
    assert importer.tokenizer_casing(tmp_path / "absent.json") is None


def _tokenizers_save(directory, model, lowercase: bool) -> None:
    """tokenizer.json as the `tokenizers` library saves a BERT tokenizer (no vocab.txt)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers

    saved = Tokenizer(model)
    saved.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    saved.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    saved.save(str(directory / "tokenizer.json"))


def test_a_model_with_only_a_tokenizer_json_gets_its_vocab_txt_and_casing(tmp_path):
    """Models saved with `tokenizers` alone ship tokenizer.json and no vocab.txt; before, their
    import stopped at "has no vocab.txt"."""
    from tokenizers import models

    config, vocab = tiny_config(), tiny_vocab(300)
    source = write_hf_dir(tmp_path / "hf", random_params(config, 0), config, vocab)
    (source / "vocab.txt").unlink()
    ids = {token: i for i, token in enumerate(vocab)}
    _tokenizers_save(source, models.WordPiece(ids, unk_token="[UNK]"), lowercase=False)
    result = run_cli("import", f"--from={source}", f"--out={tmp_path / 'model'}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "vocab.txt").read_text().splitlines() == vocab
    assert json.loads((tmp_path / "model" / "vocab_meta.json").read_text())["lowercase"] is False
    assert not (source / "vocab.txt").exists()  # the source is left as it was

    _tokenizers_save(source, models.BPE({"a": 0, "b": 1}, []), lowercase=True)
    result = run_cli("import", f"--from={source}", f"--out={tmp_path / 'bpe'}")
    expected = "has no vocab.txt and its tokenizer.json is a BPE tokenizer, not BERT's WordPiece"
    assert_one_line_error(result, expected, tmp_path / "bpe")
