"""Chinese and Japanese words for whole-word and span masking, found by a word segmenter.

BERT's tokenizers see no Chinese or Japanese words: WordPiece makes every CJK ideograph a word of
its own (and a run of kana another), and a SentencePiece piece of unspaced text starts a word
only after a space. With ``--config.word_segmenter=rjieba`` (Chinese: jieba-rs, as
Chinese-BERT-wwm with LTP) or ``fugashi`` (Japanese: MeCab with the UniDic-lite dictionary, the
segmenter of Hugging Face's BertJapaneseTokenizer for Tohoku's whole-word-masking BERTs) each
sentence is also cut into words (both dictionaries ship in their wheels, nothing is downloaded),
and a token whose first character continues a segmenter word after another character of the
segmenter's script (rjieba: CJK ideographs; fugashi: ideographs and kana) is marked *inside a
word*. Masking then never starts a unit there, so all tokens of a chosen word are masked
together (one 80/10/10 choice per word, a label per token), as Cui et al. (2019) did.

Between tokenization and instance creation the mark travels inside the id (`INSIDE_WORD`, bit
30), so sentence pairing, truncation and packing carry it with its token unchanged;
`split_inside_word` takes it out into the per-token ``word_starts`` feature (0 inside a word).
Only characters of the segmenter's script following such characters are joined: a segmenter
word such as "T恤", "Tシャツ" or "2008年" keeps its Latin letters and digits as the words
WordPiece or SentencePiece already make of them.
"""

import functools
import importlib.util
import os
import re
from collections.abc import Sequence

import numpy as np

from bertjax.errors import UserError

SEGMENTERS = ("", "rjieba", "fugashi")  # "": no segmenter, the vocabulary alone decides
# The modules each imports and the pins that install them: rjieba is in requirements.txt;
# fugashi and its dictionary (a 47 MB download, Japanese only) in requirements-test.txt.
REQUIREMENTS = {
    "rjieba": {"rjieba": "rjieba==0.2.2"},
    "fugashi": {"fugashi": "fugashi==1.5.2", "unidic_lite": "unidic-lite==1.0.8"},
}
INSIDE_WORD = 1 << 30  # on a token id: the segmenter puts this token inside a word
# CJK ideographs, the blocks Hugging Face's BERT normaliser pads with spaces
# (BasicTokenizer._is_chinese_char), as inclusive code point ranges; `tokenizer` uses them too.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)  # for [...] in re
CJK_PATTERN = re.compile(f"[{CJK_CLASS}]")
# Japanese kana and the marks written with them, which BERT's tokenizers neither split nor treat
# as punctuation, so a run of them is one word: 々〆〇, hiragana (with the voicing marks and ゝゞ),
# katakana with ー and ヽヾ (not the punctuation ゠ and ・), its phonetic extensions, halfwidth
# katakana (not ･).
KANA_RANGES = (
    (0x3005, 0x3007),
    (0x3041, 0x309F),
    (0x30A1, 0x30FA),
    (0x30FC, 0x30FF),
    (0x31F0, 0x31FF),
    (0xFF66, 0xFF9F),
)

# The characters each segmenter joins into words: Chinese ideographs; Japanese kanji and kana.
JOINED_RANGES = {"rjieba": CJK_RANGES, "fugashi": CJK_RANGES + KANA_RANGES}


def check_segmenter(segmenter: str, flag: str = "--config.word_segmenter") -> None:
    """Raises the one-line UserError when `segmenter` is unknown or its package is missing."""
    if segmenter not in SEGMENTERS:
        raise UserError(
            f"{flag}={segmenter!r} is unknown; use 'rjieba' (Chinese), 'fugashi' (Japanese) or ''"
        )
    modules = REQUIREMENTS.get(segmenter, {})
    if any(importlib.util.find_spec(module) is None for module in modules):
        raise UserError(
            f"{flag}={segmenter} needs {' and '.join(modules)}: "
            f"pip install {' '.join(modules.values())}"
        )


def code_points(text: str) -> np.ndarray:
    """[len(text)] uint32: the code point of each character."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def _in_ranges(points: np.ndarray, ranges: tuple[tuple[int, int], ...]) -> np.ndarray:
    result = np.zeros(points.shape, bool)
    for low, high in ranges:
        result |= (points >= low) & (points <= high)
    return result


def is_cjk(points: np.ndarray) -> np.ndarray:
    """Elementwise: is each code point a CJK ideograph (`CJK_RANGES`)?"""
    return _in_ranges(points, CJK_RANGES)


def is_kana(points: np.ndarray) -> np.ndarray:
    """Elementwise: is each code point kana or a mark written with it (`KANA_RANGES`)?"""
    return _in_ranges(points, KANA_RANGES)


@functools.cache
def _mecab():
    """fugashi's MeCab with UniDic-lite named explicitly (a full UniDic, when installed, would
    otherwise be preferred and cut differently); one per process."""
    import fugashi
    import unidic_lite

    dicdir = unidic_lite.DICDIR
    return fugashi.Tagger(f'-d "{dicdir}" -r "{os.path.join(dicdir, "mecabrc")}"')


def _cut_japanese(text: str) -> list[str]:
    """MeCab's words of `text`, the whitespace before each joined to it (MeCab drops it)."""
    words = [word.white_space + word.surface for word in _mecab()(text)]
    joined = "".join(words)
    if not text.startswith(joined):  # MeCab changed the text: no word is trusted
        return list(text)
    return words + [text[len(joined) :]] if len(joined) < len(text) else words


def cut(text: str, segmenter: str) -> list[str]:
    """The words of `text` (concatenated, they are `text`)."""
    if segmenter == "fugashi":
        return _cut_japanese(text)
    if segmenter != "rjieba":
        raise ValueError(f"word_segmenter={segmenter!r} is not one of {SEGMENTERS[1:]}")
    import rjieba  # only runs that segment need it

    return rjieba.cut(text, True)  # HMM on: unknown words, e.g. names, found as words


def inside_word(text: str, segmenter: str) -> np.ndarray:
    """[len(text)] bool: characters the segmenter joins (`JOINED_RANGES`) that continue one of
    its words after another such character."""
    lengths = np.fromiter(map(len, cut(text, segmenter)), np.int64)
    word_start = np.zeros(len(text) + 1, bool)
    word_start[np.cumsum(lengths) - lengths] = True
    script = _in_ranges(code_points(text), JOINED_RANGES[segmenter])
    after_script = np.concatenate([[False], script[:-1]])
    return script & after_script & ~word_start[: len(text)]


def mark_inside_word(
    texts: Sequence[str],
    ids: list[list[int]],
    char_starts: list[list[int]],
    segmenter: str,
    unk_id: int,
) -> list[list[int]]:
    """`ids` with INSIDE_WORD set on each token whose first character (its index in the text in
    `char_starts`, -1 when unknown) is inside a segmenter word; [UNK] is never marked."""
    marked = []
    for text, row_ids, row_starts in zip(texts, ids, char_starts, strict=True):
        row_ids, starts = np.asarray(row_ids, np.int64), np.asarray(row_starts, np.int64)
        known = (starts >= 0) & (row_ids != unk_id)
        if not known.any():
            marked.append(row_ids.tolist())
            continue
        inside = np.zeros(len(starts), bool)
        inside[known] = inside_word(text, segmenter)[starts[known]]
        marked.append(np.where(inside, row_ids | INSIDE_WORD, row_ids).tolist())
    return marked


def encode(tokenizer, texts: Sequence[str], segmenter: str) -> list[list[int]]:
    """Token ids of each text (as `tokenizer.encode`), INSIDE_WORD set on the tokens the
    segmenter puts inside a word; `segmenter` "" gives plain ids."""
    if not segmenter:
        return tokenizer.encode(texts)
    ids, char_starts = tokenizer.encode_with_char_starts(texts)
    return mark_inside_word(texts, ids, char_starts, segmenter, tokenizer.unk_id)


def split_inside_word(input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marked ids [...] int32 -> (plain ids, word_starts: 0 inside a segmenter word, else 1)."""
    input_ids = np.asarray(input_ids, np.int32)
    inside = (input_ids & INSIDE_WORD) != 0
    return (input_ids & ~INSIDE_WORD).astype(np.int32), (~inside).astype(np.int32)
