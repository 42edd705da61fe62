"""Multiple-choice records (SWAG, HellaSwag, RACE, COPA, ARC, CommonsenseQA, C3): a context, two
or more choices, and which choice is right.

A record's context is its text fields (`--config.text_fields`): the first is the first segment
of every choice's row, the others go before each choice in the second segment, as Hugging Face's
run_swag builds SWAG's rows (sent1 | sent2 + ending) and RACE's are built (article | question +
option; a question's blank, "_", filled by the option). The choices are one field holding a JSON
list of texts (`--config.choices_field=choices`, the default) or one field per choice
(`--config.choices_field=ending0,ending1,ending2,ending3`, SWAG's columns), or Hugging Face's
struct of ARC, CommonsenseQA and OpenBookQA, `{"text": [...], "label": ["A", "B", ...]}`. The
label is the right choice: its name in that struct's "label" list (ARC's answerKey, "1"-"4" in
some questions) or the name of its field (TFDS's super_glue/copa: "choice1"), else its index
from 0 (a JSON number or digits: SWAG, COPA; CSV/TSV files give every value as text), its letter
(A = the first: RACE) or its text (C3). A context field may be a list of texts (C3's dialogue
turns in Hugging Face's clue/c3), joined by spaces.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from typing import TYPE_CHECKING

from bertjax.errors import UserError
from bertjax.finetune.records import NOT_TEXT, TEXT_KINDS, field_value, text_value

if TYPE_CHECKING:  # tasks imports this module
    from bertjax.finetune.tasks import TaskSpec

# A cloze blank of RACE's questions ("The author thinks _ ."): underscores standing alone.
_BLANK = re.compile(r"(?<!\w)_+(?!\w)")
KIND = "multiple_choice"
DEFAULT_CHOICES_FIELD = "choices"
# The kinds whose head reads the pooled [CLS] features (or their mean: `--config.pooling`).
POOLED_KINDS = (*TEXT_KINDS, KIND)


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
    texts: tuple[str, ...]  # the context: the first segment, then what precedes each choice
    choices: tuple[str, ...]
    label: int  # index of the right choice (0 where the answer is not known: predict's input)


def parse_choice_fields(value: str) -> tuple[str, ...]:
    """`--config.choices_field`: one field (a JSON list of choices) or comma-separated fields
    (one choice each); "" = "choices"."""
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    return names or (DEFAULT_CHOICES_FIELD,)


def choice_example(spec: TaskSpec, record: dict, source: str, number: int) -> ChoiceExample:
    """Record `number` (from 0) of `source` as a ChoiceExample; UserError naming the record for
    a missing field, fewer than two choices, or a label that names no choice."""
    where = f"record {number + 1} of {source}"
    texts = context_texts(record, spec.text_fields, source, where)
    choices, names = choices_of(record, spec.choice_fields, source, where)
    label = field_value(record, spec.label_field, source, where)
    return ChoiceExample(
        texts, choices, choice_index(label, choices, spec.label_field, where, names)
    )


def context_texts(record: dict, fields, source: str, where: str) -> tuple[str, ...]:
    """The context fields' texts; a list of texts (C3's turns) is joined by spaces."""
    texts = []
    for name in fields:
        value = field_value(record, name, source, where)
        if isinstance(value, list):
            value = " ".join(text_value(v, f"{name}[{i}]", where) for i, v in enumerate(value))
        texts.append(text_value(value, name, where))
    return tuple(texts)


def choices_of(
    record: dict, fields: tuple[str, ...], source: str, where: str,
    flag: str = "--config.choices_field",
) -> tuple[str, ...]:  # fmt: skip
    """(choices, their names) of the record: the texts of the list field `fields[0]` (or of its
    struct's "text" list, the names its "label" list), or of each field (the names those
    fields'; empty last fields dropped: a question with fewer choices than the columns). An
    empty choice elsewhere is refused; `flag` names the fields, for the error of one that is
    not a list."""
    names = ()
    if len(fields) > 1:  # their names name them too (TFDS's COPA labels "choice1", "choice2")
        choices = tuple(text_value(field_value(record, f, source, where), f, where) for f in fields)
        while choices and not choices[-1].strip():  # empty last cells: a question with fewer
            choices = choices[:-1]
        names = fields[: len(choices)]
    else:
        (name,) = fields
        value = field_value(record, name, source, where)
        if isinstance(value, dict) and isinstance(value.get("text"), list):  # ARC's struct
            names = tuple(str(v) for v in value.get("label") or ())
            name, value = f"{name}.text", value["text"]
        if not isinstance(value, list):
            shown = NOT_TEXT.get(type(value)) or f"a {type(value).__name__}"
            raise UserError(
                f"{where}: {name!r} is {shown}, not a JSON list of the choices; name one field "
                f"per choice with {flag}=A,B,... if they are separate"
            )
        choices = tuple(text_value(v, f"{name}[{i}]", where) for i, v in enumerate(value))
    if len(choices) < 2:
        raise UserError(f"{where} has {len(choices)} choice(s); a question needs at least 2")
    if empty := [i for i, choice in enumerate(choices) if not choice.strip()]:
        raise UserError(
            f"{where}: choice {empty[0]} is empty (only a table's last cells may be, for a "
            "question with fewer choices); give its text or drop the record"
        )
    return choices, names if len(names) == len(choices) else ()


def choice_index(
    label, choices: tuple[str, ...], label_field: str, where: str, names: tuple[str, ...] = ()
) -> int:
    """The right choice's index from a label that is its name in `names`, its index (a number,
    or digits as CSV gives it), its letter (A, B, ...) or its text; UserError when it names
    none of them."""
    letters = string.ascii_uppercase[: len(choices)]
    if isinstance(label, str) and label.strip() in names:
        return names.index(label.strip())
    if isinstance(label, str) and label.strip().isdigit():
        label = int(label.strip())
    if isinstance(label, float) and label.is_integer():  # 1.0: a table column with nulls
        label = int(label)
    if isinstance(label, int) and not isinstance(label, bool):
        if 0 <= label < len(choices):
            return label
    elif isinstance(label, str) and label in choices:
        return choices.index(label)
    elif isinstance(label, str) and len(label.strip()) == 1 and label.strip() in letters:
        return letters.index(label.strip())
    shown = json.dumps(label, ensure_ascii=False)
    raise UserError(
        f"{where}: {label_field!r} is {shown}, which names none of its {len(choices)} choices; "
        f"give the right one's index (0-{len(choices) - 1}), letter "
        f"(A-{letters[-1]}) or text"
    )


def second_segment(example: ChoiceExample, choice: str) -> str:
    """The text after [SEP] in `choice`'s row: the context fields after the first, then the
    choice, joined by spaces; where those fields hold a blank ("_" standing alone: RACE's cloze
    questions), the choice fills the blanks instead, as the RACE processor of Hugging Face's
    multiple-choice examples does."""
    rest = " ".join(example.texts[1:])
    if _BLANK.search(rest):
        return _BLANK.sub(lambda _: choice, rest)
    return " ".join((*example.texts[1:], choice))
