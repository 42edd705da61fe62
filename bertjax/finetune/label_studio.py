"""Label Studio's task JSON: what its JSON export gives to fine-tune on, and the pre-annotations
`bertjax predict` gives back.

A task is {"data": {field: value, ...}, "annotations": [...], ...}. Its data fields are read as
a record's own (`flattened`). Each annotation holds a `result` list; a result has a `type`
("labels": a span of text, `value` {start, end, text, labels}; "choices": a class, `value`
{choices}) and names the labeling config's tags it belongs to (`from_name`: the Labels or
Choices tag, `to_name`: the Text tag). A task is read from its newest annotation not cancelled,
one example per task; a task with none is unlabelled and left out by the caller. A task's
`predictions` (pre-annotations) have the annotations' shape plus a `model_version`.
"""

from __future__ import annotations

from bertjax.errors import UserError

# What a missing field's error adds for a task of Label Studio's export.
EXPORT_HINT = (
    " (Label Studio's JSON export: --config.label_field=annotations for the classes chosen, or"
    " --config.spans_field=annotations for text spans)"
)
SPANS, CLASSES = "labels", "choices"  # result types: a text span's labels, a task's classes
# The tag names of Label Studio's named-entity template (<Labels name="label" toName="text">),
# for the pre-annotations of a model fine-tuned on other span files.
NER_NAMES = ("label", "text")


def is_task(record: dict) -> bool:
    """Whether `record` is a Label Studio task (its fields in a `data` object)."""
    return isinstance(record.get("data"), dict)


def flattened(record: dict) -> dict:
    """A task's data fields beside its own (its own win); another record as it is."""
    return record["data"] | record if is_task(record) else record


def is_annotations(record: dict, value) -> bool:
    """Whether `value`, a field of `record`, is a task's annotations (none: unannotated)."""
    return (
        is_task(record)
        and isinstance(value, list)
        and all(isinstance(a, dict) and "result" in a for a in value)
    )


def newest_values(annotations: list, result_type: str) -> list | None:
    """The `value`s of the results of `result_type` in the newest annotation not cancelled
    (created_at; the last listed among equals); None where there is no such annotation."""
    kept = [a for a in annotations if not (a.get("was_cancelled") or a.get("skipped"))]
    if not kept:
        return None
    newest = max(reversed(kept), key=lambda a: str(a.get("created_at", "")))
    return [r.get("value") for r in newest.get("result") or [] if _of_type(r, result_type)]


def chosen(annotations: list, multilabel: bool, field: str, where: str) -> str | list | None:
    """The class (a list of them: `multilabel`) chosen in the newest annotation not cancelled;
    None where there is none. UserError for a class task given several or none."""
    values = newest_values(annotations, CLASSES)
    if values is None:
        return None
    choices = [c for value in values if isinstance(value, dict) for c in value.get("choices", [])]
    if not all(isinstance(c, str) for c in choices):
        raise UserError(
            f"{where}: {field!r} has choices that are not text: {choices}; fix the task"
        )
    if multilabel:
        return choices
    if len(choices) != 1:
        raise UserError(
            f"{where}: the newest annotation in {field!r} chooses {len(choices)} classes "
            f"{choices}, not one; fix the task, or fine-tune with --config.kind=multilabel"
        )
    return choices[0]


def with_chosen_classes(
    records: list[dict], field: str, multilabel: bool, source: str
) -> tuple[list[dict], int]:
    """(the records, those whose `field` holds a task's annotations with the class(es) chosen in
    its place (`chosen`), the number of tasks left out as unannotated). Other records pass as
    they are."""
    kept, unannotated = [], 0
    for number, record in enumerate(records, 1):
        value = record.get(field)
        if not is_annotations(record, value):
            kept.append(record)
            continue
        label = chosen(value, multilabel, field, f"record {number} of {source}")
        if label is None:
            unannotated += 1
        else:
            kept.append(record | {field: label})
    return kept, unannotated


def first_tag_names(records: list[dict], field: str, result_type: str) -> tuple[str, ...]:
    """`tag_names` of the first of `records` that has them; () where none is a task."""
    for record in records:
        if names := tag_names(record, field, result_type):
            return names
    return ()


def tag_names(record: dict, field: str, result_type: str) -> tuple[str, str] | None:
    """(from_name, to_name) of the first `result_type` result in a task's annotations: the
    labeling config's tags, which pre-annotations must name; None for another record."""
    annotations = record.get(field)
    if not is_annotations(record, annotations):
        return None
    for annotation in annotations:
        for result in annotation.get("result") or []:
            names = [result.get(key) for key in ("from_name", "to_name")]
            if _of_type(result, result_type) and all(isinstance(n, str) for n in names):
                return names[0], names[1]
    return None


def span_prediction(
    text: str, spans: list[list], names: tuple[str, str], model_version: str
) -> dict:
    """A pre-annotation (one entry of a task's "predictions") of `spans` ([start, end, label],
    characters) of `text`."""
    values = [
        {"start": start, "end": end, "text": text[start:end], "labels": [label]}
        for start, end, label in spans
    ]
    return _prediction(SPANS, values, names, model_version)


def class_prediction(
    classes: list[str], names: tuple[str, str], model_version: str, score: float
) -> dict:
    """A pre-annotation choosing `classes`, with the model's `score` for them (Label Studio
    sorts tasks by it)."""
    prediction = _prediction(CLASSES, [{"choices": classes}], names, model_version)
    return prediction | {"score": score}


def _prediction(result_type: str, values: list[dict], names: tuple, model_version: str) -> dict:
    from_name, to_name = names
    result = [
        {"from_name": from_name, "to_name": to_name, "type": result_type, "value": value}
        for value in values
    ]
    return {"model_version": model_version, "result": result}


def _of_type(result, result_type: str) -> bool:
    """A result of `result_type` (a result without a type: a span's, as JSON-MIN writes it)."""
    return isinstance(result, dict) and result.get("type", SPANS) == result_type
