"""Tagging from character spans (doccano's and Label Studio's exports, CLUENER 2020): the text
split into words as BERT's basic tokenizer splits it, spans turned into BIO tags, a fine-tune from
such files, and `bertjax predict` giving spans back in doccano's shape."""

import json
import logging

import pytest

from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.errors import UserError
from bertjax.finetune import predict, span_records, tasks, trainer
from tests.test_finetune import config_for, tiny_model_dir, write_jsonl


def test_words_and_bio_tags_from_each_shape_of_spans():
    text = "Anna Smith moved to New York, 2019."
    words = [text[a:b] for a, b in span_records.text_words(text)]
    assert words == ["Anna", "Smith", "moved", "to", "New", "York", ",", "2019", "."]
    expected = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "O"]
    doccano = {"text": text, "label": [[0, 10, "PER"], [20, 28, "LOC"]]}
    objects = {"text": text, "label": [{"start_offset": 0, "end_offset": 10, "label": "PER"},
                                       {"start": 20, "end": 28, "label": "LOC"}]}  # fmt: skip
    label_studio = {"text": text, "label": [  # JSON-MIN: its text and a list of labels
        {"start": 0, "end": 10, "text": "Anna Smith", "labels": ["PER"]},
        {"start": 20, "end": 28, "text": "New York", "labels": ["LOC"]}]}  # fmt: skip
    for record in (doccano, objects, label_studio):
        tagged, skipped = span_records.tagged_record(record, "text", "label", "f.jsonl", 0)
        assert (tagged["tokens"], tagged["tags"], skipped) == (words, expected, 0)
    # A span ending inside a word tags the whole word; a nested one is left out and counted.
    partial = {"text": text, "label": [[0, 3, "PER"], [20, 28, "LOC"], [24, 28, "CITY"]]}
    tagged, skipped = span_records.tagged_record(partial, "text", "label", "f.jsonl", 0)
    assert tagged["tags"][:2] == ["B-PER", "O"] and skipped == 1
    # Nested spans with the same start: the outer ("New York") is kept, the inner counted.
    same_start = {"text": text, "label": [[20, 23, "CITY"], [20, 28, "LOC"]]}
    tagged, skipped = span_records.tagged_record(same_start, "text", "label", "f.jsonl", 0)
    assert tagged["tags"][4:6] == ["B-LOC", "I-LOC"] and skipped == 1
    # CLUENER 2020: {label: {entity: [[start, end inclusive]]}}, each character a word.
    cluener = {"text": "浙商银行企业信贷部叶老桂博士", "label": {
        "name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}}  # fmt: skip
    tagged, _ = span_records.tagged_record(cluener, "text", "label", "f.jsonl", 0)
    assert tagged["tokens"] == list("浙商银行企业信贷部叶老桂博士")
    assert tagged["tags"] == (["B-company"] + ["I-company"] * 3 + ["O"] * 5 + ["B-name"]
                              + ["I-name"] * 2 + ["O"] * 2)  # fmt: skip
    assert span_records.predicted_spans(cluener["text"], tagged["tags"]) == [
        [0, 4, "company"], [9, 12, "name"]]  # fmt: skip


def _labels_result(start, end, text, label, kind="labels"):
    value = {"start": start, "end": end, "text": text, "labels": [label]}
    return {"value": value, "from_name": "entity", "to_name": "body", "type": kind}


def test_label_studio_json_export_tasks(tmp_path, caplog):
    """Label Studio's JSON export: a JSON array of tasks, the text in `data`, spans in the
    newest annotation not cancelled; other result types ignored; unannotated tasks left out."""
    text = "Anna met Tom in Paris ."
    old = {"created_at": "2024-01-01T10:00:00Z", "result": [_labels_result(0, 4, "Anna", "LOC")]}
    newest = {"created_at": "2024-01-02T10:00:00Z", "result": [
        _labels_result(0, 4, "Anna", "PER"), _labels_result(9, 12, "Tom", "PER"),
        {"type": "choices", "value": {"choices": ["travel"]}, "from_name": "topic"},
        {"type": "relation", "from_id": "a", "to_id": "b"},
        _labels_result(16, 21, "Paris", "LOC")]}  # fmt: skip
    cancelled = {"created_at": "2024-01-03T10:00:00Z", "was_cancelled": True, "result": []}
    tasks_json = [
        {"id": 1, "data": {"text": text}, "annotations": [old, newest, cancelled]},
        {"id": 2, "data": {"text": "Tom slept ."}, "annotations": []},  # nobody annotated it
        {"id": 3, "data": {"text": "Lena sang ."}, "annotations": [cancelled]},
        {"id": 4, "data": {"text": "It rained ."}, "annotations": [{"result": []}]},  # no entity
    ]
    tagged, _ = span_records.tagged_record(tasks_json[0], "text", "annotations", "f.json", 0)
    assert tagged["tokens"] == ["Anna", "met", "Tom", "in", "Paris", "."]
    assert tagged["tags"] == ["B-PER", "O", "B-PER", "O", "B-LOC", "O"]
    assert span_records.tagged_record(tasks_json[1], "text", "annotations", "f.json", 1) == (
        None, 0)  # fmt: skip
    path = tmp_path / "project-1-at-2024-01-02.json"
    path.write_text(json.dumps(tasks_json))
    config = config_for(kind="tagging", train_file=str(path), eval_file=str(path),
                        spans_field="annotations")  # fmt: skip
    with caplog.at_level("WARNING"):
        task = tasks.load_task("jsonl", config)
    tags = [[task.labels[t] for t in example.tags] for example in task.train]
    assert tags == [["B-PER", "O", "B-PER", "O", "B-LOC", "O"], ["O", "O", "O"]]
    assert "2 Label Studio tasks have no annotation" in caplog.text
    # The labeling config's tag names, which the model records for predict's pre-annotations.
    assert task.label_studio_names == ("entity", "body")
    assert trainer._task_entry(task, config)["label_studio_names"] == ["entity", "body"]


def test_utf16_offsets_of_a_quoted_span_are_moved_to_characters():
    """Label Studio counts offsets in UTF-16 code units (JavaScript's): after an emoji they run
    one ahead per emoji; a span that quotes its text is found there and moved."""
    text = "🙂🙂 Anna met Tom in Paris ."
    units = {i: len(text[:i].encode("utf-16-le")) // 2 for i in range(len(text) + 1)}
    assert text[3:7] == "Anna" and (units[3], units[7]) == (5, 9) and text[5:9] == "na m"
    record = {
        "text": text,
        "label": [
            {"start": units[3], "end": units[7], "text": "Anna", "labels": ["PER"]},
            {"start": 12, "end": 15, "text": "Tom", "labels": ["PER"]},
        ],
    }  # characters: kept
    tagged, _ = span_records.tagged_record(record, "text", "label", "f.jsonl", 0)
    assert tagged["tokens"][:5] == ["🙂", "🙂", "Anna", "met", "Tom"]
    assert tagged["tags"][:5] == ["O", "O", "B-PER", "O", "B-PER"]
    wrong = {"text": text, "label": [{"start": 3, "end": 7, "text": "Tom", "labels": ["PER"]}]}
    with pytest.raises(UserError, match=r"record 1 of f.jsonl: the PER span \[3, 7\) quotes "
                       "'Tom', where the text has 'Anna'; fix the record"):  # fmt: skip
        span_records.tagged_record(wrong, "text", "label", "f.jsonl", 0)


def test_span_errors_name_the_record():
    bad = {
        "not spans": ({"text": "a b", "label": "PER"}, "'label' is not a list of .start, end"),
        "short": ({"text": "a b", "label": [[0, "PER"]]}, r"a span of 'label' is \[0, 'PER'\]"),
        "outside": ({"text": "a b", "label": [[0, 9, "PER"]]}, r"the PER span \[0, 9\) is "
                    "outside its text of 3 characters"),
        "cluener": ({"text": "叶老桂", "label": {"name": {"叶老": [[0, 2]]}}},
                    r"'label' puts '叶老' \(name\) at \[0, 2\], where the text has '叶老桂'"),
        "missing": ({"text": "a b"}, "has no field 'label'"),
        "empty": ({"text": "a b", "label": [[1, 1, "PER"]]}, r"the PER span \[1, 1\) is empty"),
        "reversed": ({"text": "a b c", "label": [[3, 1, "PER"]]},
                     r"the PER span \[3, 1\) is reversed: its end before its start"),
    }  # fmt: skip
    for name, (record, message) in bad.items():
        where = "record 3 of f.jsonl" + ("" if name == "missing" else ":") + " "
        with pytest.raises(UserError, match=where + message):
            span_records.tagged_record(record, "text", "label", "f.jsonl", 2)


def test_a_tagger_fine_tunes_from_spans_and_predicts_spans(tmp_path, caplog):
    people, places = ["Anna", "Tom", "Lena", "Omar"], ["Paris", "Oslo", "Lima", "Rome"]
    records = []
    for i in range(48):
        person, place = people[i % 4], places[(i // 4) % 4]
        text = f"{person} went to {place} today ."
        start = text.index(place)
        records.append({"text": text, "label": [[0, len(person), "PER"],
                                                [start, start + len(place), "LOC"]]})  # fmt: skip
    path = write_jsonl(tmp_path / "spans.jsonl", records)
    init = tiny_model_dir(tmp_path, [r["text"] for r in records] * 10)
    config = config_for(kind="tagging", train_file=path, eval_file=path, spans_field="label",
                        learning_rate=3e-3, num_epochs=8)  # fmt: skip
    task = tasks.load_task("jsonl", config)
    assert task.labels == ["B-LOC", "B-PER", "O"]
    result = trainer.finetune("jsonl", str(init), str(tmp_path / "run"), config)["seeds"]["0"]
    assert result["f1"] > 0.9 and {"f1/PER", "f1/LOC"} <= set(result), result
    saved = tmp_path / "run" / "seed_0" / trainer.MODEL_DIR
    texts = write_jsonl(tmp_path / "new.jsonl", [{"text": "Tom went to Rome today ."}])
    predict.predict_file(str(saved), texts, str(tmp_path / "out.jsonl"))
    (line,) = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    assert line["predicted_spans"] == [[0, 3, "PER"], [12, 16, "LOC"]], line
    assert line["predicted_tags"] == ["B-PER", "O", "O", "B-LOC", "O", "O"]
    # A text past max_seq_length is tagged whole, in windows: each sentence as when alone
    # (its last 210 words were "O", unsaid, before); a word too long for a row is said.
    long = write_jsonl(tmp_path / "long.jsonl", [{"text": "Tom went to Rome today . " * 40}])
    predict.predict_file(str(saved), long, str(tmp_path / "long_out.jsonl"))
    (whole,) = map(json.loads, (tmp_path / "long_out.jsonl").read_text().splitlines())
    assert whole["predicted_tags"] == line["predicted_tags"] * 40
    assert "more wordpieces than a row" not in caplog.text
    tokenizer = WordPieceTokenizer(saved / "vocab.txt", lowercase=True)
    candidates = [pair * 45 for pair in ("at", "ot", "ao", "ta", "to", "ar", "ra")]
    word = max(candidates, key=lambda w: len(tokenizer.encode([w])[0]))
    assert len(tokenizer.encode([word])[0]) > 62  # more pieces than a row of 64 holds
    too_long = write_jsonl(tmp_path / "word.jsonl", [{"text": f"Tom went to {word} ."}])
    with caplog.at_level(logging.WARNING, logger="absl"):
        predict.predict_file(str(saved), too_long, str(tmp_path / "word_out.jsonl"))
    assert "1 words have more wordpieces than a row of max_seq_length=64 holds" in caplog.text
    with pytest.raises(UserError, match="--tokens_field does not apply to a tagger fine-tuned"):
        predict.predict_file(str(saved), texts, str(tmp_path / "x.jsonl"), tokens_field="words")
    renamed = write_jsonl(tmp_path / "renamed.jsonl", [{"body": "Tom went to Rome today ."}])
    predict.predict_file(str(saved), renamed, str(tmp_path / "r.jsonl"), text_fields="body")
    (again,) = map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())
    assert again["predicted_spans"] == line["predicted_spans"]
    # Label Studio tasks to pre-annotate: a JSON array, the text in each task's data; written
    # back as a JSON array (--out=*.json) with each task's "predictions" in Label Studio's shape,
    # naming its template's tags (this model was fine-tuned on doccano spans).
    studio = tmp_path / "tasks.json"
    studio.write_text(json.dumps([{"id": 7, "data": {"text": "Tom went to Rome today ."}}]))
    predict.predict_file(str(saved), str(studio), str(tmp_path / "ls.json"))
    (task,) = json.loads((tmp_path / "ls.json").read_text())
    assert task["id"] == 7 and task["predicted_spans"] == line["predicted_spans"]
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == str(saved)
    assert prediction["result"] == [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 3, "text": "Tom", "labels": ["PER"]}},
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 12, "end": 16, "text": "Rome", "labels": ["LOC"]}},
    ]  # fmt: skip
    with pytest.raises(UserError, match="names 2 fields; the model reads 1 .text when"):
        predict.predict_file(str(saved), renamed, str(tmp_path / "r.jsonl"), text_fields="a,b")


def test_prodigy_annotations_rejected_or_ignored_are_left_out(tmp_path, caplog):
    """Prodigy's NER export (`prodigy db-out`): spans with character start/end and label, and
    every answer the annotator gave: a rejected or ignored example's spans are a suggestion
    turned down, so it is left out, counted; accepted ones are read."""

    def example(text, spans, answer):
        objects = [{"start": s, "end": e, "label": label, "token_start": 0, "token_end": 0}
                   for s, e, label in spans]  # fmt: skip
        return {"text": text, "spans": objects, "answer": answer, "_input_hash": 1,
                "_task_hash": 2}  # fmt: skip

    path = write_jsonl(tmp_path / "ner.jsonl", [
        example("Anna met Tom .", [(0, 4, "PER"), (9, 12, "PER")], "accept"),
        example("Paris is big .", [(0, 5, "PER")], "reject"),  # a wrong suggestion turned down
        example("Lena sang .", [(0, 4, "PER")], "ignore"),
        example("It rained .", [], "accept"),
    ])  # fmt: skip
    config = config_for(kind="tagging", train_file=path, eval_file=path, spans_field="spans")
    with caplog.at_level("WARNING"):
        task = tasks.load_task("jsonl", config)
    tags = [[task.labels[t] for t in example.tags] for example in task.train]
    assert tags == [["B-PER", "O", "B-PER", "O"], ["O", "O", "O"]]
    assert "2 Prodigy annotations answered reject or ignore are left out" in caplog.text
