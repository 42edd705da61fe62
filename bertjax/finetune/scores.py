"""Evaluation scores for fine-tuning, fractions in [0, 1] (never percent), correlations in
[-1, 1].

Classification accuracy and macro F1; multi-label micro/macro F1 and exact match; regression
Pearson and Spearman correlation and mean squared error; chunk precision/recall/F1 of BIO,
BIOES, BMES or BILOU tag sequences with the conlleval rules (seqeval's default mode; written
here because seqeval 1.2.2, its last release, of 2020, is an sdist whose metadata no longer
builds: `pip download seqeval==1.2.2` fails, "No module named 'vcs_versioning'"); the official
SQuAD v1.1 exact match and token F1, and for questions whose answers are Chinese (CMRC 2018,
DRCD) MLQA's (each Chinese character a token, every Unicode punctuation mark dropped).
"""

import collections
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# MLQA's Chinese: these characters are tokens of their own (its evaluation script's range).
_CHINESE = re.compile("[\u4e00-\u9fa5]")


def _label_arrays(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    """Both as flat int arrays; ValueError when their lengths differ or there is nothing."""
    predictions, labels = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not len(labels):
        raise ValueError("no labels to score")
    return predictions, labels


def accuracy(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions equal to their label."""
    predictions, labels = _label_arrays(predictions, labels)
    return float(np.mean(predictions == labels))


def macro_f1(
    predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, num_classes: int
) -> float:
    """Unweighted mean over classes 0..num_classes-1 of each class's F1 = 2PR / (P + R).

    A class absent from both predictions and labels is left out of the mean; a class that is
    predicted or labelled but never right scores 0.
    """
    predictions, labels = _label_arrays(predictions, labels)
    for name, values in (("predictions", predictions), ("labels", labels)):
        if np.any((values < 0) | (values >= num_classes)):
            raise ValueError(f"{name} hold classes outside 0..{num_classes - 1}")
    f1s = []
    for label in range(num_classes):
        predicted, actual = predictions == label, labels == label
        true_positives = int(np.sum(predicted & actual))
        errors = int(np.sum(predicted != actual))  # false positives + false negatives
        if true_positives + errors:
            # 2PR / (P + R) with P = tp / predicted and R = tp / actual, simplified.
            f1s.append(2 * true_positives / (2 * true_positives + errors))
    return float(np.mean(f1s))


def classification_scores(
    predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, num_classes: int
) -> dict[str, float]:
    return {
        "accuracy": accuracy(predictions, labels),
        "macro_f1": macro_f1(predictions, labels, num_classes),
    }


def multilabel_scores(
    predictions: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[Sequence[float]] | np.ndarray,
    names: Sequence[str] = (),
) -> dict[str, float]:
    """Scores of yes/no decisions per label, both [N, C] of 1/0: micro precision, recall and F1
    over all N x C decisions (2TP / (2TP + FP + FN); 0/0 gives 0), macro F1 (each label's F1,
    averaged over the labels that are predicted or true at least once, as `macro_f1`), and
    exact match: the fraction of examples whose predicted label set is exactly the true one
    (scikit-learn's subset accuracy). Given the C label `names`, also each such label's F1 as
    `f1/<name>` (a label neither predicted nor true has none)."""
    predicted = np.asarray(predictions).astype(bool)
    actual = np.asarray(labels).astype(bool)
    if predicted.shape != actual.shape or predicted.ndim != 2 or not len(actual):
        raise ValueError(f"predictions {predicted.shape} for labels {actual.shape}: need [N, C]")
    if len(names) and len(names) != actual.shape[1]:
        raise ValueError(f"{len(names)} label names for {actual.shape[1]} labels")
    true_positives = np.sum(predicted & actual, axis=0)  # per label
    errors = np.sum(predicted != actual, axis=0)  # false positives + false negatives
    seen = true_positives + errors > 0
    per_label_f1 = 2 * true_positives[seen] / (2 * true_positives[seen] + errors[seen])
    tp, num_predicted, num_true = int(true_positives.sum()), int(predicted.sum()), int(actual.sum())
    named = np.asarray(names, dtype=object)[seen] if len(names) else []
    return {
        "micro_f1": 2 * tp / (num_predicted + num_true) if seen.any() else 0.0,
        "micro_precision": tp / num_predicted if num_predicted else 0.0,
        "micro_recall": tp / num_true if num_true else 0.0,
        "macro_f1": float(np.mean(per_label_f1)) if seen.any() else 0.0,
        "exact_match": float(np.mean(np.all(predicted == actual, axis=1))),
    } | {f"f1/{name}": float(f1) for name, f1 in zip(named, per_label_f1, strict=False)}


def regression_scores(
    predictions: Sequence[float] | np.ndarray, targets: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """GLUE STS-B's scores: Pearson and Spearman correlation (scipy.stats), and the mean squared
    error. When the predictions or the targets are constant (a model that predicts one number
    everywhere) a correlation is undefined, scipy's NaN; it is reported as 0, no relation, so
    medians over seeds and the choice of an epoch stay defined."""
    predicted, actual = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if len(predicted) != len(actual) or not len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} targets")
    constant = np.ptp(predicted) == 0 or np.ptp(actual) == 0
    return {
        "pearson": 0.0 if constant else float(scipy.stats.pearsonr(predicted, actual)[0]),
        "spearman": 0.0 if constant else float(scipy.stats.spearmanr(predicted, actual)[0]),
        "mse": float(np.mean((predicted - actual) ** 2)),
    }


# Chunk-tag prefixes of BIO, BIOES, BMES (M: inside) and BILOU (L: last, U: unit), as BIOES's.
_PREFIXES = {"B": "B", "I": "I", "M": "I", "E": "E", "L": "E", "S": "S", "U": "S"}


def _split_tag(tag: str) -> tuple[str, str]:
    """(BIOES prefix, chunk type) of a tag: "O" -> ("O", ""), "B-PER" -> ("B", "PER"),
    "M-PER" -> ("I", "PER"), a bare prefix ("B": segmentation) -> ("B", ""); any other tag (a
    part-of-speech tag, "NOUN") is a chunk of one token -> ("S", "NOUN")."""
    if tag == "O":
        return "O", ""
    prefix, dash, chunk_type = tag.partition("-")
    if prefix in _PREFIXES and bool(dash) == bool(chunk_type):
        return _PREFIXES[prefix], chunk_type
    return "S", tag


def _chunk_ends(previous: str, prefix: str, previous_type: str, chunk_type: str) -> bool:
    """Whether a chunk ends before a tag of `prefix`, after one of `previous` (seqeval's
    end_of_chunk: its default mode, conlleval's rules with BIOES's E and S)."""
    if previous == "O":
        return False
    return previous in ("E", "S") or (prefix in ("B", "S", "O")) or previous_type != chunk_type


def _chunk_starts(previous: str, prefix: str, previous_type: str, chunk_type: str) -> bool:
    """Whether a chunk starts at a tag of `prefix` after one of `previous` (seqeval's
    start_of_chunk)."""
    if prefix == "O":
        return False
    return prefix in ("B", "S") or previous in ("E", "S", "O") or previous_type != chunk_type


def bio_chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Chunks (type, start, end inclusive) of one sentence's tags, by the conlleval rules as
    seqeval's default mode applies them to BIO, BIOES, BMES and BILOU tags: "B-X" (and "S-X")
    starts a chunk; "I-X" continues a chunk of type X, or starts one after "O", after a chunk
    of another type, after an "E-" or "S-" tag, or at the start of the sentence; "E-X" and
    "S-X" end theirs; "O" ends a chunk. Tags that are neither (part-of-speech tags) are chunks
    of one token each, so their F1 is per-token accuracy.
    """
    chunks = set()
    previous, previous_type, start = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, chunk_type = _split_tag(tag)
        if _chunk_ends(previous, prefix, previous_type, chunk_type):
            chunks.add((previous_type, start, position - 1))
        if _chunk_starts(previous, prefix, previous_type, chunk_type):
            start = position
        previous, previous_type = prefix, chunk_type
    return chunks


def chunk_scores(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Micro precision, recall and F1 over the chunks of all sentences (a predicted chunk is
    right when type, start and end all match), token-level tag accuracy, and each chunk type's
    F1 (`f1/<type>`, for the types true or predicted at least once: conlleval's per-type
    lines, seqeval's report). 0/0 gives 0."""
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(pred_tags)} predicted sentences for {len(true_tags)} true ones")
    true_types, pred_types, right_types = (collections.Counter() for _ in range(3))
    num_tokens = num_right_tags = 0
    for index, (true, pred) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(true) != len(pred):
            raise ValueError(
                f"sentence {index} has {len(true)} true tags but {len(pred)} predicted"
            )
        true_chunks, pred_chunks = bio_chunks(true), bio_chunks(pred)
        true_types.update(kind for kind, _, _ in true_chunks)
        pred_types.update(kind for kind, _, _ in pred_chunks)
        right_types.update(kind for kind, _, _ in true_chunks & pred_chunks)
        num_tokens += len(true)
        num_right_tags += sum(t == p for t, p in zip(true, pred, strict=True))
    num_true, num_predicted = true_types.total(), pred_types.total()
    num_correct, total = right_types.total(), num_true + num_predicted
    per_type = {
        f"f1/{kind}": 2 * right_types[kind] / (true_types[kind] + pred_types[kind])
        for kind in sorted(true_types | pred_types)
        if kind  # bare prefixes (segmentation's B, I): no type to name
    }  # 2 * correct / (true + predicted) = 2PR / (P + R)
    return {
        "precision": num_correct / num_predicted if num_predicted else 0.0,
        "recall": num_correct / num_true if num_true else 0.0,
        "f1": 2 * num_correct / total if total else 0.0,  # = 2PR / (P + R)
        "accuracy": num_right_tags / num_tokens if num_tokens else 0.0,
    } | per_type


def normalize_answer(text: str, chinese: bool = False) -> str:
    """SQuAD v1.1's normalisation: lowercase, drop ASCII punctuation, drop the words a/an/the,
    collapse whitespace (in that order, as the official evaluate-v1.1.py). `chinese`: MLQA's
    for Chinese (mlqa_evaluation_v1.py): lowercase, drop ASCII and Unicode punctuation (P*), no
    articles, each Chinese character a token of its own and the rest split on whitespace."""
    text = text.lower()
    if not chinese:
        text = "".join(char for char in text if char not in _PUNCTUATION)
        return " ".join(_ARTICLES.sub(" ", text).split())
    text = "".join(c for c in text if c not in _PUNCTUATION and not _is_unicode_punctuation(c))
    return " ".join(_CHINESE.sub(lambda match: f" {match.group()} ", text).split())


def _is_unicode_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def is_chinese_answer(ground_truths: Sequence[str]) -> bool:
    """Whether a question is scored as MLQA scores Chinese: one of its answers has a Chinese
    character (its prediction is normalised the same way, whatever it holds)."""
    return any(_CHINESE.search(truth) for truth in ground_truths)


def exact_match(prediction: str, ground_truths: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals some normalised ground truth, else 0.0."""
    chinese = is_chinese_answer(ground_truths)
    predicted = normalize_answer(prediction, chinese)
    return max(float(predicted == normalize_answer(t, chinese)) for t in ground_truths)


def _token_f1(prediction: str, ground_truth: str, chinese: bool) -> float:
    prediction_tokens = normalize_answer(prediction, chinese).split()
    truth_tokens = normalize_answer(ground_truth, chinese).split()
    num_same = sum(
        (collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)).values()
    )
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(prediction_tokens), num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, ground_truths: Sequence[str]) -> float:
    """Best over ground truths of the F1 of the normalised tokens' bag overlap."""
    chinese = is_chinese_answer(ground_truths)
    return max(_token_f1(prediction, truth, chinese) for truth in ground_truths)


def squad_scores(
    predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Mean exact match and F1 over every id of `answers`; a missing prediction scores 0. A
    question with no answers (SQuAD 2.0) scores 1 for both when its prediction normalises to
    "", else 0 (evaluate-v2.0.py's rule)."""
    if not answers:
        raise ValueError("no answers to score")
    exact, f1 = 0.0, 0.0
    for question_id, ground_truths in answers.items():
        if question_id in predictions and not ground_truths:
            unanswered = float(not normalize_answer(predictions[question_id]))
            exact, f1 = exact + unanswered, f1 + unanswered
        elif question_id in predictions:
            exact += exact_match(predictions[question_id], ground_truths)
            f1 += token_f1(predictions[question_id], ground_truths)
    return {"exact_match": exact / len(answers), "f1": f1 / len(answers)}


def squad2_scores(
    predictions: Mapping[str, str],
    spans: Mapping[str, str],
    null_diffs: Mapping[str, float],
    answers: Mapping[str, Sequence[str]],
) -> dict[str, float]:
    """SQuAD 2.0's scores beyond `squad_scores`' (evaluate-v2.0.py's, in fractions): exact match
    and F1 over the answerable questions (`has_answer_*`) and the fraction of unanswerable ones
    answered "" (`no_answer_accuracy`), each where there are such questions; and `best_f1`, the
    F1 of the best null threshold, with `best_f1_threshold`: `predictions` are the answers at
    the threshold decoded with, `spans` each question's best span and `null_diffs` its null
    score minus that span's (`squad.best_spans`). A question is answered "" where its diff is
    over the threshold; thresholds between tied diffs are not considered (evaluate-v2.0's
    find_best_thresh does), and where answering every question "" scores best the threshold
    is one below the lowest diff."""
    has = {q: a for q, a in answers.items() if a}
    result = {}
    if has:
        answered = squad_scores(predictions, has)
        result |= {"has_answer_exact_match": answered["exact_match"],
                   "has_answer_f1": answered["f1"]}  # fmt: skip
    if len(has) < len(answers):
        unanswerable = {q: a for q, a in answers.items() if not a}
        result["no_answer_accuracy"] = squad_scores(predictions, unanswerable)["f1"]
    # Start from "" for every question, then give the span to questions in rising diff order.
    total = float(len(answers) - len(has))
    best_total, best_threshold = total, None
    order = sorted((d, q) for q, d in null_diffs.items() if q in answers and np.isfinite(d))
    for position, (diff, question) in enumerate(order):
        if answers[question]:  # its span's F1 instead of 0 for ""
            total += token_f1(spans[question], answers[question])
        else:  # unanswerable: "" scored 1, its span scores 1 only if it normalises to ""
            total += float(not normalize_answer(spans[question])) - 1.0
        tied = position + 1 < len(order) and order[position + 1][0] == diff
        if not tied and total > best_total:
            best_total, best_threshold = total, diff
    if best_threshold is None:
        best_threshold = (order[0][0] if order else 0.0) - 1.0
    return result | {"best_f1": best_total / len(answers), "best_f1_threshold": best_threshold}
