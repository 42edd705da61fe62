"""Multiple choice (SWAG, RACE, COPA, ARC, C3): records with their label forms and errors, a row
per choice, batches that pad an example's missing choices out of the softmax, and a tiny BERT
that learns to pick the right one of 2 to 4 choices. Hugging Face's BertForMultipleChoice is the
reference for the head (tests/convert/test_export_finetuned.py)."""

import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest

from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from bertjax.finetune import choice_records, features, predict, steps, tasks, trainer
from bertjax.finetune.choice_records import ChoiceExample
from bertjax.models.bert import BertConfig
from tests.test_finetune import config_for, tiny_model_dir, write_jsonl

GOOD, BAD = ["great", "lovely", "superb", "fine"], ["awful", "dull", "dreadful", "poor"]
PLACES = ["at home", "today", "again", "in the yard"]


def review_questions(count: int, seed: int) -> list[dict]:
    """ "Which review did the critic write, who liked the film?" with 2 to 4 choices (C3's
    questions vary so): the right one praises it, the others pan it. (A tiny model from random
    parameters does not learn, in a test's steps, a rule that pairs a context word with a
    choice's; that both segments are read is BertForMultipleChoice's computation, checked in
    tests/convert/test_export_finetuned.py.)"""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        count_choices = int(rng.integers(2, 5))
        right = int(rng.integers(count_choices))
        words = [rng.choice(GOOD if i == right else BAD) for i in range(count_choices)]
        records.append({"context": f"{rng.choice(PLACES)} the critic saw a film she liked",
                        "question": "what did she write ?",
                        "choices": [f"it was {w}" for w in words], "label": right})  # fmt: skip
    return records


def test_tiny_model_learns_a_multiple_choice_task_and_predict_agrees(tmp_path):
    train, test = review_questions(256, seed=0), review_questions(128, seed=1)
    texts = [" ".join([r["context"], r["question"], *r["choices"]]) for r in train]
    init = tiny_model_dir(tmp_path, texts * 5)
    config = config_for(
        train_file=write_jsonl(tmp_path / "train.jsonl", train),
        eval_file=write_jsonl(tmp_path / "test.jsonl", test),
        kind="multiple_choice", text_fields="context,question", learning_rate=1e-3, num_epochs=5,
    )  # fmt: skip
    results = trainer.finetune("jsonl", str(init), str(tmp_path / "run"), config)
    assert results["main_score"] == "accuracy" and results["kind"] == "multiple_choice"
    chance = np.mean([1 / len(r["choices"]) for r in test])
    accuracy = results["aggregate"]["accuracy"]["median"]
    # 128 questions: 0.85 is > 7 standard errors above guessing
    assert chance < 0.5 and accuracy > 0.85, results["seeds"]
    saved = tmp_path / "run" / "seed_0" / trainer.MODEL_DIR
    out = tmp_path / "predicted.jsonl"
    done = predict.predict_file(str(saved), str(tmp_path / "test.jsonl"), str(out))
    assert done.line().startswith("128 choices made by a jsonl model")  # 128 questions
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert np.mean([r["prediction"] == r["label"] for r in lines]) == pytest.approx(accuracy)
    for r in lines:  # a probability per choice, the prediction the likeliest
        assert len(r["probabilities"]) == len(r["choices"])
        assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert r["predicted_choice"] == r["choices"][int(np.argmax(r["probabilities"]))]
    # Data whose fields are named otherwise, choices in a field each (SWAG's columns).
    renamed = [{"c": r["context"], "q": r["question"], "a": r["choices"][0],
                "b": r["choices"][1]} for r in test[:4]]  # fmt: skip
    renamed_file = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    predict.predict_file(str(saved), renamed_file, str(tmp_path / "r.jsonl"), text_fields="c,q",
                         choices_field="a,b")  # fmt: skip
    again = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [len(r["probabilities"]) for r in again] == [2] * 4
    with pytest.raises(
        UserError,
        match="has no field 'choices'; the model reads .*: name yours "
        "with --text_fields=NAME and --choices_field=NAME",
    ):
        predict.predict_file(str(saved), str(tmp_path / "renamed.jsonl"), str(out),
                             text_fields="c,q")  # fmt: skip
    one_text = write_jsonl(tmp_path / "one.jsonl", [{"context": "a", "question": "b",
                                                     "choices": "it was great"}])  # fmt: skip
    with pytest.raises(UserError, match="not a JSON list of the choices; name one field per "
                       "choice with --choices_field=A,B"):  # fmt: skip
        predict.predict_file(str(saved), one_text, str(out))
    with pytest.raises(UserError, match="--null_score_diff_threshold does not apply to a mult"):
        predict.predict_file(str(saved), one_text, str(out), null_score_diff_threshold=0.0)
    with pytest.raises(UserError, match="--tokens_field does not apply to a multiple_choice"):
        predict.predict_file(str(saved), str(tmp_path / "renamed.jsonl"), str(out),
                             tokens_field="w")  # fmt: skip


def spec(**fields) -> tasks.TaskSpec:
    return tasks.TaskSpec(kind="multiple_choice", train="train.jsonl", eval="test.jsonl",
                          **fields)  # fmt: skip


def test_a_label_is_the_right_choice_s_index_letter_or_text():
    choices = ["a red one", "a blue one", "a green one"]
    for label, index in [(2, 2), ("1", 1), (" 0 ", 0), (1.0, 1), ("B", 1), ("a green one", 2)]:
        record = {"text": "which one ?", "choices": choices, "label": label}
        example = choice_records.choice_example(spec(), record, "f.jsonl", 0)
        assert example == ChoiceExample(("which one ?",), tuple(choices), index)
    bad = {3: r"is 3, which names none of its 3 choices; give the right one's index \(0-2\), "
              r"letter \(A-C\) or text", "D": 'is "D", which names none', True: "is true, which",
           "": 'is "", which', "a yellow one": 'is "a yellow one", which',
           1.5: "is 1.5, which"}  # fmt: skip
    for label, message in bad.items():
        record = {"text": "which one ?", "choices": choices, "label": label}
        with pytest.raises(UserError, match=f"record 4 of f.jsonl: 'label' {message}"):
            choice_records.choice_example(spec(), record, "f.jsonl", 3)
    errors = {
        "one": ({"text": "t", "choices": ["only"], "label": 0},
                "has 1 choice.s.; a question needs"),
        "text": ({"text": "t", "choices": "a b", "label": 0},
                 "'choices' is a str, not a JSON list of the choices; name one field per choice "
                 "with --config.choices_field=A,B"),
        "null": ({"text": "t", "choices": ["a", None], "label": 0}, r"'choices\[1\]' is null"),
        "missing": ({"text": "t", "label": 0}, "has no field 'choices'"),
    }  # fmt: skip
    for record, message in errors.values():
        with pytest.raises(UserError, match=message):
            choice_records.choice_example(spec(), record, "f.jsonl", 0)


def test_swag_layout_from_a_csv_file_with_a_field_per_choice(tmp_path):
    """SWAG's CSV columns: sent1 (first segment), sent2 (before each ending), ending0-3, label
    as digits; RACE's letter labels in a JSON Lines dev file."""
    columns = ["sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label"]
    rows = [
        ["The man opens the door.", "He", "walks in.", "flies.", "eats it.", "sings.", "0"],
        ["A girl kicks the ball.", "It", "melts.", "rolls away.", "laughs.", "reads.", "1"],
    ]
    with (tmp_path / "train.csv").open("w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])
    dev = [{"sent1": "A cat sleeps.", "sent2": "It", "ending0": "purrs.", "ending1": "explodes.",
            "ending2": "drives.", "ending3": "votes.", "answer": "A"}]  # fmt: skip
    config = config_for(
        kind="multiple_choice", train_file=str(tmp_path / "train.csv"),
        eval_file=write_jsonl(tmp_path / "dev.jsonl", dev), text_fields="sent1,sent2",
        choices_field="ending0,ending1,ending2,ending3",
    )  # fmt: skip
    with pytest.raises(UserError, match="has no field 'label'"):
        tasks.load_task("jsonl", config)
    config.label_field = "label"
    (tmp_path / "dev.jsonl").write_text(
        (tmp_path / "dev.jsonl").read_text().replace('"answer"', '"label"')
    )
    task = tasks.load_task("jsonl", config)
    assert task.kind == "multiple_choice" and task.labels == []
    endings = ("melts.", "rolls away.", "laughs.", "reads.")
    assert task.train[1] == ChoiceExample(("A girl kicks the ball.", "It"), endings, 1)
    assert task.eval[0].label == 0 and task.eval[0].choices[0] == "purrs."


def test_a_tables_empty_last_choice_cells_are_a_question_with_fewer_choices():
    """A column per choice: empty last cells are a question with fewer choices (before, "" was
    a choice of its own, trained and predicted); an empty cell before a filled one is refused."""
    columns = spec(choice_fields=("e0", "e1", "e2", "e3"), text_fields=("q",))
    record = {"q": "which ?", "e0": "one", "e1": "two", "e2": "three", "e3": " ", "label": "2"}
    example = choice_records.choice_example(columns, record, "f.csv", 0)
    assert example == ChoiceExample(("which ?",), ("one", "two", "three"), 2)
    record |= {"e1": "", "e3": "four"}
    with pytest.raises(UserError, match=r"record 1 of f.csv: choice 1 is empty \(only a table's "
                       "last cells may be"):  # fmt: skip
        choice_records.choice_example(columns, record, "f.csv", 0)
    listed = {"q": "which ?", "choices": ["one", ""], "label": 0}
    with pytest.raises(UserError, match="choice 1 is empty"):
        choice_records.choice_example(spec(text_fields=("q",)), listed, "f.jsonl", 0)


def tokenizer(tmp_path) -> WordPieceTokenizer:
    words = "the man opens door he walks in flies away it a b c d e f g h".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return WordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True)


def test_each_choice_is_a_pair_row_and_missing_choices_are_masked(tmp_path):
    tok = tokenizer(tmp_path)
    examples = [
        ChoiceExample(("the man opens the door", "he"), ("walks in", "flies away"), 1),
        ChoiceExample(("a b c d e f g h",), ("a", "b c", "d"), 2),
    ]
    encoded = features.encode_choices(examples, tok, max_seq_length=10)
    ids = lambda text: tok.encode([text])[0]  # noqa: E731
    cls, sep = tok.cls_id, tok.sep_id
    # [CLS] first text [SEP] other texts + choice [SEP]; longest-first truncation to 10.
    assert encoded.input_ids[0][0] == [
        cls,
        *ids("the man opens the"),
        sep,
        *ids("he walks in"),
        sep,
    ]
    assert encoded.segment_ids[0][0] == [0] * 6 + [1] * 4
    assert encoded.input_ids[1][1] == [cls, *ids("a b c d e"), sep, *ids("b c"), sep]
    assert encoded.num_choices == [2, 3] and encoded.labels == [1, 2]
    batch = features.pad_batch(encoded, [0, 1], batch_size=3, max_len=64)
    assert batch["input_ids"].shape == (3, 3, 32)  # 3 rows (one filler), 3 choices, a bucket
    np.testing.assert_array_equal(batch["choice_mask"], [[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(batch["weights"], [1, 1, 0])
    assert batch["input_mask"][0, 2].sum() == 1  # a padding choice attends to one token
    # The loss is a softmax over the real choices only: a padding choice's score is ignored.
    logits = jnp.array([[0.0, 2.0, 50.0], [1.0, 0.0, 3.0], [9.0, 9.0, 9.0]])
    total, count = steps.task_loss(logits, batch, "multiple_choice")
    expected = [np.log1p(np.exp(-2.0)), np.log(np.exp([1.0, 0.0, 3.0]).sum()) - 3.0]
    assert float(count) == 2 and float(total) == pytest.approx(sum(expected), rel=1e-5)


def test_the_choice_head_scores_each_row_as_a_one_output_classifier():
    """Multiple choice is the pooled classifier with one output over the rows of every choice:
    the same parameters give the same scores, reshaped [examples, choices]."""
    from flax import nnx

    from bertjax.finetune import model

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    choice = model.BertForFinetuning(config, "multiple_choice", 1, rngs=nnx.Rngs(0))
    classifier = model.BertForFinetuning(config, "regression", 1, rngs=nnx.Rngs(0))
    ids = np.random.default_rng(0).integers(5, 50, (2, 3, 8))
    mask = np.ones_like(ids)
    mask[1, 2, 5:] = 0
    scores = choice(jnp.asarray(ids), jnp.zeros_like(ids), jnp.asarray(mask))
    rows = classifier(jnp.asarray(ids.reshape(6, 8)), jnp.zeros((6, 8), int),
                      jnp.asarray(mask.reshape(6, 8)))  # fmt: skip
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores, rows.reshape(2, 3), rtol=1e-6)


def test_hugging_face_layouts_of_arc_and_c3_read_as_they_are(tmp_path):
    """ARC / CommonsenseQA / OpenBookQA on the Hub: choices {"text", "label"}, answerKey its
    name (ARC has questions labelled "1"-"4", which are names there, not indices); C3
    (clue/c3): the context a list of dialogue turns, the answer the choice's text."""
    arc = [
        {"question": "Which is a gas?", "answerKey": "B",
         "choices": {"text": ["ice", "steam", "rock"], "label": ["A", "B", "C"]}},
        {"question": "What melts?", "answerKey": "1",
         "choices": {"text": ["snow", "sand", "glass", "iron"], "label": ["1", "2", "3", "4"]}},
    ]  # fmt: skip
    config = config_for(kind="multiple_choice", text_fields="question", label_field="answerKey",
                        train_file=write_jsonl(tmp_path / "arc.jsonl", arc),
                        eval_file=str(tmp_path / "arc.jsonl"))  # fmt: skip
    task = tasks.load_task("jsonl", config)
    assert [(e.choices, e.label) for e in task.train] == [
        (("ice", "steam", "rock"), 1), (("snow", "sand", "glass", "iron"), 0)]  # fmt: skip
    c3 = [{"context": ["男：你去哪儿？", "女：我去图书馆。"], "question": "女的去哪儿？",
           "choice": ["商店", "图书馆", "学校"], "answer": "图书馆"}]  # fmt: skip
    config = config_for(kind="multiple_choice", text_fields="context,question",
                        choices_field="choice", label_field="answer",
                        train_file=write_jsonl(tmp_path / "c3.jsonl", c3),
                        eval_file=str(tmp_path / "c3.jsonl"))  # fmt: skip
    (example,) = tasks.load_task("jsonl", config).train
    assert example == ChoiceExample(("男：你去哪儿？ 女：我去图书馆。", "女的去哪儿？"),
                                    ("商店", "图书馆", "学校"), 1)  # fmt: skip


def test_copa_from_tensorflow_datasets_labels_the_right_choice_by_its_field():
    """TFDS's super_glue/copa: premise, question, choice1, choice2 and a class label whose
    names are the fields, "choice1" / "choice2" (mock data: random texts, real schema)."""
    import tensorflow_datasets as tfds

    config = config_for(kind="multiple_choice", text_fields="premise,question",
                        choices_field="choice1,choice2", train_file="tfds:super_glue/copa:train",
                        eval_file="tfds:super_glue/copa:validation")  # fmt: skip
    with tfds.testing.mock_data(num_examples=8):
        task = tasks.load_task("jsonl", config)
        records = list(tasks._tfds_records("super_glue/copa", "train"))
    assert len(task.train) == len(task.eval) == 8
    assert {r["label"] for r in records} <= {"choice1", "choice2"}
    for record, example in zip(records, task.train, strict=True):
        assert example.choices == (record["choice1"], record["choice2"])
        assert example.label == ["choice1", "choice2"].index(record["label"])


def test_a_race_cloze_blank_is_filled_by_each_option(tmp_path):
    """RACE's "The man _ ." questions: the option takes the blank's place (Hugging Face's RACE
    processor); a question without one is followed by the option; an underscore inside a word
    is no blank."""
    tok = tokenizer(tmp_path)
    cloze = ChoiceExample(("the man opens the door", "he _ in"), ("walks", "flies"), 0)
    plain = ChoiceExample(("a b", "he"), ("walks in", "flies away"), 1)
    assert choice_records.second_segment(cloze, "walks") == "he walks in"
    assert choice_records.second_segment(plain, "walks in") == "he walks in"
    snake = ChoiceExample(("a", "set snake_case or __init__"), ("x", "y"), 0)
    assert choice_records.second_segment(snake, "x") == "set snake_case or __init__ x"
    assert choice_records.second_segment(ChoiceExample(("a", "_ or ___ ."), ("x", "y"), 0),
                                         "it") == "it or it ."  # fmt: skip
    encoded = features.encode_choices([cloze], tok, max_seq_length=32)
    ids = tok.encode(["the man opens the door", "he walks in"])
    assert encoded.input_ids[0][0] == [tok.cls_id, *ids[0], tok.sep_id, *ids[1], tok.sep_id]
