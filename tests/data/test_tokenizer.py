"""Tests for bertjax/data/tokenizer.py: vocabulary training and cache, tokenization round trip."""

import json
import os
import unicodedata

import ml_collections
import pytest
import tensorflow as tf

from bertjax.data import corpus, sentences, tokenizer, vocab, vocab_files
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.data.vocab import build_or_load_vocab
from bertjax.errors import UserError

VOCAB_SIZE = 3000


def _config(cache_dir, **overrides) -> ml_collections.ConfigDict:
    fields = dict(
        corpus=SAMPLE_CORPUS,
        text_field="text",
        vocab_dir="",
        vocab_size=VOCAB_SIZE,
        lowercase=True,
        cache_dir=str(cache_dir),
    )
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # Shared by the whole session's data tests, so the sample vocabulary is trained once.
    return tmp_path_factory.getbasetemp() / "bertjax-vocab-cache"


@pytest.fixture(scope="module")
def sample_tokenizer(cache_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer(
        build_or_load_vocab(DataSpec.from_config(_config(cache_dir))), lowercase=True
    )


@pytest.fixture(scope="module")
def sample_sentences() -> list[str]:
    return [
        s for doc in corpus.read_documents(SAMPLE_CORPUS) for s in sentences.split_sentences(doc)
    ]


def _write_vocab(path, tokens):
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path / "vocab.txt"


def test_trained_vocab_layout(sample_tokenizer):
    tok = sample_tokenizer
    assert tok.vocab_size == VOCAB_SIZE
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.special_ids == (0, 1, 2, 3, 4)
    assert len(set(tok.vocab)) == VOCAB_SIZE
    meta = json.loads((tok.vocab_path.parent / "vocab_meta.json").read_text())
    assert meta["vocab_size"] == VOCAB_SIZE and meta["lowercase"] is True
    assert meta["special_token_ids"] == {
        "[PAD]": 0,
        "[UNK]": 1,
        "[CLS]": 2,
        "[SEP]": 3,
        "[MASK]": 4,
    }
    files = corpus.resolve_files(SAMPLE_CORPUS)
    assert meta["corpus_fingerprint"] == corpus.corpus_fingerprint(files)


def test_vocab_cache_is_reused_without_retraining(cache_dir, sample_tokenizer, monkeypatch):
    path = sample_tokenizer.vocab_path
    mtime = os.stat(path).st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("vocabulary was retrained")

    monkeypatch.setattr(tokenizer, "train_wordpiece_vocab", fail)
    assert build_or_load_vocab(DataSpec.from_config(_config(cache_dir))) == path
    assert os.stat(path).st_mtime_ns == mtime
    assert path.parent.name.startswith("vocab-")
    assert not list(cache_dir.glob(".vocab-*")), "temporary training directory left behind"


def test_a_cache_dir_that_cannot_be_a_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"cannot create --config.cache_dir=.*file: .*; choose"):
        build_or_load_vocab(DataSpec.from_config(_config(tmp_path / "file")))  # was FileExistsError


def test_new_settings_retrain_and_a_killed_run_leaves_nothing(
    cache_dir, sample_tokenizer, monkeypatch
):
    calls = []

    def killed(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt  # the run dies half way through training

    monkeypatch.setattr(vocab, "train_wordpiece_vocab", killed)
    with pytest.raises(KeyboardInterrupt):
        build_or_load_vocab(DataSpec.from_config(_config(cache_dir, vocab_size=VOCAB_SIZE + 1)))
    assert len(calls) == 1, "a different vocab_size must not reuse the cached vocabulary"
    fingerprint = corpus.corpus_fingerprint(corpus.resolve_files(SAMPLE_CORPUS))
    key = vocab.vocab_cache_key(fingerprint, VOCAB_SIZE + 1, True, "text")
    assert not (cache_dir / f"vocab-{key}").exists()
    assert not list(cache_dir.glob(".vocab-*")), "temporary training directory left behind"
    assert sample_tokenizer.vocab_path.is_file()


def test_training_is_deterministic(tmp_path):
    texts = list(corpus.read_documents(SAMPLE_CORPUS.replace("*", "inaugural")))
    first = tokenizer.train_wordpiece_vocab(texts, 1500, True, tmp_path / "a")
    second = tokenizer.train_wordpiece_vocab(iter(texts), 1500, True, tmp_path / "b")
    assert first.read_text() == second.read_text()


def test_round_trip_and_unknown_rate(sample_tokenizer, sample_sentences):
    tok = sample_tokenizer

    def normalized(text: str) -> str:
        text = unicodedata.normalize("NFD", text.lower())
        # BERT drops accents, control and format characters; whitespace is not compared.
        return "".join(
            c for c in text if unicodedata.category(c) not in ("Mn", "Cc", "Cf") and not c.isspace()
        )

    ids = []
    for begin in range(0, len(sample_sentences), 1024):
        ids.extend(tok.encode(sample_sentences[begin : begin + 1024]))
    assert len(ids) == len(sample_sentences) > 20_000
    exact = sum(
        normalized(text) == tok.decode(row).replace(" ", "")
        for text, row in zip(sample_sentences, ids, strict=True)
    )
    assert exact / len(ids) >= 0.99
    num_tokens = sum(map(len, ids))
    num_unknown = sum(row.count(tok.unk_id) for row in ids)
    assert num_unknown / num_tokens < 0.005
    assert num_tokens > 600_000


def test_encode_decode_details(sample_tokenizer):
    tok = sample_tokenizer
    assert tok.encode([]) == []
    empty, text = tok.encode(["", "The Congress, Mr. President."])
    assert empty == []
    assert tok.decode(text) == "the congress , mr . president ."
    assert tok.decode([tok.cls_id, *text, tok.sep_id, tok.pad_id]) == tok.decode(text)
    # A word made of continuation pieces is glued back together.
    word = tok.encode(["unconstitutionality"])[0]
    assert len(word) > 1 and all(tok.vocab[i].startswith("##") for i in word[1:])
    assert tok.decode(word) == "unconstitutionality"


def test_tokenize_tf_inside_dataset_matches_encode(sample_tokenizer):
    texts = ["In the beginning God created the heaven.", "", "Fellow-Citizens of the Senate"]
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(sample_tokenizer.tokenize_tf)
    (ragged,) = list(dataset)
    assert ragged.dtype == tf.int32
    assert ragged.to_list() == sample_tokenizer.encode(texts)


def test_bert_style_vocab_with_non_leading_special_ids(tmp_path):
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += ["hello", "world", "play", "##ing", "!", "é"]
    tok = WordPieceTokenizer(_write_vocab(tmp_path, tokens), lowercase=True)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.special_ids == tuple(range(104))
    assert tok.vocab_size == 110
    assert tok.encode(["Hello PLAYING world! zebra"]) == [[104, 106, 107, 105, 108, 100]]
    assert tok.decode([101, 104, 106, 107, 102, 0]) == "hello playing"


def test_cased_vocab_keeps_case(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "Café"]
    tok = WordPieceTokenizer(_write_vocab(tmp_path, tokens), lowercase=False)
    assert tok.encode(["Hello hello HELLO Café"]) == [[5, 6, 1, 7]]


def test_a_token_listed_twice_is_its_last_line_s_id(tmp_path):
    """google-research/bert's load_vocab and Hugging Face (tokenizers: BertTokenizerFast) map a
    duplicated line to its last id; bertjax took the first, ids the model never trained."""
    from tokenizers import BertWordPieceTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "hello", "a", "##b"]
    path = _write_vocab(tmp_path, tokens + ["##b"])
    ours = WordPieceTokenizer(path, lowercase=True).encode(["hello world ab"])
    reference = BertWordPieceTokenizer(str(path), lowercase=True).encode(
        "hello world ab", add_special_tokens=False
    )
    assert ours == [reference.ids] == [[7, 6, 8, 10]]


def test_a_lone_surrogate_is_deleted_not_a_crash(sample_tokenizer):
    """Text from JSON may hold a lone surrogate (fine-tuning files, fill-mask input): it was a
    ValueError from tf.constant; now deleted, as U+FFFD is (google-research/bert deletes both)."""
    cut, whole = sample_tokenizer.encode(["the \ud83d senate", "the senate"])
    assert cut == whole
    ids, starts = sample_tokenizer.encode_with_char_starts(["the \ud83d senate"])
    assert ids == [whole]


def test_vocab_missing_special_token(tmp_path):
    path = _write_vocab(tmp_path, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"])
    with pytest.raises(UserError, match=r"lacks special tokens \['\[MASK\]'\]"):
        WordPieceTokenizer(path, lowercase=True)


def test_a_cased_vocab_txt_is_refused_for_lowercased_text(tmp_path):
    """A bare cased vocab.txt (no vocab_meta.json) with lowercase=True (the default) trained on
    lowercased text, its upper-case tokens unused: one line says to set lowercase=False."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "The", "the", "[unused0]"]
    _write_vocab(tmp_path / "cased", tokens)
    with pytest.raises(UserError, match=r"is cased \(tokens such as The\).*lowercase=False$"):
        build_or_load_vocab(
            DataSpec.from_config(_config(tmp_path, vocab_dir=str(tmp_path / "cased")))
        )
    cased = _config(tmp_path, vocab_dir=str(tmp_path / "cased"), lowercase=False)
    assert build_or_load_vocab(DataSpec.from_config(cased)).name == "vocab.txt"
    _write_vocab(tmp_path / "uncased", [t for t in tokens if t != "The"])
    uncased = _config(tmp_path, vocab_dir=str(tmp_path / "uncased"))
    assert build_or_load_vocab(DataSpec.from_config(uncased)).name == "vocab.txt"


def test_vocab_dir_errors(tmp_path, sample_tokenizer):
    with pytest.raises(UserError, match="does not exist.*vocab_dir"):
        build_or_load_vocab(
            DataSpec.from_config(_config(tmp_path, vocab_dir=str(tmp_path / "nowhere")))
        )
    given = sample_tokenizer.vocab_path.parent
    assert (
        build_or_load_vocab(DataSpec.from_config(_config(tmp_path, vocab_dir=str(given))))
        == given / "vocab.txt"
    )
    with pytest.raises(UserError, match="lowercase=True"):
        build_or_load_vocab(
            DataSpec.from_config(_config(tmp_path, vocab_dir=str(given), lowercase=False))
        )


def test_too_small_vocab_size(tmp_path):
    with pytest.raises(UserError, match="vocab_size=5"):
        tokenizer.train_wordpiece_vocab(["some text"], 5, True, tmp_path)


def test_a_vocabulary_larger_than_asked_is_said(tmp_path, caplog):
    """Characters are always kept, so vocab_size=20 on text with 20+ letters gives more tokens:
    the log names the real size and warns (the model is built with the real size)."""
    text = tmp_path / "corpus.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n\nPack my box with five "
                    "dozen liquor jugs.\n", encoding="utf-8")  # fmt: skip
    config = _config(tmp_path / "cache", corpus=str(text), vocab_size=20)
    caplog.set_level("INFO", logger="absl")
    vocab_path = build_or_load_vocab(DataSpec.from_config(config))
    size = len(vocab_files.read_vocab(vocab_path))
    assert size > 20
    assert f"Trained a {size}-token vocabulary (vocab_size=20" in caplog.text
    assert f"The vocabulary has {size} tokens, more than vocab_size=20" in caplog.text


def test_a_vocabulary_smaller_than_asked_is_said(tmp_path, caplog):
    """Chinese text is cut into characters before WordPiece sees it, so a corpus of few
    characters cannot fill the target: the log says so (the Chinese proof's 16,000 gave 6,314)."""
    text = tmp_path / "corpus.txt"
    text.write_text("西游记第一回。孙悟空大闹天宫。\n\n唐僧师徒四人西天取经。\n", encoding="utf-8")
    config = _config(tmp_path / "cache", corpus=str(text), vocab_size=2000)
    caplog.set_level("INFO", logger="absl")
    size = len(vocab_files.read_vocab(build_or_load_vocab(DataSpec.from_config(config))))
    assert size < 1800
    assert f"The vocabulary has {size} tokens, fewer than vocab_size=2000" in caplog.text


def test_encode_returns_python_ints(sample_tokenizer):
    (row,) = sample_tokenizer.encode(["God"])
    assert row and all(type(i) is int for i in row)


# Text that BERT's normaliser treats specially: accents, punctuation and symbols, CJK, control
# and format characters, unusual whitespace, final sigma, words over 100 characters.
HARD_TEXTS = [
    "Café naïve façade — Ångström, Øre; São Paulo’s crème brûlée!",
    "İstanbul ΟΔΟΣ Straße ǅemal ﬁne ½ ³ ① ｆｕｌｌｗｉｄｔｈ",
    "東京タワーと北京烤鸭, 한국어 텍스트, 𠀋𡈽 and 豈更",
    "tab\there, nbsp\u00a0here, ideographic\u3000space, line\u2028sep, zero\u200bwidth",
    "ogham\u1680a en\u2002b hair\u200ac narrow\u202fd math\u205fe para\u2029f",
    "ctrl\x00a\x07b\x1fc\x7fd\x91e\x9ff soft\u00adhyphen, bom\ufeffmark, repl\ufffdchar",
    "Iraq\u00e2\u0080\u0099s \u00c2\u0091direct-to-video' \u00c2\u009170s",
    "«quotes» „low“ ‹single› ¿qué? ¡sí! #hash $5 @at 50% a&b <tag> x^y `tick` a|b ~t",
    "don't U.S.A. e-mail 3.14 1,000 ... -- (paren) [bracket] {brace}",
    "a" * 100 + " " + "b" * 101 + " " + "é" * 101,
    "",
    " \t\n ",
]


@pytest.mark.parametrize("lowercase", [True, False])
def test_ids_equal_hugging_face_bert_tokenization(sample_tokenizer, sample_sentences, lowercase):
    """The same ids as Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece (the Rust
    pipeline behind BertTokenizerFast), on corpus sentences and on hard cases."""
    from tokenizers import BertWordPieceTokenizer

    vocab_path = str(sample_tokenizer.vocab_path)
    reference = BertWordPieceTokenizer(vocab_path, lowercase=lowercase)
    ours = WordPieceTokenizer(vocab_path, lowercase=lowercase)
    texts = sample_sentences[:2000] + HARD_TEXTS
    expected = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    mismatches = [
        text for text, a, b in zip(texts, ours.encode(texts), expected, strict=True) if a != b
    ]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[:3]}"


def test_normalization_inside_dataset_matches_eager(sample_tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(HARD_TEXTS).batch(4)
    graph_ids = [
        row for batch in dataset.map(sample_tokenizer.tokenize_tf) for row in batch.to_list()
    ]
    assert graph_ids == sample_tokenizer.encode(HARD_TEXTS)
    normalized = tokenizer.normalize_tf(tf.constant(["Ὀδυσσεύς ΣΑΣ", "a\x00b\u00a0c 中文"]), True)
    assert [t.decode() for t in normalized.numpy()] == ["οδυσσευς σασ", "ab c  中  文 "]


@pytest.mark.parametrize(
    "text, lowercase, warned",
    [
        ("मैं कल दिल्ली गया था। वहाँ बहुत भीड़ थी। हिंदी में किताब।", True, True),
        ("ฉันไปตลาดกับแม่ ที่นี่มีผลไม้หลายชนิด", True, True),
        ("मैं कल दिल्ली गया था। वहाँ बहुत भीड़ थी। हिंदी में किताब।", False, False),
        ("Élan, café, naïve: Latin accents are what uncased models strip.", True, False),
        ("وصل القطار إلى القاهرة في الساعة الثامنة صباحا.", True, False),
        ("東京駅で電車を降りて、パン屋まで歩きました。", True, True),
        ("東京駅で電車を降りて、パン屋まで歩きました。", False, False),
        ("東京に住む。", True, False),  # kana without voicing marks
        ("Hà Nội là thủ đô của Việt Nam.", True, True),
        ("Această țară are munți și păduri frumoase.", True, False),  # Romanian: accents
    ],
)
def test_uncased_vocabulary_warns_when_it_strips_a_scripts_marks(
    tmp_path, caplog, text, lowercase, warned
):
    """BERT's uncased normaliser drops every Mn mark: Devanagari vowel signs and Thai tone marks
    are part of the spelling, so 'हिंदी' would become 'हिदी', and kana lose their voicing marks
    after NFD ('で' becomes 'て'), Vietnamese letters their tones ('Việt' becomes 'viet'); other
    Latin accents and Arabic (whose vowel marks are optional) are not warned about."""
    caplog.set_level("WARNING", logger="absl")
    tokenizer.train_wordpiece_vocab([text] * 3, 200, lowercase, tmp_path)
    assert ("--config.lowercase=False" in caplog.text) == warned
    if warned:
        from tokenizers.normalizers import BertNormalizer

        assert BertNormalizer(lowercase=True).normalize_str("हिंदी") == "हिदी"
        assert BertNormalizer(lowercase=True).normalize_str("でパ") == "てハ"
        script = {"駅": "Japanese kana", "Việt": "Vietnamese text"}
        script = next((v for k, v in script.items() if k in text), "Brahmic text")
        assert script in caplog.text
