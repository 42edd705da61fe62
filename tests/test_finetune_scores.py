"""Tests for bertjax/finetune/scores.py and cmrc_scores.py: hand-computed classification,
regression, chunk, SQuAD and CMRC 2018 scores."""

import numpy as np
import pytest

from bertjax.finetune import cmrc_scores, scores, squad
from bertjax.finetune.scores import regression_scores


def test_accuracy():
    # Positions 0 and 2 right: 2/4.
    assert scores.accuracy([1, 0, 2, 2], [1, 1, 2, 0]) == 0.5
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        scores.accuracy([1, 0, 2], [1, 0])
    with pytest.raises(ValueError, match="no labels"):
        scores.accuracy([], [])


def test_macro_f1():
    # class 0: tp 1, fp 1, fn 0 -> P 1/2, R 1 -> F1 2/3
    # class 1: tp 1, fp 0, fn 2 -> P 1, R 1/3 -> F1 1/2
    # class 2: tp 0, fp 1, fn 0 -> F1 0
    # class 3: never predicted nor labelled -> skipped.  Mean (2/3 + 1/2 + 0) / 3 = 7/18.
    assert scores.macro_f1([0, 0, 1, 2], [0, 1, 1, 1], num_classes=4) == pytest.approx(7 / 18)
    # Class 1 labelled but never predicted scores 0: (2/3 + 0) / 2.
    assert scores.macro_f1([0, 0], [0, 1], num_classes=2) == pytest.approx(1 / 3)
    assert scores.classification_scores([0, 0], [0, 1], num_classes=2) == {
        "accuracy": 0.5,
        "macro_f1": pytest.approx(1 / 3),
    }
    with pytest.raises(ValueError, match="outside 0..1"):
        scores.macro_f1([0, 2], [0, 1], num_classes=2)


def test_multilabel_scores():
    predicted = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    actual = [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    # label 0: tp 1, fp 1 -> F1 2/3; label 1: tp 1 -> F1 1; label 2: fn 1 -> F1 0; label 3:
    # never predicted nor true -> left out. Micro: tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3.
    # Exact match: examples 0 and 2 (an empty set predicted for an empty set is right).
    assert scores.multilabel_scores(predicted, actual) == pytest.approx(
        {
            "micro_f1": 2 / 3,
            "micro_precision": 2 / 3,
            "micro_recall": 2 / 3,
            "macro_f1": (2 / 3 + 1 + 0) / 3,
            "exact_match": 2 / 3,
        }  # fmt: skip
    )
    # Multi-hot floats (the encoded labels) score as 1/0; nothing predicted: P 0, not 0/0.
    nothing = scores.multilabel_scores(np.zeros((2, 3), np.int32), np.eye(2, 3))
    assert nothing == {"micro_f1": 0.0, "micro_precision": 0.0, "micro_recall": 0.0,
                       "macro_f1": 0.0, "exact_match": 0.0}  # fmt: skip
    with pytest.raises(ValueError, match=r"predictions \(2, 3\) for labels \(2, 2\)"):
        scores.multilabel_scores(np.zeros((2, 3)), np.zeros((2, 2)))
    # With the label names, each label's F1 as well; "d" was never predicted nor true: none.
    named = scores.multilabel_scores(predicted, actual, ["a", "b", "c", "d"])
    assert {k: v for k, v in named.items() if k.startswith("f1/")} == pytest.approx(
        {"f1/a": 2 / 3, "f1/b": 1.0, "f1/c": 0.0}
    )
    assert named["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="3 label names for 4 labels"):
        scores.multilabel_scores(predicted, actual, ["a", "b", "c"])


def test_bio_chunks_conlleval_rules():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-PER", "B-ORG", "I-ORG"]
    # A stray I- starts a chunk (at the start, after O, after another type); B- always does.
    assert scores.bio_chunks(tags) == {
        ("PER", 0, 1),
        ("LOC", 3, 3),
        ("LOC", 4, 5),
        ("PER", 6, 6),
        ("ORG", 7, 8),
    }
    assert scores.bio_chunks(["O", "O"]) == set()
    assert scores.bio_chunks([]) == set()
    assert scores.bio_chunks(["B-MISC-X", "I-MISC-X"]) == {("MISC-X", 0, 1)}


def test_bioes_bmes_bilou_and_plain_tags_chunk_as_seqeval_s_default_mode():
    """seqeval's end_of_chunk / start_of_chunk (default mode) by hand: E- and S- end their
    chunk, S- is one token; BMES's M- is I-, BILOU's L- is E- and U- is S-. Tags of no scheme
    (part-of-speech tags) are one-token chunks; bare prefixes (segmentation) chunks without a
    type. Before, any of these stopped fine-tuning at its first evaluation (ValueError)."""
    bioes = ["B-PER", "I-PER", "E-PER", "S-LOC", "O", "I-ORG", "E-ORG", "E-ORG", "S-PER", "I-PER"]
    expected = {("PER", 0, 2), ("LOC", 3, 3), ("ORG", 5, 6), ("ORG", 7, 7), ("PER", 8, 8),
                ("PER", 9, 9)}  # fmt: skip
    assert scores.bio_chunks(bioes) == expected
    bmes = [t.replace("I-", "M-") for t in bioes]
    bilou = [t.replace("E-", "L-").replace("S-", "U-") for t in bioes]
    assert scores.bio_chunks(bmes) == scores.bio_chunks(bilou) == expected
    # Chinese word segmentation, BMES without types: 他 | 来到 | 北京大学
    assert scores.bio_chunks(["S", "B", "E", "B", "M", "M", "E"]) == {
        ("", 0, 0), ("", 1, 2), ("", 3, 6)}  # fmt: skip
    assert scores.bio_chunks(["NOUN", "VERB", "VERB", "O"]) == {
        ("NOUN", 0, 0), ("VERB", 1, 1), ("VERB", 2, 2)}  # fmt: skip
    # Part-of-speech tags: chunk F1 is token accuracy, each tag's F1 its own.
    true, pred = [["NOUN", "VERB", "DET", "NOUN"]], [["NOUN", "NOUN", "DET", "NOUN"]]
    assert scores.chunk_scores(true, pred) == pytest.approx({
        "precision": 0.75, "recall": 0.75, "f1": 0.75, "accuracy": 0.75, "f1/DET": 1.0,
        "f1/NOUN": 0.8, "f1/VERB": 0.0})  # fmt: skip
    segmented = scores.chunk_scores([["S", "B", "E"]], [["B", "E", "S"]])
    assert segmented == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.0}


def test_chunk_scores_two_sentences():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "B-ORG", "I-ORG", "O"]]
    # True chunks: (PER 0-1) (LOC 3) | (ORG 1-3)                       -> 3
    # Predicted:   (PER 0-1) right, (ORG 3) wrong type | (ORG 0) stray I-, (ORG 1-2) wrong end -> 4
    # P = 1/4, R = 1/3, F1 = 2PR / (P + R) = (1/6) / (7/12) = 2/7.
    # Tags right: 3 of 4 in sentence 0, 2 of 4 in sentence 1 -> 5/8.
    assert scores.chunk_scores(true, pred) == {
        "precision": 0.25,
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(2 / 7),
        "accuracy": 0.625,
        # per type: PER 1 right of 1 and 1; LOC 0 of 1 true, none predicted; ORG 0 of 1 and 3
        "f1/LOC": 0.0,
        "f1/ORG": 0.0,
        "f1/PER": 1.0,
    }
    assert scores.chunk_scores(true, true) == {"precision": 1.0, "recall": 1.0, "f1": 1.0,
                                               "accuracy": 1.0, "f1/LOC": 1.0, "f1/ORG": 1.0,
                                               "f1/PER": 1.0}  # fmt: skip


def test_chunk_scores_without_chunks_and_errors():
    assert scores.chunk_scores([["O", "O"]], [["O", "O"]]) == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "accuracy": 1.0,
    }
    with pytest.raises(ValueError, match="sentence 1 has 2 true tags but 1 predicted"):
        scores.chunk_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="1 predicted sentences for 2 true ones"):
        scores.chunk_scores([["O"], ["O"]], [["O"]])


def test_normalize_answer():
    assert scores.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert scores.normalize_answer("an apple, a day") == "apple day"
    assert scores.normalize_answer("Theater in A.D. 1990.") == "theater in ad 1990"
    # Punctuation goes before articles: "the-end" becomes one word "theend".
    assert scores.normalize_answer("the-end of THE line") == "theend of line"


def test_exact_match_and_token_f1():
    assert scores.exact_match("The Broncos!", ["Denver", "broncos"]) == 1.0
    assert scores.exact_match("Denver Broncos", ["Broncos"]) == 0.0
    # "denver broncos team" vs "denver broncos": 2 shared, P 2/3, R 1 -> F1 = (4/3)/(5/3) = 4/5;
    # vs "broncos": 1 shared, P 1/3, R 1 -> 1/2.  Best: 4/5.
    assert scores.token_f1("the Denver Broncos team", ["Denver Broncos", "Broncos"]) == (
        pytest.approx(0.8)
    )
    # "a b b" loses its article: "b b" vs "b c" share one "b" (a repeat counts once per match),
    # P 1/2, R 1/2 -> 1/2.
    assert scores.token_f1("a b b", ["b c"]) == 0.5
    assert scores.token_f1("", ["Broncos"]) == 0.0


def test_squad_scores():
    answers = {"q1": ["Denver Broncos"], "q2": ["1990", "in 1990"], "q3": ["Dan Reeves"]}
    predictions = {"q1": "the Denver Broncos team", "q2": "1990.", "unasked": "x"}
    # EM: q1 0, q2 1, q3 missing 0 -> 1/3.  F1: q1 4/5, q2 1, q3 0 -> 1.8 / 3 = 0.6.
    result = scores.squad_scores(predictions, answers)
    assert result == {"exact_match": pytest.approx(1 / 3), "f1": pytest.approx(0.6)}
    with pytest.raises(ValueError, match="no answers"):
        scores.squad_scores({}, {})


def test_regression_scores():
    """Pearson and Spearman against their definitions (NumPy's correlation of the values and
    of their ranks), MSE by hand; a constant prediction scores 0 correlation, not NaN."""
    targets = np.array([0.5, 1.0, 2.5, 3.0, 4.5])
    predicted = np.array([1.0, 0.8, 2.0, 3.5, 5.0])
    scores = regression_scores(predicted, targets)
    assert scores["pearson"] == pytest.approx(np.corrcoef(predicted, targets)[0, 1])
    ranks = np.argsort(np.argsort(predicted)), np.argsort(np.argsort(targets))
    assert scores["spearman"] == pytest.approx(np.corrcoef(*ranks)[0, 1])
    assert scores["mse"] == pytest.approx(np.mean((predicted - targets) ** 2))
    assert regression_scores(-targets, targets)["spearman"] == pytest.approx(-1.0)
    constant = regression_scores(np.full(5, 2.5), targets)
    assert constant["pearson"] == constant["spearman"] == 0.0
    with pytest.raises(ValueError, match="4 predictions for 5 targets"):
        regression_scores(predicted[:4], targets)


def test_chinese_answers_are_scored_as_mlqa_scores_chinese():
    """MLQA's evaluation (mlqa_evaluation_v1.py, language "zh"): lowercase, drop ASCII and
    Unicode punctuation, no articles, each Chinese character a token. Before, a Chinese answer
    was one token: "1990" for "1990年" scored F1 0."""
    assert (
        scores.normalize_answer("1990年，Fresnel 透镜。", chinese=True) == "1990 年 fresnel 透 镜"
    )
    assert scores.normalize_answer("“The” 灯塔!", chinese=True) == "the 灯 塔"  # no article rule
    assert scores.exact_match("1990年。", ["1990年"]) == 1.0  # 。 is Unicode punctuation
    # "1990" vs "1990 年": 1 shared, P 1, R 1/2 -> 2/3.
    assert scores.token_f1("1990", ["1990年"]) == pytest.approx(2 / 3)
    # "建 于 1990 年" vs "1990 年": 2 shared, P 2/4, R 1 -> 2/3; vs "1990": P 1/4, R 1 -> 2/5.
    assert scores.token_f1("建于1990年", ["1990年", "1990"]) == pytest.approx(2 / 3)
    # A question is Chinese when an answer has a Chinese character; English ones are unchanged.
    assert scores.is_chinese_answer(["Fresnel", "菲涅耳透镜"]) and not scores.is_chinese_answer(
        ["a"]
    )
    assert scores.token_f1("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)


def test_cmrc_2018_scores_follow_its_evaluation_script():
    """cmrc2018_evaluate.py, by hand: Chinese characters and its special characters are segments
    of their own, other runs NLTK words; F1 from the longest common contiguous run of segments
    (not MLQA's bag), the special characters dropped; EM on the texts without them."""
    assert cmrc_scores.segments("1990年，iPhone 6s手机") == ["1990", "年", "，", "iphone", "6s",
                                                          "手", "机"]  # fmt: skip
    assert cmrc_scores.segments("《红楼梦》(1791)", True) == ["红", "楼", "梦", "(", "1791", ")"]
    gold = {
        "same": ["1990年"],
        "part": ["1990年"],  # "1990" vs 1990|年: run 1, P 1, R 1/2 -> 2/3
        "run": ["中国人民银行"],  # 中国银行: runs 中国 / 银行 of 2, P 2/4, R 2/6 -> 0.4
        "marks": ["红楼梦"],  # 《》 are special: dropped for EM and F1
        "ascii": ["1990"],  # ( ) are not special: segments of their own, P 1/3, R 1 -> 0.5
        "best": ["北京", "北京市"],  # the best answer: EM 1 with 北京市
        "missing": ["上海"],  # no prediction: 0
    }
    predictions = {"same": "1990年", "part": "1990", "run": "中国银行", "marks": "《红楼梦》",
                   "ascii": "(1990)", "best": "北京市"}  # fmt: skip
    per_question_f1 = [1, 2 / 3, 0.4, 1, 0.5, 1, 0]
    per_question_em = [1, 0, 0, 1, 0, 1, 0]
    scored = cmrc_scores.cmrc_scores(predictions, gold)
    assert scored["cmrc_f1"] == pytest.approx(np.mean(per_question_f1))
    assert scored["cmrc_exact_match"] == pytest.approx(np.mean(per_question_em))
    # MLQA's Chinese F1 counts the bag: 中国银行 against 中国人民银行 is 0.8, not 0.4.
    assert scores.token_f1("中国银行", ["中国人民银行"]) == pytest.approx(0.8)


def test_squad2_questions_without_answers_score_an_empty_prediction():
    """evaluate-v2.0.py: a question without answers has the gold answer ""; EM and F1 are 1
    for a prediction that normalises to "" (e.g. "the ."), else 0."""
    answers = {"q1": ["Denver Broncos"], "n1": [], "n2": [], "n3": []}
    predictions = {"q1": "", "n1": "", "n2": "the .", "n3": "Broncos"}
    # EM and F1: q1 0, n1 1, n2 1, n3 0 -> 2/4.
    assert scores.squad_scores(predictions, answers) == {"exact_match": 0.5, "f1": 0.5}


def test_squad2_scores_split_answerable_and_find_the_best_null_threshold():
    """Hand-computed: q1's span is right, q2's half right (F1 2/3), n1 and n2 have no answer
    (n1's span is text, n2 has no valid span). At threshold 0 q2 and n1 get "": F1 3/4. Giving
    spans in rising diff order: q1 (-2) 3, q2 (0.5) 3 2/3, n1 (1.0) 2 2/3: the best is 0.5."""
    answers = {"q1": ["red car"], "q2": ["blue"], "n1": [], "n2": []}
    spans = {"q1": "red car", "q2": "blue sky", "n1": "a thing", "n2": ""}
    diffs = {"q1": -2.0, "q2": 0.5, "n1": 1.0, "n2": float("inf")}
    at_zero = {"q1": "red car", "q2": "", "n1": "", "n2": ""}
    result = scores.squad2_scores(at_zero, spans, diffs, answers)
    assert result == pytest.approx({
        "has_answer_exact_match": 0.5, "has_answer_f1": 0.5, "no_answer_accuracy": 1.0,
        "best_f1": (1 + 2 / 3 + 1 + 1) / 4, "best_f1_threshold": 0.5})  # fmt: skip
    at_best = squad.null_answered(spans, diffs, result["best_f1_threshold"])
    assert scores.squad_scores(at_best, answers)["f1"] == pytest.approx(result["best_f1"])
    # Tied diffs move together: no threshold between q2 and n1.
    tied = scores.squad2_scores(at_zero, spans, diffs | {"n1": 0.5}, answers)
    assert (tied["best_f1"], tied["best_f1_threshold"]) == (0.75, -2.0)
    # Where "" for every question scores best, the threshold lies below every diff.
    unanswerable = {"n1": [], "n3": []}
    alone = scores.squad2_scores({}, {"n1": "x", "n3": "y"}, {"n1": 1.0, "n3": 3.0}, unanswerable)
    assert alone == {"no_answer_accuracy": 0.0, "best_f1": 1.0, "best_f1_threshold": 0.0}


def test_squad2_best_f1_is_reached_by_its_threshold_where_diffs_tie():
    """a2 (right span) and n1 (unanswerable, a span of text) tie at 0.5: no threshold answers
    a2 without n1, so the best is "" for both (1/3, below every diff), not the 2/3 that giving
    a2 alone would score; the reported threshold reproduces the reported F1."""
    answers = {"q1": ["red car"], "a2": ["blue"], "n1": []}
    spans = {"q1": "green", "a2": "blue", "n1": "some text"}
    diffs = {"q1": -1.0, "a2": 0.5, "n1": 0.5}
    result = scores.squad2_scores({}, spans, diffs, answers)
    assert (result["best_f1"], result["best_f1_threshold"]) == (pytest.approx(1 / 3), -2.0)
    at_best = squad.null_answered(spans, diffs, result["best_f1_threshold"])
    assert scores.squad_scores(at_best, answers)["f1"] == pytest.approx(result["best_f1"])


def test_multiple_choice_never_picks_a_padding_choice():
    """A batch mixing 2- and 3-choice examples pads the first: its third score is no choice."""
    import types

    from bertjax.finetune import inference

    encoded = types.SimpleNamespace(num_choices=[2, 3])
    logits = [np.array([0.0, 1.0, 9.0]), np.array([0.0, 1.0, 9.0])]
    assert inference.decode("multiple_choice", [], [], encoded, None, logits, None) == [1, 2]


def test_results_are_the_median_and_range_over_seeds():
    """An outlier seed moves a mean, not the median: the headline number of results.md."""
    import types

    from bertjax.finetune import results

    task = types.SimpleNamespace(kind="classification", eval_split="test", train=[1] * 8,
                                 eval=[1] * 4, dev=[])  # fmt: skip
    per_seed = {s: {"accuracy": a, "train_seconds": 10.0 + s} for s, a in
                enumerate([0.1, 0.8, 0.9])}  # fmt: skip
    summary = results.summarize("mr", "/runs/base", 1000, False, task, per_seed, _Config())
    assert summary["aggregate"]["accuracy"] == {"median": 0.8, "min": 0.1, "max": 0.9}
    assert results.results_table([summary])[-1] == (
        "| mr (test) | base step 1000 | 3 | accuracy | 80.0 | 10.0 | 90.0 | 11 |"
    )


class _Config:
    def to_json_best_effort(self):
        return "{}"
