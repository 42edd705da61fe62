"""Japanese whole-word masking: `word_segmenter` with fugashi (MeCab, UniDic-lite), the kana
words WordPiece's `encode_with_char_starts` places, SentencePiece's word starts, and masking
whole MeCab words end to end. The text is written for these tests."""

import json

import numpy as np
import pytest

from bertjax import config as base_config
from bertjax.data import masking, pipeline, tokenizer, word_segmenter
from bertjax.data.lookups import SPECIAL_TOKENS
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from tests.data.test_word_segmenter import _masked_batch, _word_ids

pytest.importorskip("fugashi")
pytest.importorskip("unidic_lite")

SEGMENTER = "fugashi"
DOCUMENTS = [
    "東京都に住んでいる留学生が、新しいスマートフォンを買いました。店員はとても親切でした。"
    "彼は毎朝駅まで歩いて、電車で大学に通っています。",
    "今日は朝から雨が降っている。傘を忘れたので、コンビニで買うことにした。"
    "午後には晴れるという天気予報を信じたのが間違いだった。",
    "図書館で日本の歴史についての本を三冊借りた。読み終わったら、感想を友達に話すつもりだ。"
    "来週の授業では江戸時代の文化を発表する予定です。",
    "私の祖母は小さな村で野菜を育てています。夏になると、トマトやきゅうりがたくさん取れます。"
    "収穫した野菜は近所の人々にも配ります。",
    "新しいプログラムを書く前に、設計をよく考えることが大切だ。テストを先に書くと、"
    "間違いを早く見つけられる。チームで話し合う時間も必要である。",
    "週末は家族と一緒に海へ出かけました。子どもたちは砂浜で遊び、私は本を読みました。"
    "帰りの車の中で、みんな静かに眠っていました。",
]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    """A WordPiece vocabulary of the special tokens, every character and its ## form."""
    directory = tmp_path_factory.mktemp("ja-vocab")
    characters = sorted(set("".join(DOCUMENTS)) - {" "})
    tokens = [*SPECIAL_TOKENS, *characters, *(f"##{c}" for c in characters)]
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def wordpiece(vocab_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_dir / "vocab.txt", lowercase=False)


@pytest.mark.parametrize(
    "text",
    ["  今日は　いい天気ですね。 Tシャツを買った\t人々は  ", "ｶﾀｶﾅとABC123、ｸﾞｰ。", "", " "],
)
def test_cut_gives_back_the_text(text):
    words = word_segmenter.cut(text, SEGMENTER)
    assert "".join(words) == text
    assert all(words)


def test_words_mecab_changed_are_not_trusted(monkeypatch):
    """Should MeCab's surfaces not spell the text, every character is a word: nothing joined."""

    class Word:
        white_space, surface = "", "東京"

    monkeypatch.setattr(word_segmenter, "_mecab", lambda: lambda text: [Word()])
    assert word_segmenter.cut("東亰", SEGMENTER) == ["東", "亰"]
    assert not word_segmenter.inside_word("東亰", SEGMENTER).any()


def test_inside_word_joins_kanji_and_kana_of_a_mecab_word():
    text = "東京都に住んでいる留学生が、新しいTシャツを買いました。"
    # MeCab (UniDic-lite): 東京 都 に 住ん で いる 留学 生 が 、 新しい T シャツ を 買い まし た 。
    inside = word_segmenter.inside_word(text, SEGMENTER)
    assert "".join(c for c, i in zip(text, inside, strict=True) if i) == "京んる学しいャツいし"
    # Latin letters stay as WordPiece makes them: "シ" follows "T" and is not joined to it;
    # Chinese segmentation joins ideographs only.
    assert not inside[text.index("シ")] and not inside[text.index("T")]
    chinese = word_segmenter.inside_word(text, "rjieba")
    assert not chinese[text.index("ん")]


def test_placed_word_starts_are_the_ideographs_and_bounded_kana_runs():
    text = "人々は Tシャツを着て、「はい」と言った。"
    # BERT's words: 人 | 々は | Tシャツを (not placed: it starts with T) | 着 | て | 、 | 「 |
    # はい | 」 | と | 言 | った | 。
    assert tokenizer.placed_word_starts(text) == [0, 1, 9, 10, 13, 16, 17, 18]
    assert tokenizer.placed_word_starts("あ" * 101) == []  # past WordPiece's 100 characters


@pytest.mark.parametrize("lowercase", [False, True])
def test_wordpiece_char_starts_place_each_kana_word(vocab_dir, lowercase):
    texts = ["人々は Tシャツを着て、「はい」と言った。", "", "Hello", "住んでいる"]
    tok = WordPieceTokenizer(vocab_dir / "vocab.txt", lowercase=lowercase)
    ids, starts = tok.encode_with_char_starts(texts)
    assert ids == tok.encode(texts)
    for text, row_ids, row_starts in zip(texts, ids, starts, strict=True):
        placed = [s for s in row_starts if s >= 0]
        assert placed == tokenizer.placed_word_starts(text)
        for token_id, start in zip(row_ids, row_starts, strict=True):
            token = tok.vocab[token_id]
            if start >= 0 and token != "[UNK]":  # uncased: "で" normalises to "て", absent
                assert not token.startswith("##") and text[start] == token[0], (token, start)


def test_encode_marks_tokens_inside_mecab_words(wordpiece):
    text = DOCUMENTS[0]
    (marked,) = word_segmenter.encode(wordpiece, [text], SEGMENTER)
    plain, starts = word_segmenter.split_inside_word(np.array(marked))
    assert plain.tolist() == wordpiece.encode([text])[0]
    tokens = [wordpiece.vocab[i] for i in plain]
    inside = {t for t, s in zip(tokens, starts, strict=True) if s == 0}
    assert {"京", "学", "ん", "員"} <= inside  # 東京, 留学, 住ん, 店員
    assert not any(t.startswith("##") for t in inside)  # continuations are inside already


def test_whole_word_masking_masks_whole_mecab_words(tmp_path, vocab_dir):
    path = tmp_path / "ja.jsonl"
    lines = [json.dumps({"text": d}, ensure_ascii=False) for d in DOCUMENTS * 4]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = base_config.defaults()
    config.update(
        corpus=str(path), vocab_dir=str(vocab_dir), lowercase=False, max_seq_length=64,
        max_predictions_per_seq=12, dupe_factor=4, word_segmenter=SEGMENTER,
        masking="whole_word", packing=True,
    )  # fmt: skip
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    arrays = data.source.arrays
    count = len(arrays["input_ids"])
    batch = _masked_batch(data, masking.MaskingSpec.from_config(config), count)
    order = {arrays["input_ids"][i].tobytes(): i for i in range(count)}
    special = np.array(data.tokenizer.special_ids)
    vocab = np.array(data.tokenizer.vocab)
    joined = kana_joined = masked_units = 0
    kana = word_segmenter.is_kana(np.array([ord(t[0]) for t in vocab], np.uint32))
    for row in range(count):
        weights = batch["masked_lm_weights"][row] == 1
        positions = batch["masked_lm_positions"][row][weights]
        original = batch["input_ids"][row].copy()
        original[positions] = batch["masked_lm_ids"][row][: len(positions)]
        index = order[original.tobytes()]
        starts = arrays["word_starts"][index : index + 1]
        table = np.array([not t.startswith("##") for t in vocab])[original][None]
        words = _word_ids(original[None], arrays["input_mask"][index][None],
                          starts & table, special)[0]  # fmt: skip
        selected = np.zeros(len(original), bool)
        selected[positions] = True
        chosen = np.unique(words[selected])
        np.testing.assert_array_equal(selected, np.isin(words, chosen) & (words >= 0))
        for word in chosen:
            unit = original[words == word]
            joined += len(unit) > 1 and not vocab[unit[1]].startswith("##")  # a MeCab join
            kana_joined += len(unit) > 1 and bool(kana[unit[1]])  # a word of kanji and kana
        masked_units += len(chosen)
    # Kanji compounds and kanji + kana words (住ん, 新しい) are masked as one unit.
    assert masked_units > 100 and joined / masked_units > 0.2, (joined, masked_units)
    assert kana_joined / masked_units > 0.05, (kana_joined, masked_units)


def test_sentencepiece_pieces_starting_with_kana_start_words(tmp_path):
    from bertjax.data import vocab

    path = tmp_path / "ja.jsonl"
    lines = [json.dumps({"text": d}, ensure_ascii=False) for d in DOCUMENTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab.run_vocab(str(path), kind="sentencepiece", size=200, out_dir=tmp_path / "spm")
    tok = vocab.load_tokenizer(tmp_path / "spm" / "vocab.txt", lowercase=False)
    table = dict(zip(tok.vocab, tok.word_start_table(), strict=True))
    kana = [piece for piece in table if piece[:1] in ("ま", "ス", "た", "し")]
    punctuation = [piece for piece in table if piece[:1] in ("、", "。")]
    assert len(kana) >= 4 and punctuation
    assert all(table[piece] for piece in kana) and not any(table[p] for p in punctuation)


def test_a_missing_package_or_an_unknown_segmenter_is_one_line(monkeypatch):
    with pytest.raises(UserError, match="'rjieba' \\(Chinese\\), 'fugashi' \\(Japanese\\)"):
        word_segmenter.check_segmenter("mecab")
    real_find_spec = word_segmenter.importlib.util.find_spec
    monkeypatch.setattr(
        word_segmenter.importlib.util,
        "find_spec",
        lambda name: None if name == "unidic_lite" else real_find_spec(name),
    )
    with pytest.raises(UserError) as error:
        word_segmenter.check_segmenter("fugashi", "--word_segmenter")
    assert str(error.value) == (
        "--word_segmenter=fugashi needs fugashi and unidic_lite: "
        "pip install fugashi==1.5.2 unidic-lite==1.0.8"
    )
