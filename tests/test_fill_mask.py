"""`bertjax fill-mask`: a checkpoint's ranked answers for each [MASK] of a text."""

import numpy as np
import pytest

from bertjax import fill_mask, train
from bertjax.convert import load_model
from bertjax.data import vocab
from bertjax.errors import UserError
from tests.test_cli import run_cli
from tests.test_smoke import small_smoke_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fill")
    config = small_smoke_config(tmp_path).to_dict()  # a plain dict trains as its ConfigDict does
    train.train_and_evaluate(config, tmp_path / "workdir")
    return tmp_path / "workdir"


def test_texts_are_a_non_empty_list(workdir):
    """A str alone had each character read as a text; [] was a ValueError of max()."""
    for texts in ("the [MASK] house", []):
        with pytest.raises(UserError, match=r"must be a non-empty list of texts; pass \[text\]"):
            fill_mask.fill_mask(workdir, texts)


def test_masks_become_the_mask_id_between_the_encoded_pieces(workdir):
    tok = vocab.load_tokenizer(workdir / "vocab.txt", lowercase=True)
    ids = fill_mask.encode_with_masks(tok, "the [MASK] of the union[MASK]")
    pieces = tok.encode(["the ", " of the union", ""])
    expected = [tok.cls_id, *pieces[0], tok.mask_id, *pieces[1], tok.mask_id, tok.sep_id]
    assert ids == expected
    with pytest.raises(UserError, match="holds no \\[MASK\\]"):
        fill_mask.encode_with_masks(tok, "no mask here")


def test_answers_are_the_model_top_k_with_its_probabilities(workdir):
    texts = ["the [MASK] of the union is strong .", "we the [MASK] [MASK] ."]
    answers = fill_mask.fill_mask(workdir, texts, top_k=3)
    assert [len(per_mask) for per_mask in answers] == [1, 2]
    tok = vocab.load_tokenizer(workdir / "vocab.txt", lowercase=True)
    ids = np.array([fill_mask.encode_with_masks(tok, texts[0])])
    logits = np.asarray(load_model(workdir).mlm_logits_all(ids, 0 * ids, 1 + 0 * ids))[0]
    position = int(np.flatnonzero(ids[0] == tok.mask_id)[0])
    probabilities = np.exp(logits[position] - logits[position].max())
    probabilities /= probabilities.sum()
    best = np.argsort(-probabilities)[:3]
    ranked = answers[0][0]
    assert [a.token for a in ranked] == [tok.vocab[i] for i in best]
    np.testing.assert_allclose([a.probability for a in ranked], probabilities[best], rtol=1e-4)
    assert ranked[0].probability >= ranked[1].probability >= ranked[2].probability


def test_fill_mask_command_line(workdir):
    result = run_cli("fill-mask", f"--workdir={workdir}", "--top_k=2", "the [MASK] states")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "the [MASK] states" and lines[-1].startswith("  [MASK] 1: ")
    assert lines[-1].count("(") == 2
    bad = run_cli("fill-mask", f"--workdir={workdir}", "no mask")
    assert bad.returncode == 2 and "holds no [MASK]" in bad.stderr
    none = run_cli("fill-mask", f"--workdir={workdir}")
    assert none.returncode == 2 and "fill-mask needs" in none.stderr


def test_a_sentencepiece_run_keeps_its_model_and_is_read_with_it(tmp_path):
    """A run with a SentencePiece vocabulary keeps sentencepiece.model beside vocab.txt, so
    fill-mask (and fine-tuning, evaluation, which read the workdir the same way) tokenize as
    training did; before, the workdir had vocab.txt only and was read as WordPiece."""
    from bertjax.data.sentencepiece_vocab import SentencePieceTokenizer
    from bertjax.data.vocab_files import SENTENCEPIECE_FILE

    corpus = small_smoke_config(tmp_path).corpus
    meta = vocab.run_vocab(corpus, "sentencepiece", 1000, tmp_path / "spm", True, 10**6)
    config = small_smoke_config(tmp_path, vocab_dir=str(tmp_path / "spm"),
                                vocab_size=meta["vocab_size"], num_train_steps=3)  # fmt: skip
    train.train_and_evaluate(config, tmp_path / "run")
    run = tmp_path / "run"
    assert (run / SENTENCEPIECE_FILE).read_bytes() == (
        tmp_path / "spm" / SENTENCEPIECE_FILE
    ).read_bytes()
    tok = vocab.load_tokenizer(run / "vocab.txt", lowercase=True)
    assert isinstance(tok, SentencePieceTokenizer)
    text = "the [MASK] of the union"
    expected = fill_mask.encode_with_masks(
        vocab.load_tokenizer(tmp_path / "spm" / "vocab.txt", lowercase=True), text
    )
    assert fill_mask.encode_with_masks(tok, text) == expected
    assert len(fill_mask.fill_mask(run, [text], top_k=2)[0][0]) == 2


def test_a_fine_tune_of_a_fine_tune_names_the_pretrained_model_it_came_from(tmp_path):
    """fill-mask on a tagger fine-tuned from a classifier: the error names the pretrained
    model at the start of the chain (it named the classifier, refused in turn)."""
    from bertjax import checkpointing
    from bertjax.convert import model_dir
    from tests.test_finetune import tiny_model_dir

    texts = ["the cat sat on the mat", "a dog ran in the park today", "rain fell today"]
    pretrained = tiny_model_dir(tmp_path / "pre", texts * 5)
    _, metadata = checkpointing.open_workdir(pretrained)
    bert = checkpointing.restore_params(pretrained, 0)["bert"]
    config = model_dir.model_config(metadata)
    head = {"kernel": np.ones((64, 2), np.float32), "bias": np.zeros(2, np.float32)}
    parent, step = pretrained, 0
    for name, kind in (("classifier", "classification"), ("tagger", "tagging")):
        task = {"name": name, "kind": kind, "labels": ["a", "b"], "max_seq_length": 16}
        model_dir.write(tmp_path / name, {"bert": bert, "head": head}, config,
                        pretrained / "vocab.txt", True, str(parent), task=task,
                        finetuned_from=True, source_step=step)  # fmt: skip
        parent, step = tmp_path / name, model_dir.IMPORT_STEP
    with pytest.raises(UserError, match=rf"fill-mask needs; pass the model it was fine-tuned "
                       rf"from, {pretrained} \(--step=0\)$"):  # fmt: skip
        fill_mask.fill_mask(str(tmp_path / "tagger"), ["the [MASK] sat"], top_k=1)
