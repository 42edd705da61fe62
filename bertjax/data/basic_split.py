"""BERT's basic split of text into words, in Python with character offsets, for the fine-tuning
readers that place labels in a text (`finetune.span_records`, `finetune.squad`): whitespace
separates words, and each punctuation mark and each CJK ideograph is a word of its own. It is
the split `tokenizer.WordPieceTokenizer` makes in TensorFlow (`tokenizer.split_words_tf`), so a
word's pieces are those its text gets there (but beside a symbol, which tagging keeps apart).
Before, these readers split with Python's `\\w` and `\\s`: combining marks (Hindi's vowel
signs, a decomposed accent) were cut off as words of their own, [UNK] or nothing, and control
characters (\\x0b, \\x1c) split words BERT joins.
"""

import functools
import re
import sys
import unicodedata

from bertjax.data.word_segmenter import CJK_CLASS, CJK_PATTERN

# BERT's whitespace: tab, newline, CR and Unicode White_Space but the control characters VT, FF
# and NEL, which it deletes (as tokenizer._WHITESPACE_CHARS).
SPACES = frozenset(" \t\n\r\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    map(chr, range(0x2000, 0x200B))
)
_SPACE_CLASS = "".join(re.escape(char) for char in sorted(SPACES))
# ASCII punctuation, which includes symbols such as $ + < = > ^ ` | ~ (as BERT's).
_ASCII_PUNCTUATION = "!-/:-@\\[-`{-~"


def splits_words(char: str) -> bool:
    """Does `char` end a word in BERT's split (whitespace, punctuation, a CJK ideograph)?"""
    return (
        char in SPACES
        or (char < "\x80" and not char.isalnum() and char.isprintable())
        or unicodedata.category(char).startswith("P")
        or bool(CJK_PATTERN.match(char))
    )


@functools.cache
def _category_class(prefix: str) -> str:
    """Every code point past ASCII whose Unicode category starts with `prefix`, as ranges for
    [...] (built once: 1.1M code points, ~0.3 s)."""
    ranges: list[list[int]] = []
    for code in range(0x80, sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith(prefix):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(
        re.escape(chr(low)) + ("" if low == high else "-" + re.escape(chr(high)))
        for low, high in ranges
    )


@functools.cache
def _word_pattern() -> re.Pattern:
    """A CJK ideograph, a punctuation mark or a symbol alone, else a run up to whitespace or
    one of those."""
    alone = f"{CJK_CLASS}{_ASCII_PUNCTUATION}{_category_class('P')}{_category_class('S')}"
    return re.compile(f"[{alone}]|[^{_SPACE_CLASS}{alone}]+")


_WHITESPACE_WORD = re.compile(f"[{CJK_CLASS}]|[^{_SPACE_CLASS}{CJK_CLASS}]+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """(character start, end exclusive) of each word of `text` in BERT's split (runs between
    whitespace, each punctuation mark and each CJK ideograph alone), and each symbol past ASCII
    (€, ©, an emoji) alone too: BERT keeps "Intel🙂" one word, [UNK] whole where the
    vocabulary lacks the emoji, and a span ending before it could not end there."""
    return [match.span() for match in _word_pattern().finditer(text)]


def whitespace_word_spans(text: str) -> list[tuple[int, int]]:
    """(character start, end exclusive) of each run between BERT's whitespace, each CJK
    ideograph alone: run_squad's document words (punctuation stays inside, the tokenizer splits
    it off)."""
    return [match.span() for match in _WHITESPACE_WORD.finditer(text)]
