"""Tests for bertjax/finetune/squad.py: reading, windowed features and span decoding."""

import csv
import json

import ml_collections
import numpy as np
import pytest

from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from bertjax.finetune import inference, squad, tasks
from bertjax.finetune.squad import QAExample

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the broncos won title in 1990 . dan reeves was their coach play ##ing football denver is "
    "popular when did win ? who what"
).split()
LONG_VOCAB = [f"x{i}" for i in range(20)]

CONTEXT_1 = "The Broncos won the title in 1990. Dan Reeves was their coach."
CONTEXT_2 = "Playing football in Denver is popular."
QUESTIONS = [  # (id, question, context, answers)
    ("q1", "When did the Broncos win the title?", CONTEXT_1, (("1990", 29), ("in 1990", 26))),
    ("q2", "Who was their coach?", CONTEXT_1, (("Dan Reeves", 35),)),
    ("q3", "What is popular in Denver?", CONTEXT_2, (("Playing football", 0),)),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> WordPieceTokenizer:
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(token + "\n" for token in VOCAB + LONG_VOCAB), encoding="utf-8")
    return WordPieceTokenizer(path, lowercase=True)


def _squad_json(questions=QUESTIONS) -> dict:
    paragraphs = {}
    for question_id, question, context, answers in questions:
        paragraph = paragraphs.setdefault(context, {"context": context, "qas": []})
        paragraph["qas"].append(
            {
                "id": question_id,
                "question": question,
                "answers": [{"text": text, "answer_start": start} for text, start in answers],
            }
        )
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": list(paragraphs.values())}]}


def _write_json(path, document) -> str:
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def _write_jsonl(path, questions=QUESTIONS) -> str:
    lines = [
        json.dumps(
            {
                "id": question_id,
                "title": "t",
                "question": question,
                "context": context,
                "answers": {
                    "text": [text for text, _ in answers],
                    "answer_start": [start for _, start in answers],
                },
            }
        )
        for question_id, question, context, answers in questions
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _tokens(tokenizer, ids) -> list[str]:
    return [tokenizer.vocab[i] for i in ids]


def _position(features, feature, tokenizer, token) -> int:
    """Position of the first `token` in the context window of `feature`."""
    window = features.segment_ids[feature] == 1
    return int(
        np.flatnonzero(window & (features.input_ids[feature] == tokenizer.vocab.index(token)))[0]
    )


def test_read_squad_json(tmp_path):
    examples = squad.read_squad(_write_json(tmp_path / "train.json", _squad_json()))
    assert examples == [QAExample(*question) for question in QUESTIONS]
    assert CONTEXT_1[29:33] == "1990" and CONTEXT_1[35:45] == "Dan Reeves"


def test_jsonl_reads_the_same_as_json(tmp_path):
    expected = squad.read_squad(_write_json(tmp_path / "train.json", _squad_json()))
    assert squad.read_squad(_write_jsonl(tmp_path / "train.jsonl")) == expected
    # Chosen by content too: JSON Lines under a .json name.
    assert squad.read_squad(_write_jsonl(tmp_path / "lines.json")) == expected


def test_questions_to_predict_on_may_be_a_table(tmp_path):
    """A CSV/TSV of id, question, context reads as the same questions without answers; one to
    train on is refused (its cells hold no answers with offsets)."""
    expected = [QAExample(q, question, context, ()) for q, question, context, _ in QUESTIONS]
    with open(tmp_path / "q.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [("id", "question", "context", "answers")]
            + [(q, question, context, "not read") for q, question, context, _ in QUESTIONS]
        )
    assert squad.read_squad(tmp_path / "q.csv", answers_required=False) == expected
    with pytest.raises(UserError, match="q.csv' is a CSV/TSV table, whose cells hold no answer"):
        squad.read_squad(tmp_path / "q.csv")


def test_bad_files_raise_one_line_user_errors(tmp_path):
    bad_json = _squad_json()
    del bad_json["data"][0]["paragraphs"][0]["qas"][1]["question"]
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json\n", encoding="utf-8")
    lines = _write_jsonl(tmp_path / "lines.jsonl")
    records = open(lines, encoding="utf-8").read().splitlines()
    records[1] = json.dumps({k: v for k, v in json.loads(records[1]).items() if k != "answers"})
    (tmp_path / "no_answers.jsonl").write_text("\n".join(records), encoding="utf-8")
    cases = [
        (tmp_path / "missing.json", "does not exist"),
        (garbage, "line 1 is not JSON"),
        (_write_json(tmp_path / "bad.json", bad_json), "question 2 has no field 'question'"),
        (tmp_path / "no_answers.jsonl", "line 2 has no field 'answers'"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as err:
            squad.read_squad(path)
        assert "\n" not in str(err.value)


def test_answers_not_in_context_are_skipped(tmp_path, caplog):
    moved = [
        ("q1", *QUESTIONS[0][1:3], (("1990", 28), ("in 1990", 26))),  # first start is off by one
        ("q2", *QUESTIONS[1][1:3], (("Dan Reeves", 0),)),  # no usable answer left
        QUESTIONS[2],
    ]
    examples = squad.read_squad(_write_json(tmp_path / "moved.json", _squad_json(moved)))
    assert [e.id for e in examples] == ["q1", "q3"]
    assert examples[0].answers == (("in 1990", 26),)
    assert "'answers not found at answer_start': 2" in caplog.text
    assert "'questions without a usable answer': 1" in caplog.text
    # Questions to answer (`bertjax predict`) are all kept: each gets a prediction line.
    to_answer = squad.read_squad(tmp_path / "moved.json", answers_required=False)
    assert [e.id for e in to_answer] == ["q1", "q2", "q3"] and to_answer[1].answers == ()
    nothing = [(*QUESTIONS[1][:3], (("Dan Reeves", 0),))]
    with pytest.raises(UserError, match=r"no usable question \(skipped .*answer_start': 1.*must "
                       "stand at its answer_start"):  # fmt: skip
        squad.read_squad(_write_json(tmp_path / "nothing.json", _squad_json(nothing)))


def test_features_label_the_answer_wordpieces(tokenizer):
    examples = [QAExample(*question) for question in QUESTIONS]
    features = squad.make_features(examples, tokenizer, max_seq_length=32, max_query_length=16)
    assert features.input_ids.shape == (3, 32) and features.input_ids.dtype == np.int32
    assert features.example_index.tolist() == [0, 1, 2]
    answers = [
        _tokens(tokenizer, ids[start : end + 1])
        for ids, start, end in zip(
            features.input_ids, features.start_positions, features.end_positions, strict=True
        )
    ]
    # "1990." is one word but two wordpieces; the label keeps only "1990".
    assert answers == [["1990"], ["dan", "reeves"], ["play", "##ing", "football"]]
    layout = "[CLS] who was their coach ? [SEP] the broncos won the title in 1990 . dan reeves "
    layout += "was their coach . [SEP]"
    length = len(layout.split())  # 22
    assert _tokens(tokenizer, features.input_ids[1]) == layout.split() + ["[PAD]"] * (32 - length)
    assert features.input_mask[1].tolist() == [1] * length + [0] * (32 - length)
    assert features.segment_ids[1].tolist() == [0] * 7 + [1] * 15 + [0] * 10
    # Words: The Broncos won the title in 1990. Dan Reeves was their coach.
    words = [0, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 11]
    assert features.token_to_word[1].tolist() == [-1] * 7 + words + [-1] * 11
    assert features.token_is_max_context[1].tolist() == [False] * 7 + [True] * 14 + [False] * 11


def test_long_context_windows(tokenizer):
    context = " ".join(f"x{i}" for i in range(20))
    example = QAExample("long", "who", context, (("x9 x10", context.index("x9")),))
    features = squad.make_features(
        [example], tokenizer, max_seq_length=10, doc_stride=3, max_query_length=4
    )
    # 10 - 1 question token - 3 = 6 context tokens a window, advancing by 3; the last reaches
    # the end: [0-5] [3-8] [6-11] [9-14] [12-17] [15-19].
    first_words = features.token_to_word[:, 3].tolist()
    assert first_words == [0, 3, 6, 9, 12, 15]
    assert features.input_mask.sum(axis=1).tolist() == [10, 10, 10, 10, 10, 9]
    # Tokens 9-10 sit wholly in windows [6-11] (positions 3+3, 3+4) and [9-14] (3+0, 3+1).
    assert features.start_positions.tolist() == [0, 0, 6, 3, 0, 0]
    assert features.end_positions.tolist() == [0, 0, 7, 4, 0, 0]
    # Best window per token: most of min(left, right) context, + 0.01 * window length; ties
    # go to the earlier window (token 4: 1 vs 1), token 16: 1 + 0.06 in [12-17] beats
    # 1 + 0.05 in the shorter [15-19].
    owner = np.full(20, -1)
    for feature, word in zip(*np.nonzero(features.token_is_max_context), strict=True):
        assert owner[features.token_to_word[feature, word]] == -1  # exactly one window
        owner[features.token_to_word[feature, word]] = feature
    assert owner.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    # An answer a window holds all but its last token of is not in it ([3-8] ends at x8 of
    # "x8 x9": [CLS], not an end on its [SEP]); only [6-11] holds it.
    overhang = QAExample("overhang", "who", context, (("x8 x9", context.index("x8")),))
    features = squad.make_features(
        [overhang], tokenizer, max_seq_length=10, doc_stride=3, max_query_length=4
    )
    assert features.start_positions.tolist() == [0, 0, 5, 0, 0, 0]
    assert features.end_positions.tolist() == [0, 0, 6, 0, 0, 0]
    # The null score of a question over several windows is its lowest (run_squad's
    # min_null_feature): here window 0's 3 + 3, so the diff with the span's 5 + 5 is -4.
    features = squad.make_features(
        [example], tokenizer, max_seq_length=10, doc_stride=3, max_query_length=4
    )
    start_logits, end_logits = np.zeros((6, 10)), np.zeros((6, 10))
    start_logits[:, 0] = end_logits[:, 0] = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    start_logits[2, 6], end_logits[2, 7] = 5.0, 5.0  # x9 x10 in window [6-11]
    spans, null_diffs = squad.best_spans([example], features, start_logits, end_logits)
    assert spans == {"long": "x9 x10"} and null_diffs == {"long": -4.0}


def test_decode_returns_the_planted_span_in_original_text(tokenizer):
    examples = [QAExample(*question) for question in QUESTIONS]
    features = squad.make_features(examples, tokenizer, max_seq_length=32, max_query_length=16)
    start_logits, end_logits = np.zeros((3, 32)), np.zeros((3, 32))
    # [CLS] and question tokens score highest but lie outside the context window.
    start_logits[:, :3] = end_logits[:, :3] = 100.0
    for feature, (first, last) in enumerate(
        [("1990", "1990"), ("dan", "reeves"), ("play", "football")]
    ):
        start_logits[feature, _position(features, feature, tokenizer, first)] = 5.0
        end_logits[feature, _position(features, feature, tokenizer, last)] = 5.0
    predictions = squad.decode(examples, features, start_logits, end_logits)
    # The predicted wordpieces' characters come back: "1990" of the word "1990." (until
    # 2026-12-06 the whole word: "Cairo's" for "Cairo", which SQuAD's EM and F1 score 0).
    assert predictions == {"q1": "1990", "q2": "Dan Reeves", "q3": "Playing football"}
    # Only [CLS] and question tokens among the n_best=1 candidates: no valid span.
    assert squad.decode(examples, features, start_logits, end_logits, n_best=1) == {
        "q1": "",
        "q2": "",
        "q3": "",
    }


@pytest.mark.parametrize(
    "word, pieces, spans",
    [
        ("1990.", ["1990", "."], [(0, 4), (4, 5)]),
        ("Cairo's", ["cairo", "'", "s"], [(0, 5), (5, 6), (6, 7)]),
        ("pilot/instructor", ["pilot", "/", "instruct", "or"], [(0, 5), (5, 6), (6, 14), (14, 16)]),
        ("Café's", ["cafe", "'", "s"], [(0, 4), (4, 5), (5, 6)]),  # uncased: accent stripped
        ("Cafe\u0301", ["cafe"], [(0, 5)]),  # a combining accent belongs to its letter
        ("ＦＵＬＬ", ["full"], [(0, 4)]),  # full-width forms, as NFKC leaves them
        ("Straße", ["strasse"], [(0, 6)]),  # case folding makes two letters of ß
        ("1990", ["", "1990"], [(0, 0), (0, 4)]),  # SentencePiece's lone "▁" piece
        ("x☃y", ["x", None, "y"], None),  # an [UNK]: no way to place it
        ("abc", ["ab"], None),  # pieces that do not spell the word
    ],
)
def test_wordpieces_are_placed_on_the_characters_of_their_word(word, pieces, spans):
    assert squad.piece_char_spans(word, pieces) == spans


def test_decode_span_rules(tokenizer):
    example = QAExample(*QUESTIONS[1])
    features = squad.make_features([example], tokenizer, max_seq_length=32, max_query_length=16)

    def logits(**planted):
        values = np.zeros((1, 32), np.float32)
        for token, value in planted.items():
            values[0, _position(features, 0, tokenizer, token)] = value
        return values

    start, end = logits(dan=5, reeves=1), logits(reeves=5, dan=2)
    assert squad.decode([example], features, start, end, max_answer_length=2) == {
        "q2": "Dan Reeves"
    }
    # One wordpiece at most: (dan, dan) 5 + 2 = 7 beats (reeves, reeves) 1 + 5 = 6.
    assert squad.decode([example], features, start, end, max_answer_length=1) == {"q2": "Dan"}
    # (reeves, won) would score 20 but ends before it starts; (broncos, won) scores 13.
    start, end = logits(reeves=10, broncos=3), logits(won=10)
    assert squad.decode([example], features, start, end) == {"q2": "Broncos won"}


def test_decode_uses_each_token_from_its_max_context_window(tokenizer):
    context = " ".join(f"x{i}" for i in range(20))
    example = QAExample("long", "who", context, ())
    features = squad.make_features(
        [example], tokenizer, max_seq_length=10, doc_stride=3, max_query_length=4
    )
    start_logits, end_logits = np.zeros((6, 10)), np.zeros((6, 10))
    # x9 x10 planted in window [9-14] (positions 3, 4), where x9 lacks max context (its best
    # window is [6-11]); the weaker x8 x9 in window [6-11] (positions 5, 6) wins.
    start_logits[3, 3] = end_logits[3, 4] = 10.0
    start_logits[2, 5] = end_logits[2, 6] = 4.0
    assert squad.decode([example], features, start_logits, end_logits) == {"long": "x8 x9"}
    start_logits[2, 6] = end_logits[2, 7] = 10.0  # x9 x10 in window [6-11]
    assert squad.decode([example], features, start_logits, end_logits) == {"long": "x9 x10"}
    assert features.start_positions.tolist() == [0] * 6  # no answer: every label is [CLS]


ZH_CONTEXT = "灯塔是一种塔状建筑物，建于1990年。它由Fresnel透镜发光，为船只指引方向。"
ZH_QUESTIONS = [  # (id, question, answer): CMRC 2018's layout, answers anywhere in the text
    ("z1", "灯塔建于哪一年？", "1990年"),
    ("z2", "灯塔用什么发光？", "Fresnel透镜"),
    ("z3", "灯塔为谁指引方向？", "船只"),
]


@pytest.fixture(scope="module")
def zh_tokenizer(tmp_path_factory) -> WordPieceTokenizer:
    characters = sorted(set(ZH_CONTEXT + "".join(q for _, q, _ in ZH_QUESTIONS)))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "1990", "fresnel"] + characters
    path = tmp_path_factory.mktemp("zh_vocab") / "vocab.txt"
    path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    return WordPieceTokenizer(path, lowercase=True)


def test_chinese_answers_are_labelled_and_decoded_to_the_character(zh_tokenizer):
    """A Chinese context has no spaces: before, it was one "word", so even a model that put its
    logits on exactly the answer's wordpieces answered with the whole context (EM and F1 0)."""
    examples = [
        QAExample(qid, question, ZH_CONTEXT, ((answer, ZH_CONTEXT.index(answer)),))
        for qid, question, answer in ZH_QUESTIONS
    ]
    features = squad.make_features(examples, zh_tokenizer, max_seq_length=64, max_query_length=16)
    labelled = [
        _tokens(zh_tokenizer, ids[start : end + 1])
        for ids, start, end in zip(
            features.input_ids, features.start_positions, features.end_positions, strict=True
        )
    ]
    assert labelled == [["1990", "年"], ["fresnel", "透", "镜"], ["船", "只"]]
    start_logits, end_logits = np.zeros((3, 64)), np.zeros((3, 64))
    for feature in range(3):  # a perfect model
        start_logits[feature, features.start_positions[feature]] = 5.0
        end_logits[feature, features.end_positions[feature]] = 5.0
    predictions = squad.decode(examples, features, start_logits, end_logits)
    assert predictions == {qid: answer for qid, _, answer in ZH_QUESTIONS}
    # Fine-tuning's scores of Chinese answers add CMRC 2018's own (its script's EM and F1).
    logits = [np.stack([s, e], axis=1) for s, e in zip(start_logits, end_logits, strict=True)]
    task = tasks.TaskData("squad", "qa", [], examples, examples, "dev")
    config = ml_collections.ConfigDict({"n_best": 20, "max_answer_length": 30})
    scored = inference._qa_scores(task, examples, features, logits, config)
    assert scored == {"exact_match": 1.0, "f1": 1.0, "cmrc_exact_match": 1.0, "cmrc_f1": 1.0}


def test_squad2_unanswerable_questions_are_read_and_labelled_cls(tmp_path, tokenizer):
    document = _squad_json()
    document["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "n1", "question": "Who won?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Dan Reeves", "answer_start": 35}]}
    )  # fmt: skip
    examples = squad.read_squad(_write_json(tmp_path / "v2.json", document))
    assert [(e.id, e.answers) for e in examples][2] == ("n1", ())
    hf = {"id": "n2", "question": "Who won?", "context": CONTEXT_1,
          "answers": {"text": [], "answer_start": []}}  # squad_v2's layout  # fmt: skip
    (tmp_path / "v2.jsonl").write_text(json.dumps(hf) + "\n", encoding="utf-8")
    assert squad.read_squad(tmp_path / "v2.jsonl") == [QAExample("n2", "Who won?", CONTEXT_1, ())]
    features = squad.make_features(examples, tokenizer, max_seq_length=32, max_query_length=16)
    assert features.start_positions[2] == features.end_positions[2] == 0  # [CLS]


def test_decode_answers_empty_where_the_null_score_wins(tokenizer):
    examples = [QAExample(*question) for question in QUESTIONS]
    features = squad.make_features(examples, tokenizer, max_seq_length=32, max_query_length=16)
    start_logits, end_logits = np.zeros((3, 32)), np.zeros((3, 32))
    for feature, (first, last) in enumerate(
        [("1990", "1990"), ("dan", "reeves"), ("play", "football")]
    ):
        start_logits[feature, _position(features, feature, tokenizer, first)] = 5.0
        end_logits[feature, _position(features, feature, tokenizer, last)] = 5.0
    # Null scores ([CLS] start + end): 12 > span 10 for q1, 9 < 10 for q2, 10 = 10 for q3.
    start_logits[:, 0], end_logits[:, 0] = [6.0, 4.5, 5.0], [6.0, 4.5, 5.0]
    spans = {"q1": "1990", "q2": "Dan Reeves", "q3": "Playing football"}
    assert squad.decode(examples, features, start_logits, end_logits) == spans  # SQuAD v1.1
    decoded = squad.decode(examples, features, start_logits, end_logits,
                           null_score_diff_threshold=0.0)  # fmt: skip
    assert decoded == spans | {"q1": ""}  # only a null score over the span's answers ""
    decoded = squad.decode(examples, features, start_logits, end_logits,
                           null_score_diff_threshold=-1.5)  # fmt: skip
    assert decoded == {"q1": "", "q2": "", "q3": ""}  # 9 - 10 = -1 > -1.5
