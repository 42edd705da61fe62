"""bertjax/data/basic_split.py: the words the fine-tuning readers place labels on are the words
BERT's tokenizer splits, so a text's pieces are its words' pieces (symbols aside: tagging keeps
them apart), against Hugging Face's BertPreTokenizer (the Rust split behind BertTokenizerFast)
for the offsets."""

import pytest
from tokenizers import pre_tokenizers

from bertjax.data import basic_split
from bertjax.data.tokenizer import WordPieceTokenizer

TEXTS = [
    "Visit हिन्दी भाषा today",  # vowel signs and virama (Mn, Mc) inside a word
    "Cafe\u0301 Paris",  # a decomposed accent
    "Anna Smith moved to New York, 2019.",
    "«quotes» „low“ ¿qué? ¡sí! #hash $5 @at 50% a&b <tag> x^y `tick` a|b ~t",
    "tab\there nbsp\u00a0here ideographic\u3000space line\u2028sep",
    "مرحبا بالعالم، كيف حالك؟ שלום עולם",
    "สวัสดีครับ ภาษาไทย",
]
CONTROLS = ["play\x1cground", "foo\x0bbar", "foo\x0cbar", "unit\x1fseparated", "zero\u200bwidth"]


def _vocab(tmp_path) -> WordPieceTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "visit", "today", "ह", "##ि", "##न",
              "##द", "##ी", "cafe", "paris", "5", "##€", "£3", "play", "##ground", "foo", "##bar",
              "unit", "##se", "##par", "##ated", "zero", "##width", ",", "."]  # fmt: skip
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return WordPieceTokenizer(tmp_path / "vocab.txt", lowercase=True)


@pytest.mark.parametrize("text", TEXTS)
def test_word_spans_are_bert_pre_tokenizer_words(text):
    expected = [span for _, span in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)]
    assert basic_split.word_spans(text) == expected


def test_cjk_ideographs_are_words_of_their_own():
    text = "浙商银行abc，中文"
    assert [text[a:b] for a, b in basic_split.word_spans(text)] == [
        "浙", "商", "银", "行", "abc", "，", "中", "文"]  # fmt: skip
    assert [text[a:b] for a, b in basic_split.whitespace_word_spans(text)] == [
        "浙", "商", "银", "行", "abc，", "中", "文"]  # fmt: skip


def test_a_symbol_is_a_word_of_its_own_for_tagging():
    """BERT keeps "Intel🙂" one word ([UNK] whole in a vocabulary without the emoji): a span
    could not end before it. Each symbol past ASCII stands alone; marks stay in their word."""
    text = "Intel🙂 costs 5€ or £3, Acme© 20°C; हिन्दी"
    words = [text[a:b] for a, b in basic_split.word_spans(text)]
    assert words == ["Intel", "🙂", "costs", "5", "€", "or", "£", "3", ",", "Acme", "©", "20",
                     "°", "C", ";", "हिन्दी"]  # fmt: skip
    assert [text[a:b] for a, b in basic_split.whitespace_word_spans(text)][:3] == [
        "Intel🙂", "costs", "5€"]  # fmt: skip


@pytest.mark.parametrize("split", ["word_spans", "whitespace_word_spans"])
def test_a_text_s_pieces_are_its_words_pieces(tmp_path, split):
    """What tagging (span_records) and QA (squad) rely on: encoding word by word gives the ids of
    encoding the whole text. Python's \\w split marks and symbols off (`ह ि न [UNK] ...`), and
    \\s split words at VT, FF and \\x1c-\\x1f, which BERT deletes (`play ground`)."""
    tokenizer = _vocab(tmp_path)
    for text in TEXTS + CONTROLS + ["It costs 5€ or £3 at Acme© now"] * (split != "word_spans"):
        words = [text[a:b] for a, b in getattr(basic_split, split)(text)]
        by_word = [piece for pieces in tokenizer.encode(words) for piece in pieces]
        assert by_word == tokenizer.encode([text])[0], text
