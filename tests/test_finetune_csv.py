"""Fine-tuning task files as people save them, read as the same records written as JSON Lines
(the long-tested reader) are: CSV with Excel's quoting and byte-order mark, TSV unquoted as
google-research/bert reads GLUE's .tsv files, UTF-16 from Windows tools, JSON arrays."""

import csv
import json

import pytest

from bertjax.errors import UserError
from bertjax.finetune import records, tasks
from tests.test_finetune import config_for, write_jsonl

ROWS = [
    {"text": 'a "moving" film, and funny', "label": "pos"},
    {"text": "two lines\nin one review", "label": "neg"},
    {"text": "plain", "label": "pos"},
]


def _load(path, kind="classification", **fields):
    config = config_for(kind=kind, train_file=str(path), eval_file=str(path), **fields)
    return tasks.load_task("jsonl", config)


def test_csv_with_quotes_commas_newlines_and_a_byte_order_mark(tmp_path):
    with open(tmp_path / "train.csv", "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, ["label", "text"])  # Excel's dialect, as Excel saves it
        writer.writeheader()
        writer.writerows(ROWS)
    expected = _load(write_jsonl(tmp_path / "train.jsonl", ROWS))
    got = _load(tmp_path / "train.csv")
    assert got.train == expected.train and got.labels == expected.labels == ["neg", "pos"]


def test_tsv_is_unquoted_as_glue_files_are(tmp_path):
    lines = ["sentence\tlabel", 'it \'s a "great" film\t1', '"quoted at the start\t0', "", "x\t1"]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"sentence": line.split("\t")[0], "label": line.split("\t")[1]}
            for line in lines[1:] if line]  # fmt: skip
    expected = _load(write_jsonl(tmp_path / "train.jsonl", rows), text_fields="sentence")
    got = _load(tmp_path / "train.tsv", text_fields="sentence")
    assert got.train == expected.train and len(got.train) == 3
    assert got.train[1].texts == ('"quoted at the start',)


def test_blank_and_whitespace_lines_are_not_rows(tmp_path):
    """Blank lines before the header, between rows or of spaces and tabs alone are skipped (a
    whitespace line was a row of 1 value, and before the header the header of none); a file
    of them alone has no record."""
    lines = ["", "  ", "text\tlabel", "good\t1", " \t ", "\t", "bad\t0", "   "]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(records.delimited_records(tmp_path / "train.tsv", "train.tsv"))
    assert rows == [{"text": "good", "label": "1"}, {"text": "bad", "label": "0"}]
    (tmp_path / "blank.txt").write_text("\n   \n\t\n  \n", encoding="utf-8")
    assert list(records.delimited_records(tmp_path / "blank.txt", "blank.txt")) == []


def test_excel_unicode_text_and_windows_json_lines(tmp_path):
    """Excel's "Save as Unicode Text" writes UTF-16 LE TSV with a byte-order mark; Windows
    editors put a UTF-8 byte-order mark before JSON Lines. Before, both were refused (garbled
    field names; line 1 "not valid JSON")."""
    expected = _load(write_jsonl(tmp_path / "train.jsonl", ROWS[::2]))
    tsv = "text\tlabel\r\n" + "".join(f"{r['text']}\t{r['label']}\r\n" for r in ROWS[::2])
    (tmp_path / "excel.tsv").write_bytes(tsv.encode("utf-16"))
    utf8_bom = b"\xef\xbb\xbf" + (tmp_path / "train.jsonl").read_bytes()
    (tmp_path / "windows.jsonl").write_bytes(utf8_bom)
    utf16 = (tmp_path / "train.jsonl").read_text(encoding="utf-8").encode("utf-16")
    (tmp_path / "utf16.jsonl").write_bytes(utf16)
    assert (tmp_path / "excel.tsv").read_bytes()[:2] == b"\xff\xfe"  # little-endian mark
    for name in ("excel.tsv", "windows.jsonl", "utf16.jsonl"):
        got = _load(tmp_path / name)
        assert got.train == expected.train and got.labels == expected.labels == ["pos"]


@pytest.mark.parametrize("name", ["gbk.csv", "gbk.jsonl"])
def test_a_task_file_in_gbk_is_refused_saying_how_to_convert_it(tmp_path, name):
    """ChnSentiCorp and many Chinese task files come in GBK; before, their text was read as
    U+FFFD and mojibake, and a model fine-tuned on it."""
    rows = [{"text": f"这家酒店的服务很好，第{i}次入住。", "label": "pos"} for i in range(20)]
    if name.endswith(".csv"):
        text = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (tmp_path / name).write_bytes(text.encode("gbk"))
    with pytest.raises(UserError, match=rf"{name} is not UTF-8 text \(20 of the first 20 lines"
                       r".*`iconv -f GB18030 -t UTF-8`.*; or read it as it is: "
                       r"--config.text_encoding=gb18030"):  # fmt: skip
        _load(tmp_path / name)
    # Or read as it is: the same task as its UTF-8 copy.
    (tmp_path / f"utf8_{name}").write_text(text, encoding="utf-8")
    got = _load(tmp_path / name, text_encoding="gb18030")
    assert got.train == _load(tmp_path / f"utf8_{name}").train and len(got.train) == 20
    # A UTF-8 file given as gb18030 reads as UTF-8 (it was mojibake); "utf-8" is the default.
    assert _load(tmp_path / f"utf8_{name}", text_encoding="gb18030").train == got.train
    with pytest.raises(UserError, match=rf"{name} is not UTF-8 text"):
        _load(tmp_path / name, text_encoding="utf-8")


def test_tagging_and_squad_files_in_gbk_read_with_text_encoding(tmp_path):
    conll = "".join(f"{c} {'B-LOC' if c == '北' else 'O'}\n" for c in "我在北京。") + "\n"
    (tmp_path / "ner.bio").write_bytes(conll.encode("gb18030"))
    (tmp_path / "utf8.bio").write_text(conll, encoding="utf-8")
    tagged = _load(tmp_path / "ner.bio", kind="tagging", text_encoding="gb18030")
    assert tagged.train == _load(tmp_path / "utf8.bio", kind="tagging").train
    assert tagged.train[0].words == tuple("我在北京。")
    context = "灯塔建于1990年。"
    question = {
        "id": "z",
        "question": "哪一年？",
        "answers": [{"text": "1990年", "answer_start": 4}],
    }
    squad = {"data": [{"paragraphs": [{"context": context, "qas": [question]}]}]}
    (tmp_path / "qa.json").write_bytes(json.dumps(squad, ensure_ascii=False).encode("gb18030"))
    config = config_for(train_file=str(tmp_path / "qa.json"), eval_file=str(tmp_path / "qa.json"),
                        text_encoding="gb18030")  # fmt: skip
    assert tasks.load_task("squad", config).train[0].context == context
    with pytest.raises(UserError, match=r"--config.text_encoding='gbkk' is not an encoding"):
        _load(tmp_path / "ner.bio", kind="tagging", text_encoding="gbkk")


def test_a_json_array_of_records_as_pandas_writes_it(tmp_path):
    """pandas' to_json(orient="records") writes one JSON array; before, it was refused with
    "line 1 is not valid JSON"."""
    expected = _load(write_jsonl(tmp_path / "train.jsonl", ROWS))
    (tmp_path / "one_line.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (tmp_path / "indented.json").write_text("\n  " + json.dumps(ROWS, indent=2), encoding="utf-8")
    for name in ("one_line.json", "indented.json"):
        got = _load(tmp_path / name)
        assert got.train == expected.train and got.labels == expected.labels == ["neg", "pos"]
    (tmp_path / "bad.json").write_text(json.dumps([ROWS[0], "text"]), encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.json: item 2 of its JSON array is not a JSON"):
        _load(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_text(json.dumps(ROWS, indent=2)[:-10], encoding="utf-8")
    with pytest.raises(UserError, match=r"cut.json is not valid JSON \(line 12: Unterminated"):
        _load(tmp_path / "cut.json")


def test_long_fields_and_regression_targets(tmp_path):
    long_text = "word " * 40_000  # 200,000 characters: over csv's default field limit
    with open(tmp_path / "scored.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "score"], [long_text, "3.5"], ["short", "1"]])
    task = _load(tmp_path / "scored.csv", kind="regression", label_field="score")
    assert [e.label for e in task.train] == [3.5, 1.0]
    assert task.train[0].texts == (long_text,)
    assert csv.field_size_limit() == 131072  # the process's limit is given back


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\na,pos\nb,neg,extra\n", r"bad.csv:3 has 3 values, its header 2 \(text, lab"),
        ("text,label\nonly one\n", r"bad.csv:2 has 1 values, its header 2"),
        ('text,label\n"never closed,pos\nb,neg\n', r"bad.csv:\d+ is not valid CSV \(unexpected"),
        ('text,label\n"x" y,pos\n', r"bad.csv:2 is not valid CSV \(',' expected after"),
    ],
)
def test_malformed_rows_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        list(records.read_records(tmp_path / "bad.csv", "bad.csv", "classification"))
    assert "\n" not in str(info.value)


PAIRS = [
    {
        "text_a": "喜欢打篮球的男生喜欢什么样的女生",
        "text_b": "爱打篮球的男生喜欢什么样的女生",
        "label": "1",
    },
    {"text_a": "大家觉得她好看吗", "text_b": "大家觉得跑男好看吗？", "label": "0"},
]


@pytest.mark.parametrize("name", ["lcqmc.txt", "lcqmc.tsv"])
def test_a_tsv_file_without_a_header_row_reads_with_column_names(tmp_path, name):
    """LCQMC's train.txt (and THUCNews', GLUE's raw CoLA) is TSV without a header row: before,
    its first pair was taken for the field names ("no field 'label' (it has ['1', ...])") and a
    .txt file for classification was refused as CoNLL."""
    lines = "".join(f"{r['text_a']}\t{r['text_b']}\t{r['label']}\n" for r in PAIRS)
    (tmp_path / name).write_text(lines, encoding="utf-8")
    expected = _load(write_jsonl(tmp_path / "pairs.jsonl", PAIRS), text_fields="text_a,text_b")
    hint = rf"if .*{name} has no header row, name its columns: --config.column_names=A,B,\.\.\.$"
    with pytest.raises(UserError, match=rf"no field 'label' \(it has \['1', .*{hint}"):
        _load(tmp_path / name, text_fields="text_a,text_b")
    got = _load(tmp_path / name, text_fields="text_a,text_b", column_names="text_a,text_b,label")
    assert got.train == expected.train and len(got.train) == 2
    # A file that has a header row of just those names reads the same: the row is skipped.
    headed = "text_a\ttext_b\tlabel\n" + lines
    (tmp_path / f"headed_{name}").write_text(headed, encoding="utf-8")
    again = _load(tmp_path / f"headed_{name}", text_fields="text_a,text_b",
                  column_names="text_a,text_b,label")  # fmt: skip
    assert again.train == expected.train


@pytest.mark.parametrize(
    "file, names, message",
    [
        ("pairs.tsv", "text_a,text_b", r"pairs.tsv:1 has 3 values, the column names given 2 \(te"),
        ("pairs.tsv", "text_a,text_a,label", r"column names 'text_a,text_a,label' repeat text_a;"),
        (
            "pairs.jsonl",
            "text_a,text_b,label",
            r"are for CSV and TSV files without a header row; "
            r".*pairs.jsonl is not one: leave them out",
        ),  # fmt: skip
    ],
)
def test_column_names_that_do_not_fit_are_one_line_errors(tmp_path, file, names, message):
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    lines = "".join(f"{r['text_a']}\t{r['text_b']}\t{r['label']}\n" for r in PAIRS)
    (tmp_path / "pairs.tsv").write_text(lines, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        _load(tmp_path / file, text_fields="text_a,text_b", column_names=names)
    assert "\n" not in str(info.value)


def test_a_txt_file_is_conll_for_tagging_and_tsv_for_the_other_kinds(tmp_path):
    (tmp_path / "train.txt").write_text("Rockwell NNP B-NP\nsaid VBD B-VP\n\n", encoding="utf-8")
    tagged = _load(tmp_path / "train.txt", kind="tagging")
    assert tagged.train[0].words == ("Rockwell", "said") and tagged.labels == ["B-NP", "B-VP"]
    (tmp_path / "reviews.txt").write_text("label\ttext\npos\tgood\nneg\tbad\n", encoding="utf-8")
    classified = _load(tmp_path / "reviews.txt")
    assert [e.texts for e in classified.train] == [("good",), ("bad",)]
    write_jsonl(tmp_path / "reviews.jsonl", [{"text": "good", "label": "pos"}])
    (tmp_path / "reviews.jsonl").rename(tmp_path / "json.txt")  # JSON Lines named .txt
    assert [e.texts for e in _load(tmp_path / "json.txt").train] == [("good",)]


@pytest.mark.parametrize("field, value", [("column_names", "a,b"), ("text_encoding", "gb18030")])
def test_file_settings_for_a_tfds_task_are_one_line_errors(field, value):
    config = config_for(**{field: value})
    with pytest.raises(UserError, match=rf"--config.{field} is for task files, not tfds:glue/sst2"):
        tasks.load_task("glue/sst2", config)


def test_labels_that_differ_only_in_spaces_or_case_are_warned_about(tmp_path, caplog):
    """A trailing space in a spreadsheet cell makes "pos " a class of its own: kept (the data
    says so), but said in a warning, not only in the info line that lists the labels."""
    caplog.set_level("WARNING", logger="absl")
    rows = [*ROWS, {"text": "a stray space", "label": "pos "}, {"text": "shouted", "label": "NEG"}]
    with open(tmp_path / "train.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["label", "text"])
        writer.writeheader()
        writer.writerows(rows)
    assert _load(tmp_path / "train.csv").labels == ["NEG", "neg", "pos", "pos "]
    assert "labels 'NEG', 'neg' differ only in spaces or case and are 2 classes" in caplog.text
    assert "labels 'pos', 'pos ' differ only in spaces or case and are 2 classes" in caplog.text
    caplog.clear()
    _load(write_jsonl(tmp_path / "clean.jsonl", ROWS))
    assert "differ only" not in caplog.text


def test_an_empty_label_cell_is_refused_not_a_class(tmp_path):
    """A classification row whose label cell is empty names its record (before, "" became a
    class of its own and the run trained on it)."""
    rows = [*ROWS, {"text": "unlabelled", "label": ""}]
    with open(tmp_path / "train.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["label", "text"])
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError, match="record 4 of .*train.csv: 'label' is empty; label the "
                       "record or drop it"):  # fmt: skip
        _load(tmp_path / "train.csv")
