"""Tests for bertjax/data/vocab.py (run_vocab) and bertjax/data/sentencepiece_vocab.py."""

import gzip
import json

import numpy as np
import pytest
import tensorflow as tf

from bertjax import config as base_config
from bertjax.data import corpus_sample, pipeline, prepare, sentencepiece_vocab, sentences, vocab
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.masking import MaskingSpec, masking_tables
from bertjax.data.sentencepiece_vocab import SentencePieceTokenizer
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError

CORPUS = SAMPLE_CORPUS.replace("*", "inaugural")
SAMPLE_BYTES = 300_000
TEXTS = [
    "Fellow citizens of the Senate and of the House of Representatives.",
    "We hold these truths to be self-evident, that all men are created equal.",
    "",
]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def sentencepiece_dir(request, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp(f"spm-{request.param}")
    meta = vocab.run_vocab(
        CORPUS,
        kind="sentencepiece",
        size=1000,
        out_dir=out_dir,
        uncased=True,
        sample_bytes=SAMPLE_BYTES,
        model_type=request.param,
    )
    return out_dir, meta


def test_run_vocab_sentencepiece_writes_model_vocab_and_meta(sentencepiece_dir):
    out_dir, meta = sentencepiece_dir
    assert {p.name for p in out_dir.iterdir()} == {
        "sentencepiece.model",
        "vocab.txt",
        "vocab_meta.json",
        "run.lock",  # held while it was written (bertjax/run_lock.py); nothing else is left
    }
    assert json.loads((out_dir / "vocab_meta.json").read_text()) == meta
    assert meta["kind"] == "sentencepiece" and meta["vocab_size"] == 1000
    assert meta["special_token_ids"] == {
        "[PAD]": 0,
        "[UNK]": 1,
        "[CLS]": 2,
        "[SEP]": 3,
        "[MASK]": 4,
    }
    assert 0 < meta["sample_bytes"] <= SAMPLE_BYTES + 100_000 and meta["sample_documents"] >= 1
    lines = (out_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000 and lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_sentencepiece_tokenizer_round_trip_and_special_ids(sentencepiece_dir):
    out_dir, _ = sentencepiece_dir
    tokenizer = vocab.load_tokenizer(out_dir / "vocab.txt", lowercase=True)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id) == (0, 1, 2)
    assert (tokenizer.sep_id, tokenizer.mask_id, tokenizer.vocab_size) == (3, 4, 1000)
    assert tokenizer.special_ids == (0, 1, 2, 3, 4)
    encoded = tokenizer.encode(TEXTS)
    assert len(encoded) == 3 and encoded[2] == []
    for text, ids in zip(TEXTS, encoded, strict=True):
        assert all(5 <= i < 1000 for i in ids), "text never encodes to a special id"
        assert tokenizer.decode(ids) == text.lower()
    # A literal "[MASK]" in text is text, not the mask token (control symbol).
    assert tokenizer.mask_id not in tokenizer.encode(["say [MASK] now"])[0]
    assert tokenizer.decode([tokenizer.cls_id, *encoded[0], tokenizer.sep_id]) == TEXTS[0].lower()
    table = tokenizer.word_start_table()
    assert table.shape == (1000,) and table[tokenizer.token_to_id("\u2581the")]
    assert tokenizer.token_to_id("no-such-piece") == tokenizer.unk_id


def test_sentencepiece_tokenizer_inside_tf_data(sentencepiece_dir):
    out_dir, _ = sentencepiece_dir
    tokenizer = SentencePieceTokenizer(out_dir / "sentencepiece.model", lowercase=True)
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(3).map(tokenizer.tokenize_tf)
    (batch,) = dataset.as_numpy_iterator()
    eager = tokenizer.encode(TEXTS)
    assert [list(row) for row in batch] == eager


def test_sentencepiece_vocab_trains_the_same_twice(tmp_path, sentencepiece_dir):
    out_dir, meta = sentencepiece_dir
    vocab.run_vocab(
        CORPUS,
        kind="sentencepiece",
        size=1000,
        out_dir=tmp_path,
        sample_bytes=SAMPLE_BYTES,
        model_type=meta["model_type"],
    )
    assert (tmp_path / "vocab.txt").read_text() == (out_dir / "vocab.txt").read_text()


def test_pipeline_with_a_sentencepiece_vocab_dir(sentencepiece_dir, tmp_path):
    out_dir, _ = sentencepiece_dir
    config = base_config.defaults()
    config.update(
        corpus=CORPUS,
        vocab_dir=str(out_dir),
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=1,
        masking="whole_word",
    )
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    assert isinstance(data.tokenizer, SentencePieceTokenizer)
    spec = MaskingSpec.from_config(config)
    tables = masking_tables(spec, data.tokenizer)
    np.testing.assert_array_equal(tables.word_start_table, data.tokenizer.word_start_table())
    dataset = pipeline.make_dataset(data.source, spec, data.tokenizer, global_batch_size=4, seed=0)
    batch = next(dataset.as_numpy_iterator())
    assert batch["input_ids"].shape == (4, 64) and batch["masked_lm_weights"].sum() > 4
    assert np.all(batch["input_ids"][:, 0] == data.tokenizer.cls_id)


def test_run_vocab_wordpiece(tmp_path):
    meta = vocab.run_vocab(
        CORPUS, kind="wordpiece", size=800, out_dir=tmp_path, uncased=False, sample_bytes=200_000
    )
    assert meta["kind"] == "wordpiece" and meta["vocab_size"] == 800
    assert meta["lowercase"] is False
    assert meta["special_token_ids"]["[MASK]"] == 4
    tokenizer = vocab.load_tokenizer(tmp_path / "vocab.txt", lowercase=False)
    assert isinstance(tokenizer, WordPieceTokenizer) and tokenizer.vocab_size == 800


def test_sample_spreads_over_files(tmp_path):
    for name in ("a", "b"):
        lines = [json.dumps({"text": f"{name} document {i}."}) for i in range(1000)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    texts = list(corpus_sample.sample_documents(f"{tmp_path}/*.jsonl", sample_bytes=4000))
    firsts = {text[0] for text in texts}
    assert firsts == {"a", "b"}, "every file contributes to the sample"
    assert 3900 < sum(len(t) for t in texts) <= 4000  # the document at a share's end is cut


def test_a_document_longer_than_its_file_s_share_is_cut_at_a_space(tmp_path):
    """A book read as one document (text_format="paragraphs") was taken whole whatever the
    share: a corpus of books sampled many times --sample_bytes."""
    words = [f"word{i}" for i in range(20_000)]
    (tmp_path / "book.txt").write_text(" ".join(words) + "\n")
    (tmp_path / "other.txt").write_text("A short file.\n")
    sample = list(
        corpus_sample.sample_documents(
            f"{tmp_path}/*.txt", sample_bytes=10_000, text_format="paragraphs"
        )
    )
    assert [len(t.encode()) <= 10_000 for t in sample] == [True, True]
    assert 9_900 < len(sample[0]) and sample[0].split() == words[: len(sample[0].split())]


def test_sample_shares_follow_the_text_not_the_size_on_disk(tmp_path):
    """The same amount of text as .jsonl, .jsonl.gz and .parquet gives each about a third of the
    sample (by size on disk the gzipped file, ~3 times smaller here, got a third of the share)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def texts(name):
        return [
            f"{name} document {i} of the sample, with some words to compress." for i in range(3000)
        ]

    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts("a")))
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts("b")).encode()
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(lines))
    pq.write_table(pa.table({"text": texts("c")}), tmp_path / "c.parquet")
    sample = list(corpus_sample.sample_documents(f"{tmp_path}/*", sample_bytes=60_000))
    shares = {name: sum(len(t) for t in sample if t[0] == name) for name in "abc"}
    assert min(shares.values()) > 0.8 * max(shares.values()), shares


def test_sample_reads_text_files_in_their_layout(tmp_path):
    """text_format="paragraphs": a .txt file is one document, its hard-wrapped lines joined
    into sentences (read as "sentences", each line was one, cut mid-sentence)."""
    (tmp_path / "prose.txt").write_text(
        "The first sentence is wrapped\nacross two lines. A second one.\n\nA new paragraph.\n"
    )
    lines = list(corpus_sample.sample_documents(f"{tmp_path}/prose.txt", sample_bytes=10**6))
    prose = list(corpus_sample.sample_documents(f"{tmp_path}/prose.txt", sample_bytes=10**6,
                                        text_format="paragraphs"))  # fmt: skip
    assert len(lines) == 2 and len(prose) == 1
    assert sentences.split_sentences(prose[0]) == [
        "The first sentence is wrapped across two lines.", "A second one.", "A new paragraph."
    ]  # fmt: skip
    assert sentences.split_sentences(lines[0])[0] == "The first sentence is wrapped"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="bpe"), "--kind='bpe' is unknown"),
        (dict(model_type="char"), "--model_type='char' is unknown"),
        (dict(sample_bytes=0), "--sample_bytes=0 must be positive"),
        (dict(kind="sentencepiece", size=3), "--size=3 leaves no room"),
        (dict(size=5, input="/nonexistent/*.txt"), "--size=5 leaves no room"),  # corpus unread
        (dict(character_coverage=0.99), "--character_coverage is SentencePiece's"),
        (dict(kind="sentencepiece", character_coverage=0.9), r"must be in \[0.98, 1\]"),
        (dict(kind="sentencepiece", character_coverage=1.5), r"must be in \[0.98, 1\]"),
    ],
)
def test_run_vocab_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        vocab.run_vocab(
            kwargs.pop("input", CORPUS), out_dir=tmp_path,
            sample_bytes=kwargs.pop("sample_bytes", 10_000), **kwargs,
        )  # fmt: skip


def test_a_sentencepiece_size_below_the_corpus_characters_names_the_size_needed(tmp_path):
    """Chinese text has thousands of characters, each a piece SentencePiece must keep; its error
    said "try a smaller --size" (smaller ones fail alike)."""
    texts = ["".join(chr(0x4E00 + (i * 7 + j) % 800) for j in range(40)) for i in range(400)]
    with pytest.raises(UserError, match=r"use a --size above 806, with room for the pieces"):
        sentencepiece_vocab.train_sentencepiece_vocab(texts, 300, True, tmp_path)
    with pytest.raises(UserError, match=r"or a --character_coverage below 0.9995 \(the rarest"):
        sentencepiece_vocab.train_sentencepiece_vocab(texts, 300, True, tmp_path)


def test_a_lower_character_coverage_fits_a_smaller_vocabulary(tmp_path):
    """--character_coverage leaves the rarest characters out ([UNK]): 800 characters, 400 of
    them in one text only, fit 600 pieces at 0.98 (SentencePiece's lowest) and not at the
    default 0.9995."""
    common = ["".join(chr(0x4E00 + (i * 7 + j) % 400) for j in range(40)) for i in range(400)]
    rare = ["".join(chr(0x4E00 + 400 + j) for j in range(400))]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(common + rare) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="required_chars"):
        vocab.run_vocab(str(corpus), "sentencepiece", 600, tmp_path / "default")
    meta = vocab.run_vocab(
        str(corpus), "sentencepiece", 600, tmp_path / "low", character_coverage=0.98
    )
    assert meta["character_coverage"] == 0.98 and meta["vocab_size"] <= 600
    tokenizer = vocab.load_tokenizer(tmp_path / "low" / "vocab.txt", lowercase=True)
    assert tokenizer.unk_id in tokenizer.encode([rare[0]])[0]


def test_unknown_tokens_warning_names_sentencepiece_causes(sentencepiece_dir, tmp_path, caplog):
    """Greek for an English SentencePiece vocabulary is [UNK]: prepare and the in-memory build
    warn with SentencePiece's cause (characters it lacks), not WordPiece's word limit or
    --extend (WordPiece only)."""
    out_dir, _ = sentencepiece_dir
    caplog.set_level("WARNING", logger="absl")
    lines = [json.dumps({"text": "Η Αθήνα είναι πρωτεύουσα. Είναι μεγάλη πόλη. Ναι!"})] * 8
    (tmp_path / "greek.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = f"{tmp_path}/greek.jsonl"
    prepare.run_prepare(corpus, out_dir, tmp_path / "out", num_workers=1)
    config = base_config.defaults()
    config.update(corpus=corpus, vocab_dir=str(out_dir), max_seq_length=32, dupe_factor=1)
    pipeline.build_pretraining_data(DataSpec.from_config(config))
    warnings = [r.getMessage() for r in caplog.records if "are [UNK]" in r.getMessage()]
    assert len(warnings) == 2
    for warning in warnings:
        assert "the SentencePiece vocabulary lacks its characters" in warning
        assert "--extend" not in warning and "characters (text without spaces" not in warning


def test_sample_skips_files_without_documents(tmp_path):
    """An empty file and one in another encoding are skipped with their warning, as training
    skips them (before, the first such file stopped `bertjax vocab`); with no file holding a
    document, the error is the file's own."""
    (tmp_path / "a.txt").write_text("A sentence of the corpus.\nAnother one.\n")
    (tmp_path / "b_empty.txt").write_text("")
    (tmp_path / "c_latin1.txt").write_bytes("Café à la crème.\nÉté brûlé.\n".encode("latin-1"))
    texts = list(corpus_sample.sample_documents(f"{tmp_path}/*.txt", sample_bytes=10**6))
    assert len(texts) == 1 and texts[0].startswith("A sentence of the corpus.")  # a.txt
    with pytest.raises(UserError, match="no file has documents: .*b_empty.txt"):
        list(corpus_sample.sample_documents(f"{tmp_path}/[bc]*.txt", sample_bytes=10**6))
    with pytest.raises(UserError, match="not in UTF-8"):
        list(corpus_sample.sample_documents(f"{tmp_path}/c_latin1.txt", sample_bytes=10**6))


def test_a_dangling_link_in_the_corpus_is_skipped_not_a_traceback(tmp_path):
    """Its size, its share of the sample and the corpus fingerprint were a FileNotFoundError
    traceback in `bertjax vocab` (and `prepare`, and training without a vocab_dir); reading it
    skips and counts it, as training with a vocabulary did."""
    from bertjax.data import corpus

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("A sentence of the corpus.\nAnother one.\n" * 50)
    (tmp_path / "c" / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "More text."}\n' * 50))
    (tmp_path / "c" / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    files = corpus.resolve_files(f"{tmp_path}/c/*")
    assert len(files) == 3 and corpus_sample.text_sizes(files, "text")[2] == 0
    meta = vocab.run_vocab(f"{tmp_path}/c/*", size=120, out_dir=tmp_path / "v")
    assert (tmp_path / "v" / "vocab.txt").is_file() and meta["sample_documents"] == 51
    readable = corpus.corpus_fingerprint(files[:2])
    assert corpus.corpus_fingerprint(files) not in (readable, "")


def test_a_wordpiece_vocabulary_is_not_written_over_a_sentencepiece_one(
    sentencepiece_dir, tmp_path
):
    """A sentencepiece.model beside vocab.txt makes it a SentencePiece vocabulary: `bertjax vocab
    --kind=wordpiece` into such a directory is refused before anything is written (a run would
    have tokenized with the stale model), and such a directory made by hand is refused when
    read."""
    import shutil

    out_dir, _ = sentencepiece_dir
    stale = tmp_path / "stale"
    shutil.copytree(out_dir, stale)
    before = {p.name: p.read_bytes() for p in stale.iterdir()}
    with pytest.raises(UserError, match="already holds sentencepiece.model from an earlier run"):
        vocab.run_vocab(CORPUS, kind="wordpiece", size=800, out_dir=stale, sample_bytes=10_000)
    assert {p.name: p.read_bytes() for p in stale.iterdir()} == before
    meta = json.loads((stale / "vocab_meta.json").read_text()) | {"kind": "wordpiece"}
    (stale / "vocab_meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="remove sentencepiece.model"):
        vocab.load_tokenizer(stale / "vocab.txt", lowercase=True)
    vocab.run_vocab(CORPUS, kind="sentencepiece", size=1000, out_dir=stale, sample_bytes=10_000)
