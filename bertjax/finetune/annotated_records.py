"""Task records from annotation tools' exports, made readable as any task file's: span
annotations as words and BIO tags (`span_records`), Label Studio tasks' chosen classes
(`label_studio`), Prodigy's rejected or ignored answers left out; what is left out is counted
in a warning."""

from __future__ import annotations

from absl import logging

from bertjax.finetune import label_studio, span_records


def readable(raw: dict[str, list[dict]], spec, sources: dict[str, str]) -> tuple[dict, tuple]:
    """(`raw`'s records per split as the spec's kind reads them, the Label Studio tag names of
    the training tasks: () for other data). `spec`: the task's `tasks.TaskSpec`."""
    raw = {split: _accepted(records, sources[split]) for split, records in raw.items()}
    if spec.kind == "tagging" and spec.spans_field:
        names = label_studio.first_tag_names(raw["train"], spec.spans_field, label_studio.SPANS)
        tagged = {split: _tagged_from_spans(rs, spec, sources[split]) for split, rs in raw.items()}
        return tagged, names
    if spec.kind in ("classification", "multilabel"):
        names = label_studio.first_tag_names(raw["train"], spec.label_field, label_studio.CLASSES)
        chosen = {split: _chosen_classes(rs, spec, sources[split]) for split, rs in raw.items()}
        return chosen, names
    return raw, ()


def prodigy_rejected(record: dict) -> bool:
    """Whether `record` is a Prodigy annotation (its `_task_hash`) the annotator rejected or
    ignored (`answer`): its label or spans are a suggestion turned down, not the truth."""
    return "_task_hash" in record and record.get("answer") in ("reject", "ignore")


def _tagged_from_spans(raw: list[dict], spec, source: str) -> list[dict]:
    """Span-annotated records as words and BIO tags (`span_records`) in the spec's token and tag
    fields; logs how many spans overlapped another and were left out, and how many Label Studio
    tasks had no annotation (left out: they are unlabelled, not entity-free)."""
    tagged, skipped, unannotated = [], 0, 0
    for number, record in enumerate(raw):
        words, left_out = span_records.tagged_record(
            record, spec.text_fields[0], spec.spans_field, source, number
        )
        if words is None:
            unannotated += 1
            continue
        fields = {spec.tokens_field: words["tokens"], spec.tags_field: words["tags"]}
        tagged.append(record | fields)
        skipped += left_out
    if skipped:
        logging.warning("%s: %d spans overlap another and are left out (BIO holds one)",
                        source, skipped)  # fmt: skip
    _log_unannotated(source, unannotated)
    return tagged


def _chosen_classes(raw: list[dict], spec, source: str) -> list[dict]:
    """Records whose label field holds Label Studio annotations with the class(es) chosen in
    place of them (`label_studio.with_chosen_classes`); logs how many were left out."""
    multilabel = spec.kind == "multilabel"
    chosen, unannotated = label_studio.with_chosen_classes(
        raw, spec.label_field, multilabel, source
    )
    _log_unannotated(source, unannotated)
    return chosen


def _accepted(split_records, source: str) -> list[dict]:
    """The records but Prodigy annotations rejected or ignored (`prodigy_rejected`),
    whose leaving out is logged."""
    kept, rejected = [], 0
    for record in split_records:
        if prodigy_rejected(record):
            rejected += 1
        else:
            kept.append(record)
    if rejected:
        logging.warning("%s: %d Prodigy annotations answered reject or ignore are left out",
                        source, rejected)  # fmt: skip
    return kept


def _log_unannotated(source: str, count: int) -> None:
    if count:
        logging.warning("%s: %d Label Studio tasks have no annotation (or only cancelled ones) "
                        "and are left out", source, count)  # fmt: skip
