"""What BERT's uncased normaliser takes from a script's spelling, for the warning vocabulary
training logs (`tokenizer.train_wordpiece_vocab`, `bertjax vocab`, extensions of an uncased model).

Uncased, the normaliser decomposes (NFD) and drops every nonspacing mark, as BERT's uncased models
do: accents of Latin text (é, ü), which those models accept, and marks that spell words in other
scripts, which this module counts.
"""

import collections
import re
import unicodedata
from collections.abc import Sequence

# Nonspacing marks (Mn) of the scripts U+0900-U+18AF (Indic, Sinhala, Thai, Lao, Tibetan,
# Myanmar, Khmer) spell vowels, tones and clusters; an uncased vocabulary strips every Mn mark
# ("हिंदी" -> "हिदी"): 16% of hand-written Hindi's characters, Thai 19%, Khmer 21%
# (tests/data/multilingual_sentences.json). Warned about from this share of a sample on.
_BRAHMIC_MARKS = re.compile(
    "["
    + "".join(chr(c) for c in range(0x900, 0x18B0) if unicodedata.category(chr(c)) == "Mn")
    + "]"
)
# Kana voiced by a mark (が, パ, ヴ: NFD gives the kana and U+3099/U+309A, which BERT's uncased
# normaliser strips, so "が" becomes "か"), and the marks themselves.
_VOICED_KANA = re.compile(
    "["
    + "".join(
        chr(c)
        for c in range(0x3041, 0x3100)
        if c in (0x3099, 0x309A)
        or {"3099", "309A"} & set(unicodedata.decomposition(chr(c)).split())
    )
    + "]"
)
# Letters Vietnamese writes and other Latin-script languages hardly do (ơ ư ĩ ũ and Latin
# Extended Additional's ạ ả ấ ... ỹ; not ă, Romanian's too): uncased strips their tone and vowel
# marks ("Việt" -> "viet"), which tell words apart (ma, má, mà, mả). Latin accents of other
# languages (é, ü) are stripped by uncased BERTs and not warned about.
_VIETNAMESE_LETTERS = re.compile("[\u0128\u0129\u0168\u0169\u01a0\u01a1\u01af\u01b0\u1ea0-\u1ef9]")
STRIPPED_MARKS_WARNING_SHARE = 1e-3


def stripped_marks_warning(
    texts: Sequence[str], counts: collections.Counter[str], casing_from: str = ""
) -> str | None:
    """A one-line warning when lowercasing `texts` (whose normalised `counts` are given) strips
    a share of their characters that spell words in their script; else None. `casing_from`:
    the uncased model whose casing the vocabulary keeps (an extension), named as the cause."""
    brahmic = sum(len(_BRAHMIC_MARKS.findall(text)) for text in texts)  # removed
    kana = sum(len(_VOICED_KANA.findall(text)) for text in texts)  # changed
    vietnamese = sum(len(_VIETNAMESE_LETTERS.findall(text)) for text in texts)  # changed
    share = (brahmic + kana + vietnamese) / max(brahmic + counts.total(), 1)
    if share < STRIPPED_MARKS_WARNING_SHARE:
        return None
    found = {
        "the vowel signs and other marks of its Devanagari, Thai, Khmer or other Brahmic text "
        "('हिंदी' becomes 'हिदी')": brahmic,
        "the voicing marks of its Japanese kana ('が' becomes 'か')": kana,
        "the tone marks of its Vietnamese text ('Việt' becomes 'viet')": vietnamese,
    }
    marks = " and ".join(what for what, count in found.items() if count)
    fix = (
        f"{casing_from} is uncased, so its tokenizer strips them too: extend a cased model"
        if casing_from
        else "train it cased: --config.lowercase=False (bertjax vocab: --nouncased)"
    )
    return (
        f"lowercase=True strips {share:.1%} of the vocabulary sample's characters: {marks}; {fix}"
    )
