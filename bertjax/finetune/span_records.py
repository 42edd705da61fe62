"""Tagging data annotated as character spans of a text, as annotation tools export it and as
CLUENER 2020 ships, read as words and BIO tags (`--config.spans_field`).

Four shapes of the spans field are read:
- a list of [start, end, label] (doccano's JSONL export; end exclusive);
- a list of objects with start/end (or start_offset/end_offset) and label (doccano's newer
  export; end exclusive), or labels, a list of one (Label Studio's JSON-MIN export);
- Label Studio's JSON export, a task per record: `annotations`, each a `result` list of
  {"type": "labels", "value": {start, end, text, labels}}, the text in the task's `data` object
  (`label_studio`: the newest annotation not cancelled; a task with none is left out);
- an object {label: {entity text: [[start, end], ...]}} (CLUENER 2020; end inclusive, each span
  checked against its entity text).
A span that quotes its text (Label Studio's "text") is checked against it. Label Studio counts
offsets in UTF-16 code units, as JavaScript does, so after an emoji or another character outside
the Basic Multilingual Plane they run ahead of Python's; a quoted span found at its offsets read
as UTF-16 is moved to its characters.
The text is split into words as BERT's basic tokenizer splits it (`data.basic_split`: runs
between whitespace, each punctuation mark and each CJK ideograph alone), so a Chinese text is
tagged per character;
a span tags every word it overlaps (B- on the first, I- on the rest). A span overlapping one
tagged before (nested entities: BIO cannot hold both) is left out, and counted.
"""

from __future__ import annotations

from bertjax.data import basic_split
from bertjax.errors import UserError
from bertjax.finetune import label_studio
from bertjax.finetune.records import field_value, text_value
from bertjax.finetune.scores import bio_chunks


def text_words(text: str) -> list[tuple[int, int]]:
    """(character start, end exclusive) of each word of `text`, as BERT splits it."""
    return basic_split.word_spans(text)


def tagged_record(
    record: dict, text_field: str, spans_field: str, source: str, number: int
) -> tuple[dict | None, int]:
    """(the record with "tokens" (its text's words) and "tags" (BIO), the number of spans left
    out as overlapping another); (None, 0) for a Label Studio task nobody annotated. UserError
    naming the record for spans of another shape or outside the text."""
    where = f"record {number + 1} of {source}"
    view = label_studio.flattened(record)
    text = text_value(field_value(view, text_field, source, where), text_field, where)
    value = field_value(view, spans_field, source, where)
    if label_studio.is_annotations(view, value):
        value = label_studio.newest_values(value, label_studio.SPANS)
        if value is None:
            return None, 0
    spans = spans_of(value, text, spans_field, where)
    words = text_words(text)
    tags, skipped = ["O"] * len(words), 0
    for start, end, label in sorted(spans, key=lambda span: (span[0], -span[1])):
        covered = [i for i, (a, b) in enumerate(words) if a < end and start < b]
        if not covered or any(tags[i] != "O" for i in covered):
            skipped += bool(covered)
            continue
        tags[covered[0]] = f"B-{label}"
        for i in covered[1:]:
            tags[i] = f"I-{label}"
    tokens = [text[a:b] for a, b in words]
    return record | {"tokens": tokens, "tags": tags}, skipped


def spans_of(value, text: str, field: str, where: str) -> list[tuple[int, int, str]]:
    """(start, end exclusive, label) of each span in `value`, in one of the shapes above."""
    if isinstance(value, dict):
        spans = _cluener_spans(value, text, field, where)
    elif isinstance(value, list):
        spans = [_quoted_span(_span(item, field, where), text, where) for item in value]
    else:
        spans = None
    if spans is None:
        raise UserError(
            f"{where}: {field!r} is not a list of [start, end, label] spans, of objects with "
            "start, end and label, Label Studio's annotations or CLUENER's {label: {entity: "
            "[[start, end]]}}; fix the record or name the spans' field with --config.spans_field"
        )
    for start, end, label in spans:
        if not 0 <= start < end <= len(text):
            problem = f"outside its text of {len(text)} characters"
            if end <= start:
                problem = "empty" if start == end else "reversed: its end before its start"
            raise UserError(
                f"{where}: the {label} span [{start}, {end}) is {problem}; fix the record"
            )
    return spans


def _span(item, field: str, where: str) -> tuple[int, int, str, str | None]:
    """(start, end, label, the text it quotes or None) of one span item."""
    quoted = None
    if isinstance(item, dict):  # Label Studio's JSON-MIN export: "labels", a list of one
        start = item.get("start_offset", item.get("start"))
        end = item.get("end_offset", item.get("end"))
        labels, quoted = item.get("labels"), item.get("text")
        one = labels[0] if isinstance(labels, list) and len(labels) == 1 else None
        item = [start, end, item.get("label", one)]
    if (
        isinstance(item, list)
        and len(item) == 3
        and all(isinstance(x, int) and not isinstance(x, bool) for x in item[:2])
        and isinstance(item[2], str)
    ):
        return item[0], item[1], item[2], quoted if isinstance(quoted, str) else None
    raise UserError(
        f"{where}: a span of {field!r} is {item!r}, not [start, end, label] (or an object with "
        "start, end and label); fix the record"
    )


def _quoted_span(span: tuple, text: str, where: str) -> tuple[int, int, str]:
    """(start, end, label) of `span`, checked against the text it quotes (if any): offsets
    counted in UTF-16 code units are moved to characters; another mismatch is a UserError."""
    start, end, label, quoted = span
    if quoted is None or text[start:end] == quoted:
        return start, end, label
    moved = _utf16_to_characters(text, start, end)
    if moved and text[moved[0] : moved[1]] == quoted:
        return moved[0], moved[1], label
    raise UserError(
        f"{where}: the {label} span [{start}, {end}) quotes {quoted!r}, where the text has "
        f"{text[start:end]!r}; fix the record"
    )


def _utf16_to_characters(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The character offsets of UTF-16 offsets `start`, `end` of `text`; None where either
    falls inside a surrogate pair or past the text."""
    characters, units = {}, 0
    for i, char in enumerate(text):
        characters[units] = i
        units += 2 if ord(char) > 0xFFFF else 1
    characters[units] = len(text)
    if start not in characters or end not in characters:
        return None
    return characters[start], characters[end]


def _cluener_spans(value: dict, text: str, field: str, where: str) -> list | None:
    """CLUENER's {label: {entity: [[start, end inclusive], ...]}} as spans, each checked
    against its entity text; None for another kind of object."""
    spans = []
    for label, entities in value.items():
        if not isinstance(entities, dict):
            return None
        for entity, places in entities.items():
            for place in places if isinstance(places, list) else [None]:
                if not (isinstance(place, list) and len(place) == 2) or not all(
                    isinstance(x, int) and not isinstance(x, bool) for x in place
                ):
                    return None
                start, end = place[0], place[1] + 1
                if text[start:end] != entity:
                    raise UserError(
                        f"{where}: {field!r} puts {entity!r} ({label}) at [{place[0]}, "
                        f"{place[1]}], where the text has {text[start:end]!r}; fix the record"
                    )
                spans.append((start, end, label))
    return spans


def predicted_spans(text: str, tags: list[str]) -> list[list]:
    """[start, end exclusive, label] of each chunk of the tags predicted for `text`'s words
    (`text_words`), in the doccano shape, in text order."""
    words = text_words(text)
    chunks = sorted(bio_chunks(tags), key=lambda chunk: chunk[1])
    return [[words[first][0], words[last][1], label] for label, first, last in chunks]
