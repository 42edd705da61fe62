"""Chinese words for whole-word and span masking, found by a word segmenter (Chinese-BERT-wwm).

BERT's tokenizers see no Chinese words: WordPiece makes every CJK ideograph a word of its own,
and a SentencePiece piece of unspaced Chinese starts a word only after a space. With
``--config.word_segmenter=rjieba`` each sentence is also cut into words by rjieba (jieba-rs; its
dictionary ships in the wheel, nothing is downloaded), and a token whose first character is a
CJK ideograph that continues a segmenter word after another ideograph is marked *inside a word*.
Masking then never starts a unit there, so all characters of a chosen word are masked together
(one 80/10/10 choice per word, a label per character), as Cui et al. (2019) did with LTP.

Between tokenization and instance creation the mark travels inside the id (`INSIDE_WORD`, bit
30), so sentence pairing, truncation and packing carry it with its token unchanged;
`split_inside_word` takes it out into the per-token ``word_starts`` feature (0 inside a word).
Only ideographs following ideographs are joined: a segmenter word such as "T恤" or "2008年" keeps
its Latin letters and digits as the words WordPiece or SentencePiece already make of them.
"""

import importlib.util
from collections.abc import Sequence

import numpy as np

from bertjax.errors import UserError

SEGMENTERS = ("", "rjieba")  # "": no segmenter, the vocabulary alone decides word starts
RJIEBA_PIN = "rjieba==0.2.2"  # as in requirements.txt
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


def check_segmenter(segmenter: str, flag: str = "--config.word_segmenter") -> None:
    """Raises the one-line UserError when `segmenter` is unknown or its package is missing."""
    if segmenter not in SEGMENTERS:
        raise UserError(f"{flag}={segmenter!r} is unknown; use 'rjieba' (Chinese) or ''")
    if segmenter == "rjieba" and importlib.util.find_spec("rjieba") is None:
        raise UserError(f"{flag}=rjieba needs the rjieba package: pip install {RJIEBA_PIN}")


def code_points(text: str) -> np.ndarray:
    """[len(text)] uint32: the code point of each character."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def is_cjk(points: np.ndarray) -> np.ndarray:
    """Elementwise: is each code point a CJK ideograph (`CJK_RANGES`)?"""
    result = np.zeros(points.shape, bool)
    for low, high in CJK_RANGES:
        result |= (points >= low) & (points <= high)
    return result


def cut(text: str, segmenter: str) -> list[str]:
    """The words of `text` (concatenated, they are `text`)."""
    if segmenter != "rjieba":
        raise ValueError(f"word_segmenter={segmenter!r} is not one of {SEGMENTERS[1:]}")
    import rjieba  # only runs that segment need it

    return rjieba.cut(text, True)  # HMM on: unknown words, e.g. names, found as words


def inside_word(text: str, segmenter: str) -> np.ndarray:
    """[len(text)] bool: CJK ideographs that continue a segmenter word after an ideograph."""
    lengths = np.fromiter(map(len, cut(text, segmenter)), np.int64)
    word_start = np.zeros(len(text) + 1, bool)
    word_start[np.cumsum(lengths) - lengths] = True
    cjk = is_cjk(code_points(text))
    after_cjk = np.concatenate([[False], cjk[:-1]])
    return cjk & after_cjk & ~word_start[: len(text)]


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
