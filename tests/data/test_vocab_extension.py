"""Tests for bertjax/data/vocab_extension.py (`bertjax vocab --extend=DIR`)."""

import json

import pytest

from bertjax import cli
from bertjax.data import vocab
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.data.vocab_files import read_vocab
from bertjax.errors import UserError

GREEK = [
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας. Είναι μια πολύ μεγάλη και παλιά πόλη.",
    "Χθες πήγαμε στην Ακρόπολη με το τρένο. Το ταξίδι κράτησε τρεις ώρες.",
    "Η θάλασσα ήταν ήσυχη και ο ουρανός καθαρός. Θα ξαναπάμε τον Μάιο.",
]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """An English base vocabulary (the inaugural addresses) and a Greek corpus file."""
    root = tmp_path_factory.mktemp("extend")
    vocab.run_vocab(SAMPLE_CORPUS.replace("*", "inaugural"), size=600, out_dir=root / "base")
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in GREEK * 20]
    (root / "greek.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_extension_keeps_the_base_ids_and_adds_the_corpus_characters_first(dirs):
    base = read_vocab(dirs / "base" / "vocab.txt")
    meta = vocab.run_vocab(
        str(dirs / "greek.jsonl"), size=len(base) + 120, out_dir=dirs / "ext",
        extend=str(dirs / "base"),
    )  # fmt: skip
    tokens = read_vocab(dirs / "ext" / "vocab.txt")
    assert tokens[: len(base)] == base and len(set(tokens)) == len(tokens)
    added = tokens[len(base) :]
    assert meta["vocab_size"] == len(tokens) == len(base) + meta["extends"]["added"]
    assert meta["extends"]["vocab_size"] == len(base) and 0 < len(added) <= 120
    # Characters (and their ## forms) come before the wordpieces made of them.
    single = [len(t.removeprefix("##")) == 1 for t in added]
    assert single == sorted(single, reverse=True) and any(single) and not all(single)
    assert (
        meta["special_token_ids"]
        == json.loads((dirs / "base" / "vocab_meta.json").read_text())["special_token_ids"]
    )
    text = ["θα ξαναπάμε στην ακρόπολη"]
    unknown = {}
    for name in ("base", "ext"):
        wordpiece = WordPieceTokenizer(dirs / name / "vocab.txt", lowercase=True)
        (ids,) = wordpiece.encode(text)
        unknown[name] = ids.count(wordpiece.unk_id)
    assert unknown == {"base": 4, "ext": 0}
    # Every character of the sample is added, even where its words are whole tokens: a word the
    # sample never has ("ξύλο", wood) is spelled, not [UNK].
    (ids,) = wordpiece.encode(["ξύλο"])
    assert wordpiece.unk_id not in ids and len(ids) > 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=100), r"--size=100 adds nothing to the \d+ tokens of --extend=.*--size=\d+"),
        (dict(kind="sentencepiece"), "--extend adds to a WordPiece vocabulary"),
        (dict(extend="nowhere"), "--extend='nowhere' holds no vocab.txt"),
    ],
)
def test_extension_errors(dirs, tmp_path, kwargs, message):
    kwargs = dict(size=2000, out_dir=tmp_path / "out", extend=str(dirs / "base")) | kwargs
    with pytest.raises(UserError, match=message):
        vocab.run_vocab(str(dirs / "greek.jsonl"), **kwargs)
    assert not (tmp_path / "out").exists(), "refused before anything is written"


def test_the_command_prints_the_training_command(dirs, tmp_path, capsys):
    out = tmp_path / "cli"
    size = len(read_vocab(dirs / "base" / "vocab.txt")) + 50
    cli.main(["bertjax", "vocab", f"--input={dirs}/greek.jsonl", f"--out={out}", f"--size={size}",
              f"--extend={dirs}/base"])  # fmt: skip
    printed = capsys.readouterr().out
    # The base is a vocabulary, not a model: the command says to import the model first.
    assert f"--config.init_from=MODEL_DIR --config.vocab_dir={out}" in printed
    assert f"(MODEL_DIR: `bertjax import --from={dirs}/base`)" in printed
    assert f"--config.vocab_size={len(read_vocab(out / 'vocab.txt'))}" in printed


def test_extending_an_uncased_base_with_brahmic_text_names_the_base_as_the_cause(
    dirs, tmp_path, caplog
):
    """The extension keeps the base's casing, so the fix for stripped vowel signs is another
    base, not --config.lowercase=False (which a vocabulary trained from scratch is told)."""
    from bertjax.data.vocab_extension import extend_wordpiece_vocab

    caplog.set_level("WARNING", logger="absl")
    hindi = ["मैं कल दिल्ली गया था। वहाँ बहुत भीड़ थी। हिंदी में किताब।"] * 3
    base_size = len(read_vocab(dirs / "base" / "vocab.txt"))
    extend_wordpiece_vocab(hindi, dirs / "base", base_size + 50, True, tmp_path / "ext")
    assert f"{dirs / 'base'} is uncased, so its tokenizer strips them too" in caplog.text
    assert "--config.lowercase=False" not in caplog.text
