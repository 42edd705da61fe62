"""CMRC 2018's own answer scores (its `cmrc2018_evaluate.py`, with which CMRC 2018 and DRCD
results are reported: the CMRC papers, Chinese-BERT-wwm, MacBERT), beside the MLQA-style Chinese
EM and F1 of `scores`.

An answer is split into segments: each Chinese character (U+4E00-U+9FA5) and each of the
script's special characters on its own, every other run of characters into words by NLTK's word
tokenizer. F1 comes from the longest common *contiguous* run of segments of the prediction and
an answer, after the special characters are dropped; exact match compares the texts lowercased,
stripped and without the special characters. Both take the best over a question's answers.

The script tokenizes runs with `nltk.word_tokenize`, which first splits sentences with the punkt
model, a download; here the same word tokenizer runs without that split (`NLTKWordTokenizer`),
which differs only where a run holds a sentence end followed by more words ("b. c": "b." stays
one segment here, "b", "." there).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping, Sequence

# The script's special characters (its list also has "……", which a single character never equals).
_SPECIAL = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CHINESE = re.compile(r"[\u4e00-\u9fa5]")


def cmrc_scores(
    predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """`cmrc_exact_match` and `cmrc_f1` (fractions, the script's percentages / 100) over every
    question of `answers` (each with at least one answer); a missing prediction scores 0."""
    exact = f1 = 0.0
    for question_id, truths in answers.items():
        if question_id in predictions:
            exact += max(_exact(predictions[question_id], t) for t in truths)
            f1 += max(_f1(predictions[question_id], t) for t in truths)
    return {"cmrc_exact_match": exact / len(answers), "cmrc_f1": f1 / len(answers)}


def segments(text: str, drop_special: bool = False) -> list[str]:
    """The script's `mixed_segmentation` of `text`."""
    out, run = [], ""
    for char in text.lower().strip():
        if drop_special and char in _SPECIAL:
            continue
        if _CHINESE.match(char) or char in _SPECIAL:
            out += _words(run)
            out.append(char)
            run = ""
        else:
            run += char
    return out + _words(run)


def _words(run: str) -> list[str]:
    return _word_tokenizer().tokenize(run) if run else []


@functools.cache
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer  # imported when a Chinese answer is scored

    return NLTKWordTokenizer()


def _exact(prediction: str, truth: str) -> float:
    return float(_without_special(prediction) == _without_special(truth))


def _without_special(text: str) -> str:
    return "".join(char for char in text.lower().strip() if char not in _SPECIAL)


def _f1(prediction: str, truth: str) -> float:
    predicted, true = segments(prediction, True), segments(truth, True)
    common = _longest_common_run(predicted, true)
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """The length of the longest run of segments both `a` and `b` hold, contiguously (difflib's
    longest matching block; autojunk off, so frequent segments are not skipped)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match().size
