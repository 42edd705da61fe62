"""Label Studio's JSON export as classification data (a task's text in `data`, its class in the
newest annotation's `choices` result) and `bertjax predict`'s pre-annotations for it. Span
tagging from the same export is in tests/test_finetune_spans.py."""

import json

import pytest

from bertjax.errors import UserError
from bertjax.finetune import label_studio, predict, tasks, trainer
from tests.test_finetune import ZH_TASKS, config_for, tiny_model_dir


def _annotation(*choices, created="2024-01-01T10:00:00Z", cancelled=False, name="sentiment"):
    result = [{"from_name": name, "to_name": "review", "type": "choices",
               "value": {"choices": list(choices)}}]  # fmt: skip
    return {"created_at": created, "was_cancelled": cancelled, "result": result}


def _task(number, text, *annotations):
    return {"id": number, "data": {"review": text, "source": "web"},
            "annotations": list(annotations), "predictions": []}  # fmt: skip


def test_the_newest_annotation_not_cancelled_gives_the_class():
    old = _annotation("Negative", created="2024-01-01T10:00:00Z")
    new = _annotation("Positive", created="2024-01-02T10:00:00Z")
    dropped = _annotation("Neutral", created="2024-01-03T10:00:00Z", cancelled=True)
    assert label_studio.chosen([old, new, dropped], False, "annotations", "r") == "Positive"
    assert label_studio.chosen([dropped], False, "annotations", "r") is None
    skipped = {**_annotation("Neutral", created="2024-01-03T10:00:00Z"), "skipped": True}
    assert label_studio.chosen([old, new, skipped], False, "annotations", "r") == "Positive"
    # Equal times (or none): the last listed wins.
    again = _annotation("Negative", created="2024-01-02T10:00:00Z")
    assert label_studio.chosen([new, again], False, "annotations", "r") == "Negative"
    assert label_studio.chosen([_annotation("A"), _annotation("B")], False, "a", "r") == "B"
    assert label_studio.chosen([], False, "annotations", "r") is None
    both = _annotation("Sports", "Politics")
    assert label_studio.chosen([both], True, "annotations", "r") == ["Sports", "Politics"]
    with pytest.raises(UserError, match=r"record 4 of f.json: the newest annotation in "
                       r"'annotations' chooses 2 classes \['Sports', 'Politics'\], not one; fix "
                       "the task, or fine-tune with --config.kind=multilabel"):  # fmt: skip
        label_studio.chosen([both], False, "annotations", "record 4 of f.json")
    task = _task(1, "fine", new)
    assert label_studio.flattened(task)["review"] == "fine"
    assert label_studio.flattened(task)["id"] == 1  # the task's own fields stay
    assert label_studio.flattened({"id": 1, "data": {"id": "a data field", "text": "t"}}) == {
        "id": 1, "data": {"id": "a data field", "text": "t"}, "text": "t"
    }  # fmt: skip
    assert label_studio.tag_names(task, "annotations", "choices") == ("sentiment", "review")
    assert label_studio.tag_names(task, "annotations", "labels") is None
    assert (
        label_studio.tag_names({"text": "a", "annotations": []}, "annotations", "choices") is None
    )


def test_a_classifier_fine_tunes_on_a_label_studio_export_and_pre_annotates(tmp_path, caplog):
    good, bad = ["great", "lovely", "superb", "fine"], ["awful", "dull", "poor", "boring"]
    exported = []
    for i in range(48):
        positive = i % 2 == 0
        word = (good if positive else bad)[(i // 2) % 4]
        text = f"the film was {word} and the cast was {word} ."
        exported.append(_task(i, text, _annotation("Positive" if positive else "Negative")))
    exported.append(_task(48, "the film was long .", _annotation("Positive", cancelled=True)))
    exported.append(_task(49, "the cast was new ."))  # not annotated yet
    path = tmp_path / "project-3-at-2024-01-02.json"
    path.write_text(json.dumps(exported))
    init = tiny_model_dir(tmp_path, [t["data"]["review"] for t in exported] * 10)
    config = config_for(kind="classification", train_file=str(path), eval_file=str(path),
                        text_fields="review", label_field="annotations", learning_rate=3e-3,
                        num_epochs=20, warmup_fraction=0.0, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    with caplog.at_level("WARNING"):
        task = tasks.load_task("jsonl", config)
    assert "2 Label Studio tasks have no annotation" in caplog.text
    assert task.labels == ["Negative", "Positive"] and len(task.train) == 48
    assert task.label_studio_names == ("sentiment", "review")
    result = trainer.finetune("jsonl", str(init), str(tmp_path / "run"), config)["seeds"]["0"]
    assert result["accuracy"] > 0.9, result
    # Tasks to pre-annotate (the Label Studio import's JSON array, --out=*.json): each gets its
    # predicted class in "predictions", naming the labeling config's tags, scored.
    saved = tmp_path / "run" / "seed_0" / trainer.MODEL_DIR
    new = tmp_path / "new.json"
    new.write_text(json.dumps([{"id": 7, "data": {"review": "the film was superb ."}}]))
    predict.predict_file(str(saved), str(new), str(tmp_path / "out.json"))
    (out,) = json.loads((tmp_path / "out.json").read_text())
    assert out["id"] == 7 and out["data"] == {"review": "the film was superb ."}
    assert out["prediction"] == "Positive"
    (prediction,) = out["predictions"]
    assert prediction["model_version"] == str(saved)
    assert prediction["score"] == out["probabilities"]["Positive"] > 0.5
    assert prediction["result"] == [
        {"from_name": "sentiment", "to_name": "review", "type": "choices",
         "value": {"choices": ["Positive"]}}]  # fmt: skip


def test_a_label_studio_export_read_without_its_field_says_which(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([_task(1, "fine", _annotation("Positive"))]))
    config = config_for(kind="classification", train_file=str(path), eval_file=str(path),
                        text_fields="review")  # fmt: skip
    with pytest.raises(UserError, match=r"has no field 'label' .* \(Label Studio's JSON export: "
                       r"--config.label_field=annotations for the classes chosen, or "
                       r"--config.spans_field=annotations for text spans\)$"):  # fmt: skip
        tasks.load_task("jsonl", config)


def test_a_multilabel_task_reads_every_chosen_class(tmp_path):
    exported = [
        _task(1, "goal in the election", _annotation("Sports", "Politics", name="topics")),
        _task(2, "a vote today", _annotation("Politics", name="topics")),
        _task(3, "nothing of note", _annotation(name="topics")),  # none applies
    ]
    path = tmp_path / "topics.json"
    path.write_text(json.dumps(exported))
    config = config_for(kind="multilabel", train_file=str(path), eval_file=str(path),
                        text_fields="review", label_field="annotations")  # fmt: skip
    task = tasks.load_task("jsonl", config)
    assert task.labels == ["Politics", "Sports"]
    assert [list(e.label) for e in task.train] == [[1, 1], [1, 0], [0, 0]]
    assert trainer._task_entry(task, config)["label_studio_names"] == ["topics", "review"]


MSRA_TEST = ZH_TASKS / "msra_ner" / "test.jsonl"


@pytest.mark.skipif(not MSRA_TEST.is_file(), reason="needs ../shared/data/zh/tasks/msra_ner")
def test_msra_ner_as_a_label_studio_export_gives_back_its_entities(tmp_path):
    """Real data: MSRA NER's test sentences written as Label Studio's export, each text behind
    an emoji and its spans counted in UTF-16 (as Label Studio counts them), come back as the
    same entities, character for character."""
    from bertjax.finetune import span_records
    from bertjax.finetune.scores import bio_chunks

    exported, expected = [], []
    for number, line in enumerate(MSRA_TEST.read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        text = "🙂" + "".join(record["tokens"])
        starts = [1 + sum(map(len, record["tokens"][:i])) for i in range(len(record["tokens"]))]
        entities = [(starts[first], starts[last] + len(record["tokens"][last]), label)
                    for label, first, last in bio_chunks(record["tags"])]  # fmt: skip
        result = [
            {"type": "labels", "from_name": "label", "to_name": "text",
             "value": {"start": start + 1, "end": end + 1, "text": text[start:end],
                       "labels": [label]}}  # UTF-16: the emoji is two units
            for start, end, label in entities
        ]  # fmt: skip
        exported.append({"id": number, "data": {"text": text}, "annotations": [{"result": result}]})
        expected.append(sorted([start, end, label] for start, end, label in entities))
    path = tmp_path / "msra.json"
    path.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    config = config_for(kind="tagging", train_file=str(path), eval_file=str(path),
                        spans_field="annotations")  # fmt: skip
    task = tasks.load_task("jsonl", config)
    assert len(task.train) == len(exported) == 4631
    texts = [t["data"]["text"] for t in exported]
    back = [
        sorted(span_records.predicted_spans(text, [task.labels[t] for t in example.tags]))
        for example, text in zip(task.train, texts, strict=True)
    ]
    assert back == expected
