"""Tests for bertjax/data/corpus.py: formats, globbing, fingerprints and user errors."""

import gzip
import json
import re
import shutil

import pytest

from bertjax.data import corpus
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.sentences import split_sentences
from bertjax.errors import UserError


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


def test_classic_mac_line_ends_end_lines(tmp_path):
    """A file whose lines end with a lone CR was one line: one document whatever its blank lines
    said (and NSP refused a corpus of one such file)."""
    (tmp_path / "mac.txt").write_bytes(b"First sentence.\rSecond one.\r\rNew doc.\rLast.\r")
    (tmp_path / "unix.txt").write_bytes(b"First sentence.\nSecond one.\n\nNew doc.\nLast.\n")
    for text_format in ("sentences", "lines"):
        mac = list(corpus.read_documents(str(tmp_path / "mac.txt"), text_format=text_format))
        unix = list(corpus.read_documents(str(tmp_path / "unix.txt"), text_format=text_format))
        assert mac == unix and len(mac) == 2
    (tmp_path / "book.txt").write_bytes(b"A sentence\rwrapped.\r\rA new paragraph\rhere.\r")
    (book,) = corpus.read_documents(str(tmp_path / "book.txt"), text_format="paragraphs")
    assert split_sentences(book) == ["A sentence wrapped.", "A new paragraph here."]


def test_txt_format_lines_keeps_each_line_one_sentence(tmp_path):
    """google-research/bert reads each line as one sentence; "sentences" (the default) also
    splits a line holding several, so a file of one paragraph per line works too."""
    (tmp_path / "g.txt").write_text(
        "Yahoo! Inc. reported record earnings. The stock rose.\nA second line.\n\n"
        "One line with a \x1e inside. It stays one.\n",
        encoding="utf-8",
    )
    path = str(tmp_path / "g.txt")
    split = [split_sentences(d) for d in corpus.read_documents(path)]
    assert split == [
        ["Yahoo!", "Inc. reported record earnings.", "The stock rose.", "A second line."],
        ["One line with a inside.", "It stays one."],  # the control character dropped
    ]
    given = [split_sentences(d) for d in corpus.read_documents(path, text_format="lines")]
    assert given == [
        ["Yahoo! Inc. reported record earnings. The stock rose.", "A second line."],
        ["One line with a inside. It stays one."],
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


def test_local_patterns_are_checked_quietly_and_remote_ones_left_to_the_run(tmp_path, caplog):
    """The command line's early check: resolve_files' errors for local patterns (the held-out
    corpus's naming its flag), no warning for a pattern another one covers, nothing listed for
    gs:// or tfds: sources, no corpus needed beside a prepared_dir."""
    from types import SimpleNamespace as Data

    (tmp_path / "a.txt").write_text("One sentence.\n")
    found = str(tmp_path / "a.txt")
    corpus.check_local_patterns(Data(corpus=f"{found},{tmp_path}/none*.txt", eval_corpus="",
                                     prepared_dir=""))  # fmt: skip
    assert "matched no files" not in caplog.text  # the run warns once, later
    with pytest.raises(UserError, match=r"'.*/none\.txt' matched no files.*--config\.eval_corpus"):
        corpus.check_local_patterns(Data(corpus=found, eval_corpus=f"{tmp_path}/none.txt",
                                         prepared_dir=""))  # fmt: skip
    with pytest.raises(UserError, match="no corpus given"):
        corpus.check_local_patterns(Data(corpus="", eval_corpus="", prepared_dir=""))
    corpus.check_local_patterns(Data(corpus="", eval_corpus="", prepared_dir=str(tmp_path)))
    # A prepared run never reads --config.corpus (a config's default may name other files).
    corpus.check_local_patterns(Data(corpus=f"{tmp_path}/none.txt", eval_corpus="",
                                     prepared_dir=str(tmp_path)))  # fmt: skip
    corpus.check_local_patterns(
        Data(
            corpus=f"gs://no-bucket/*.txt,{tmp_path}/none.txt",
            eval_corpus="tfds:wiki40b/en@validation",
            prepared_dir="",
        )
    )


def test_unsupported_suffix_and_directory(tmp_path):
    (tmp_path / "data.xml").write_text("<a/>\n")
    with pytest.raises(UserError, match="unsupported suffix.*jsonl"):
        list(corpus.read_documents(str(tmp_path / "data.xml")))
    with pytest.raises(UserError, match="is a directory"):
        corpus.resolve_files(str(tmp_path))


def _read(pattern, **kwargs):
    """(documents, reports) of read_documents."""
    reports = []
    docs = list(corpus.read_documents(pattern, reports=reports, **kwargs))
    return docs, reports


def test_bad_json_lines_are_skipped_and_counted_with_their_first_line(tmp_path):
    lines = [
        '{"text": "first"}',
        "{not json",
        '["a", "list"]',
        '{"body": "x"}',
        '{"text": null}',
        '{"text": "   "}',
        "",
        '{"text": "last"}',
        '{"body": "y"}',
    ]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, (report,) = _read(str(tmp_path / "bad.jsonl"))
    assert docs == ["first", "last"]
    assert report.documents == 2
    assert report.skipped == {
        "invalid JSON": 1,
        "lines not a JSON object": 1,
        "without field 'text'": 2,
        "with non-string 'text'": 1,
        "empty documents": 1,
    }
    summary = report.summary()
    assert summary.startswith("bad.jsonl: 2 documents; skipped ")
    assert "2 without field 'text' (first: line 4, fields: body)" in summary
    assert "1 invalid JSON (first: line 2, " in summary and "\n" not in summary


@pytest.mark.parametrize(
    "lines, message",
    [
        (["{not json"], r"bad\.jsonl: 0 documents; skipped 1 invalid JSON \(first: line 1"),
        (['{"body": "x"}'], r"1 without field 'text' \(first: line 1, fields: body\)"),
        (['{"text": null}'], r"1 with non-string 'text' \(first: line 1, NoneType\)"),
        (['{"text": ""}', "[1]"], r"1 empty documents .*1 lines not a JSON object"),
        # A JSON array, pretty-printed or on one line: said once, with the conversion.
        (
            ["[", '  {"text": "a b."},', '  {"text": "c d."}', "]"],
            r"skipped 1 JSON array files \(JSON Lines expected\) \(first: convert with jq -c "
            r"'\.\[\]' .*bad\.jsonl > bad\.jsonl\)",
        ),
        (['[{"text": "a b."}, {"text": "c d."}]'], r"skipped 1 JSON array files"),
    ],
)
def test_corpus_without_documents_is_a_one_line_user_error(tmp_path, lines, message):
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="has no documents") as info:
        list(corpus.read_documents(str(tmp_path / "bad.jsonl")))
    assert re.search(message, str(info.value))
    assert "\n" not in str(info.value)
    # The flag to fix: the text field when records lacked it, else the corpus.
    flag = "--config.text_field" if "without field" in message else "--config.corpus"
    assert str(info.value).endswith(f"check {flag}") or f"check {flag} (" in str(info.value)


def test_corrupt_and_truncated_gzip_are_skipped(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(b"this is not gzip")
    full = gzip.compress(
        "".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(2000)).encode()
    )
    (tmp_path / "b.jsonl.gz").write_bytes(full[: len(full) // 2])
    docs, (corrupt, truncated) = _read(f"{tmp_path}/*.jsonl.gz")
    assert corrupt.documents == 0 and corrupt.skipped["unreadable file"] == 1
    assert "BadGzipFile" in corrupt.first_place["unreadable file"]
    assert 0 < truncated.documents == len(docs) < 2000, "documents before the break are kept"
    assert docs[:2] == ["doc 0", "doc 1"]
    assert truncated.skipped["unreadable file"] == 1
    with pytest.raises(UserError, match=r"a\.jsonl\.gz: 0 documents; skipped 1 unreadable"):
        list(corpus.read_documents(str(tmp_path / "a.jsonl.gz")))


def test_empty_files_and_documents(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b"")
    (tmp_path / "c.txt").write_text("\n\n  \n\t\n", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text('{"text": ""}\n{"text": "kept."}\n', encoding="utf-8")
    docs, reports = _read(f"{tmp_path}/*")
    assert docs == ["kept."]
    assert [r.documents for r in reports] == [0, 0, 0, 1]
    assert reports[3].skipped == {"empty documents": 1}
    assert reports[0].summary() == "a.txt: 0 documents; no text in it"  # a warning, as skips
    with pytest.raises(UserError, match=r"no documents \(a\.txt: 0 documents; no text in it \| b"):
        list(corpus.read_documents(f"{tmp_path}/a.txt,{tmp_path}/b.jsonl,{tmp_path}/c.txt"))


def test_invalid_utf8_and_control_characters_are_repaired_and_counted(tmp_path):
    (tmp_path / "a.txt").write_bytes(
        b"caf\xe9 ok.\nfine line.\n\nbell\x07 and nul\x00 here.\n\n\x01\x02\x1b\n"
    )
    docs, (report,) = _read(str(tmp_path / "a.txt"))
    assert docs == ["caf\ufffd ok.\n\nfine line.", "bell and nul here."]
    assert report.repaired == {
        "lines with invalid UTF-8": 1,
        "documents with control characters": 2,
    }
    assert report.skipped == {"empty documents": 1}, "a document of control characters only"


def test_c1_control_characters_are_removed_and_counted(tmp_path):
    """U+0080-U+009F (NEL, CSI, ...: Latin-1 text read as UTF-8's neighbours) as C0's."""
    (tmp_path / "a.jsonl").write_text('{"text": "a\u0080b ok."}\n{"text": "\u0085\u009f"}\n')
    docs, (report,) = _read(str(tmp_path / "a.jsonl"))
    assert docs == ["ab ok."]
    assert report.repaired == {"documents with control characters": 2}
    assert report.skipped == {"empty documents": 1}


def test_a_lone_surrogate_is_removed_and_counted(tmp_path):
    """JSON may hold "\\ud83d" alone (a tweet cut mid-emoji): valid JSON, no UTF-8. It reached
    the tokenizer, whose tf.constant raised (vocab, prepare and train crashed); it is deleted as
    google-research/bert deletes it (category Cs is a control character there)."""
    (tmp_path / "a.jsonl").write_text('{"text": "cut \\ud83d here. and \\ud83d\\ude00 whole."}\n')
    docs, (report,) = _read(str(tmp_path / "a.jsonl"))
    assert docs == ["cut  here. and \U0001f600 whole."]
    assert report.repaired == {"documents with control characters": 1}


def test_a_10_mb_line(tmp_path):
    text = "word " * 2_000_000  # 10 MB, no sentence end
    (tmp_path / "big.jsonl").write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
    (tmp_path / "big.txt").write_text(text + "\n", encoding="utf-8")
    docs, reports = _read(f"{tmp_path}/big.*")
    assert [len(d) for d in docs] == [len(text), len(text.strip())]
    assert all(not r.skipped for r in reports)


def test_missing_file_or_empty_glob_next_to_real_files_is_skipped(tmp_path, caplog):
    _write_jsonl(tmp_path / "a.jsonl", [{"text": "real."}])
    patterns = f"{tmp_path}/missing.jsonl,{tmp_path}/a.jsonl,{tmp_path}/none/*.txt"
    assert list(corpus.read_documents(patterns)) == ["real."]
    assert "missing.jsonl' matched no files; skipped" in caplog.text
    assert "none/*.txt' matched no files; skipped" in caplog.text


def test_paragraph_text_format_is_one_document_per_file(tmp_path):
    (tmp_path / "book.txt").write_text(
        "It was a dark\nand stormy night. The rain\nfell.\n\nA new paragraph\nstarts here.\n",
        encoding="utf-8",
    )
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    docs, reports = _read(f"{tmp_path}/*.txt", text_format="paragraphs")
    assert len(docs) == 1 and [r.documents for r in reports] == [1, 0]
    assert split_sentences(docs[0]) == [
        "It was a dark and stormy night.",
        "The rain fell.",
        "A new paragraph starts here.",
    ]
    with pytest.raises(UserError, match="text_format='line' is unknown"):
        list(corpus.read_documents(str(tmp_path / "book.txt"), text_format="line"))
