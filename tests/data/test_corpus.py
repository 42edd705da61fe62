"""Tests for bertjax/data/corpus.py: formats, globbing, fingerprints and user errors."""

import gzip
import json
import shutil

import pytest

from bertjax.data import corpus
from bertjax.errors import UserError
from configs.base import SAMPLE_CORPUS


def _write_jsonl(path, records, compress=False):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_and_gz_and_custom_field(tmp_path):
    _write_jsonl(
        tmp_path / "a.jsonl", [{"text": "First doc."}, {"text": "  "}, {"text": "Second."}]
    )
    _write_jsonl(tmp_path / "b.jsonl.gz", [{"body": "Gz doc.", "text": 3}], compress=True)
    assert list(corpus.read_documents(str(tmp_path / "a.jsonl"))) == ["First doc.", "Second."]
    assert list(corpus.read_documents(str(tmp_path / "b.jsonl.gz"), text_field="body")) == [
        "Gz doc."
    ]


def test_blank_lines_between_json_records_are_ignored(tmp_path):
    (tmp_path / "a.json").write_text('{"text": "x"}\n\n   \n{"text": "y"}\n', encoding="utf-8")
    assert list(corpus.read_documents(str(tmp_path / "a.json"))) == ["x", "y"]


def test_txt_format_one_sentence_per_line(tmp_path):
    (tmp_path / "c.txt").write_text(
        "Sentence one.\nSentence two\n\n\nDoc two only line.\n  \nDoc three.\n", encoding="utf-8"
    )
    with gzip.open(tmp_path / "d.txt.gz", "wt", encoding="utf-8") as f:
        f.write("Gz line a.\nGz line b.\n")
    docs = list(corpus.read_documents(f"{tmp_path}/c.txt,{tmp_path}/d.txt.gz"))
    assert docs == [
        "Sentence one.\n\nSentence two",
        "Doc two only line.",
        "Doc three.",
        "Gz line a.\n\nGz line b.",
    ]


def test_globs_are_sorted_and_deduplicated(tmp_path):
    for name in ["b.jsonl", "a.jsonl", "c.jsonl"]:
        _write_jsonl(tmp_path / name, [{"text": name}])
    files = corpus.resolve_files([f"{tmp_path}/*.jsonl", str(tmp_path / "a.jsonl")])
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    docs = list(corpus.read_documents(f"{tmp_path}/c.jsonl, {tmp_path}/*.jsonl"))
    assert docs == ["a.jsonl", "b.jsonl", "c.jsonl"]


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 ok.\n")
    assert list(corpus.read_documents(str(tmp_path / "bad.txt"))) == ["caf\ufffd ok."]


def test_embedded_sample_corpus():
    docs = list(corpus.read_documents(SAMPLE_CORPUS))
    assert len(docs) == 126
    assert 3_000_000 < sum(map(len, docs)) < 3_600_000


def test_fingerprint_tracks_content_not_location(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [{"text": "one"}])
    first = corpus.corpus_fingerprint([str(path)])
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(path, moved / "a.jsonl")
    assert corpus.corpus_fingerprint([str(moved / "a.jsonl")]) == first
    _write_jsonl(path, [{"text": "two"}])
    assert corpus.corpus_fingerprint([str(path)]) != first
    assert len(first) == 64


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("missing.jsonl", "matched no files"),
        ("*.nothing.jsonl", "matched no files"),
        ("", "no corpus given"),
    ],
)
def test_missing_files_raise_user_error(tmp_path, pattern, message):
    with pytest.raises(UserError, match=message):
        corpus.resolve_files(str(tmp_path / pattern) if pattern else pattern)


def test_unsupported_suffix_and_directory(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="unsupported suffix.*jsonl"):
        list(corpus.read_documents(str(tmp_path / "data.csv")))
    with pytest.raises(UserError, match="is a directory"):
        corpus.resolve_files(str(tmp_path))


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"text": "ok"}', "{not json"], r"bad\.jsonl:2: invalid JSON"),
        (
            ['{"text": "ok"}', "", '["a", "list"]'],
            r"bad\.jsonl:3: expected a JSON object, got list",
        ),
        (['{"body": "x"}'], r"bad\.jsonl:1: JSON object has no field 'text' \(fields: body\)"),
        (['{"text": null}'], r"bad\.jsonl:1: field 'text' is NoneType, not a string"),
    ],
)
def test_bad_json_lines_name_file_and_line(tmp_path, lines, message):
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        list(corpus.read_documents(str(tmp_path / "bad.jsonl")))
    assert "\n" not in str(info.value)


def test_corrupt_gzip_raises_user_error(tmp_path):
    (tmp_path / "x.jsonl.gz").write_bytes(b"this is not gzip")
    with pytest.raises(UserError, match="cannot read corpus file"):
        list(corpus.read_documents(str(tmp_path / "x.jsonl.gz")))
