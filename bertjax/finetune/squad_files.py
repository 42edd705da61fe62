"""SQuAD-style question-answering files: SQuAD v1.1 and 2.0 JSON, Hugging Face's JSON Lines and
Parquet layouts (one question a record) read as `QAExample`s, every malformed file, record or
field a one-line error; answers not found where they are said to start skipped and counted."""

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from absl import logging

from bertjax.data import corpus_files, text_encodings
from bertjax.errors import UserError
from bertjax.finetune import records
from bertjax.finetune.table_records import TABLE_SUFFIXES, table_records

_LAYOUT_HINT = (
    "expected SQuAD JSON (v1.1 or v2.0: {'data': [{'paragraphs': [...]}]}), or JSON Lines "
    "(Parquet, Arrow) with one {'id', 'question', 'context', 'answers': {'text', "
    "'answer_start'}} per line (row)"
)


@dataclasses.dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (answer text, character start in context)


def _field(record: dict, name: str, where: str, path: Path):
    if not isinstance(record, dict) or name not in record:
        raise UserError(f"{path}: {where} has no field {name!r}; {_LAYOUT_HINT}")
    return record[name]


def _answers(record: dict, where: str, path: Path, required: bool):
    """A record's "answers" value; an empty list when it has none and none are `required`."""
    if not required and isinstance(record, dict) and "answers" not in record:
        return []
    return _field(record, "answers", where, path)


def _squad_json_records(
    document: dict, path: Path, answers_required: bool = True
) -> Iterator[tuple[str, dict, list]]:
    """(place, record with id/question/context, [(text, start), ...]) of SQuAD v1.1 or 2.0
    JSON; a question marked ``is_impossible`` has no answers."""
    question_number = 0
    for article_number, article in enumerate(_field(document, "data", "the file", path), 1):
        paragraphs = _field(article, "paragraphs", f"article {article_number}", path)
        for paragraph_number, paragraph in enumerate(paragraphs, 1):
            where = f"paragraph {paragraph_number} of article {article_number}"
            context = _field(paragraph, "context", where, path)
            for question in _field(paragraph, "qas", where, path):
                question_number += 1
                where = f"question {question_number}"
                declared = [] if question.get("is_impossible") is True else None  # SQuAD 2.0
                answers = [
                    (_field(a, "text", where, path), _field(a, "answer_start", where, path))
                    for a in _answers(question, where, path, answers_required)
                ] if declared is None else declared  # fmt: skip
                yield where, {**question, "context": context}, answers


def _json_lines(text: str, path: Path) -> Iterator[tuple[str, dict]]:
    """(where, record) of each line of Hugging Face datasets' JSON Lines layout."""
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {line_number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: {where} is not JSON ({err.msg}); {_LAYOUT_HINT}") from None


def _hf_records(
    rows: Iterable[tuple[str, dict]], path: Path, answers_required: bool = True
) -> Iterator[tuple[str, dict, list]]:
    """The same triples from Hugging Face datasets' layout, one question a record (a JSON Lines
    line or a Parquet row)."""
    for where, record in rows:
        answers = _answers(record, where, path, answers_required) or {
            "text": [], "answer_start": []
        }  # fmt: skip
        texts = _field(answers, "text", where, path)
        starts = _field(answers, "answer_start", where, path)
        if len(texts) != len(starts):
            raise UserError(
                f"{path}: {where} has {len(texts)} answer texts but {len(starts)} "
                "answer_start values; give one start per text"
            )
        yield where, record, list(zip(texts, starts, strict=True))


def _delimited_questions(
    path: Path, answers_required: bool, encoding: str
) -> Iterator[tuple[str, dict, list]]:
    """The questions (id, question, context columns) of a CSV or TSV file to predict on; one to
    train or evaluate on is refused: a table cell holds no list of answers with offsets."""
    if answers_required:
        raise UserError(
            f"SQuAD file {str(path)!r} is a CSV/TSV table, whose cells hold no answers with "
            f"offsets; write it as JSON Lines or Parquet: {_LAYOUT_HINT}"
        )
    rows = records.delimited_records(path, str(path), encoding=encoding)
    for number, row in enumerate(rows, 1):
        yield f"row {number}", row, []  # an answers column, if any, is not read


def read_squad(
    path: str | os.PathLike, *, answers_required: bool = True, encoding: str = ""
) -> list[QAExample]:
    """Examples of a SQuAD v1.1 or 2.0 JSON file, a Hugging Face JSON Lines file (``.jsonl``,
    or any file that does not parse as one SQuAD JSON document) or a Hugging Face Parquet file;
    questions to predict on may also be a CSV/TSV table (id, question, context columns).

    An answer whose text is not found at its ``answer_start`` in the context is skipped, and so
    is a question left with no answer; both are counted in one log line. Raises UserError for a
    missing or malformed file, a missing field, or a file with no usable question. Questions to
    answer (`answers_required=False`, `bertjax predict`) may have no answers; all are kept.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"SQuAD file {str(path)!r} does not exist; pass an existing .json/.jsonl/.parquet"
        )
    if path.suffix.lower() in corpus_files.DELIMITED_SUFFIXES:
        return _qa_examples(_delimited_questions(path, answers_required, encoding), path, False)
    if path.suffix.lower() in TABLE_SUFFIXES:  # Hugging Face's layout, one question a row
        rows = ((f"row {n}", r) for n, r in enumerate(table_records(path, str(path)), 1))
        return _qa_examples(_hf_records(rows, path, answers_required), path, answers_required)
    try:
        text = path.read_text(encoding=text_encodings.text_encoding(path, encoding))
    except UnicodeDecodeError:
        what = f"{encoding} (its --config.text_encoding)" if encoding else "UTF-8"
        raise UserError(f"SQuAD file {str(path)!r} is not {what} text; {_LAYOUT_HINT}") from None
    records = None
    if path.suffix.lower() != ".jsonl":
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and "data" in document:
            records = _squad_json_records(document, path, answers_required)
    if records is None:
        records = _hf_records(_json_lines(text, path), path, answers_required)
    return _qa_examples(records, path, answers_required)


def _qa_examples(records, path: Path, answers_required: bool) -> list[QAExample]:
    """The QAExamples of (where, record, answers) triples; unusable answers skipped, counted. A
    question without answers (SQuAD 2.0's unanswerable ones) is kept with none."""
    examples, skipped, unanswerable = [], collections.Counter(), 0
    for where, record, answers in records:
        question_id = str(_field(record, "id", where, path))
        unanswerable += not answers
        question = _field(record, "question", where, path)
        context = _field(record, "context", where, path)
        usable = tuple(
            (answer, start)
            for answer, start in answers
            if isinstance(start, int)
            and start >= 0
            and answer
            and context[start : start + len(answer)] == answer
        )
        skipped["answers not found at answer_start"] += len(answers) - len(usable)
        if answers and not usable and answers_required:
            skipped["questions without a usable answer"] += 1
            continue
        examples.append(QAExample(question_id, question, context, usable))
    if skipped.total():
        logging.warning("%s: skipped %s", path, dict(skipped))
    if not examples and skipped:  # the layout was read: its answers are off
        raise UserError(
            f"SQuAD file {str(path)!r} has no usable question (skipped {dict(skipped)}); each "
            "answer's text must stand at its answer_start (a character offset) in the context"
        )
    if not examples:
        raise UserError(f"SQuAD file {str(path)!r} has no usable question; {_LAYOUT_HINT}")
    logging.info("Read %d questions from %s", len(examples), path)
    if unanswerable and answers_required:
        logging.info("%s: %d questions have no answer (SQuAD 2.0)", path, unanswerable)
    return examples
