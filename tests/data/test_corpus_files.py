"""Tests for bertjax/data/corpus_files.py: Parquet, Arrow, CSV/TSV and compressed corpora, read
like JSON Lines.

References: pyarrow's own whole-table reads for Parquet and Arrow, the texts written with
Python's csv writer for CSV, and the same documents as plain JSON Lines / text (read by the
long-tested reader) for each compression.
"""

import bz2
import codecs
import csv
import gzip
import json
import lzma
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from bertjax.data import compressed_files, corpus, corpus_sample
from bertjax.data.sources import text_stream
from bertjax.errors import UserError

zstd = compressed_files.zstd_module()


def _texts(count: int, seed: int = 0) -> list[str]:
    """`count` documents of random words (so compression cannot shrink them to nothing)."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "north", "ember"]
    return [
        " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(rng.randrange(5, 40)))
        + "."
        for _ in range(count)
    ]


def _read(pattern, **kwargs):
    reports = []
    return list(corpus.read_documents(pattern, reports=reports, **kwargs)), reports


def _jsonl(texts, field="text") -> bytes:
    return "".join(json.dumps({field: t}) + "\n" for t in texts).encode()


def test_parquet_rows_are_documents_across_row_groups_and_batches(tmp_path):
    texts = _texts(2500)  # more rows than a batch (1,024), in 7 row groups
    table = pa.table({"id": list(range(len(texts))), "text": texts, "url": ["u"] * len(texts)})
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=400)
    docs, (report,) = _read(str(tmp_path / "part.parquet"))
    assert docs == pq.read_table(tmp_path / "part.parquet").column("text").to_pylist()
    assert report.documents == 2500 and not report.skipped


def test_parquet_other_column_large_string_and_binary(tmp_path):
    texts = _texts(5)
    large = pa.table({"body": pa.array(texts, type=pa.large_string())})
    pq.write_table(large, tmp_path / "large.parquet")
    assert _read(str(tmp_path / "large.parquet"), text_field="body")[0] == texts
    raw = [t.encode() for t in texts[:2]] + [b"bad \xff byte."]
    pq.write_table(pa.table({"text": pa.array(raw, type=pa.binary())}), tmp_path / "bin.parquet")
    docs, (report,) = _read(str(tmp_path / "bin.parquet"))
    assert docs == texts[:2] + ["bad \ufffd byte."]
    assert report.repaired == {"lines with invalid UTF-8": 1}


def test_parquet_nulls_empty_rows_and_control_characters_are_counted(tmp_path):
    values = ["kept one.", None, "  ", "bell\x07 removed.", None]
    pq.write_table(pa.table({"text": values}), tmp_path / "a.parquet")
    docs, (report,) = _read(str(tmp_path / "a.parquet"))
    assert docs == ["kept one.", "bell removed."]
    assert report.skipped == {"with non-string 'text'": 2, "empty documents": 1}
    assert report.first_place["with non-string 'text'"] == "row 2, null"
    assert report.repaired == {"documents with control characters": 1}


@pytest.mark.parametrize(
    "table, message",
    [
        (
            pa.table({"id": [1], "content": ["x"]}),
            r"a\.parquet: 0 documents; skipped 1 without field 'text' \(first: columns: id, "
            r"content\)\); check --config\.text_field \(the JSON field or the column",
        ),
        (
            pa.table({"text": [1, 2]}),
            r"skipped 1 with non-string 'text' \(first: column type int64\)",
        ),
        (
            pa.table({"text": [["a", "b"]]}),
            r"skipped 1 with non-string 'text' \(first: column type list<\w+: string>\)",
        ),
    ],
)
def test_parquet_without_a_text_column_is_a_one_line_error(tmp_path, table, message):
    pq.write_table(table, tmp_path / "a.parquet")
    with pytest.raises(UserError, match=message) as info:
        list(corpus.read_documents(str(tmp_path / "a.parquet")))
    assert "\n" not in str(info.value)


def test_corrupt_and_truncated_parquet_files_are_skipped(tmp_path):
    texts = _texts(3000)
    pq.write_table(pa.table({"text": texts}), tmp_path / "whole.parquet", row_group_size=500)
    (tmp_path / "not.parquet").write_bytes(b"PAR1 but nothing else")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # the footer is lost
    docs, reports = _read(f"{tmp_path}/*.parquet")
    by_name = {r.source.rsplit("/", 1)[1]: r for r in reports}
    assert docs == texts
    for name in ("cut.parquet", "not.parquet"):
        assert by_name[name].skipped == {"unreadable file": 1}
        assert by_name[name].first_place["unreadable file"].startswith("OSError: ")


HF_DATASETS = Path(__file__).resolve().parents[1] / "fixtures" / "hf_datasets"


def test_the_arrow_file_of_datasets_save_to_disk_is_a_corpus():
    """Written by `datasets` 5.2.0 (tests/fixtures/hf_datasets/make.py): the IPC stream format."""
    docs, (report,) = _read(str(HF_DATASETS / "saved_corpus.arrow"))
    assert docs == ["The first document.", "The second one."]
    assert report.skipped == {"with non-string 'text'": 1}


@pytest.mark.parametrize("layout", ["stream", "file", "feather"])
def test_arrow_stream_file_and_feather_read_as_pyarrow_reads_them(tmp_path, layout):
    texts = _texts(2500)
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    path = tmp_path / ("part.feather" if layout == "feather" else "part.arrow")
    if layout == "feather":
        feather.write_feather(table, path, chunksize=600)
    else:
        new = pa.ipc.new_stream if layout == "stream" else pa.ipc.new_file
        with new(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=600)  # 5 record batches
    docs, (report,) = _read(str(path))
    read = pa.ipc.open_stream(path).read_all() if layout == "stream" else feather.read_table(path)
    assert docs == read.column("text").to_pylist() == texts
    assert report.documents == 2500 and not report.skipped
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1 and nothing after")
    with pytest.raises(UserError, match=r"bad\.arrow: 0 documents; skipped 1 unreadable file"):
        list(corpus.read_documents(str(tmp_path / "bad.arrow")))


def test_a_directory_is_refused_with_the_glob_of_the_files_it_holds(tmp_path):
    saved = tmp_path / "saved"  # as `datasets.save_to_disk` leaves it
    saved.mkdir()
    (saved / "data-00000-of-00001.arrow").write_bytes(
        (HF_DATASETS / "saved_corpus.arrow").read_bytes()
    )
    (saved / "dataset_info.json").write_text("{}")
    (saved / "state.json").write_text("{}")
    with pytest.raises(UserError, match=rf"--config.corpus='{saved}/\*\.arrow'$"):
        corpus.resolve_files(str(saved))
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "part-0.JSONL.GZ").write_bytes(gzip.compress(b'{"text": "x"}'))
    with pytest.raises(UserError, match=r"/shards/\*\.JSONL\.GZ'$"):  # globs are case-sensitive
        corpus.resolve_files(str(tmp_path / "shards"))


def test_a_compressed_parquet_file_and_unknown_suffixes_are_refused_in_one_line(tmp_path):
    (tmp_path / "a.parquet.gz").write_bytes(b"")
    with pytest.raises(UserError, match=r"compressed .parquet file; decompress it"):
        corpus.resolve_files(str(tmp_path / "a.parquet.gz"))
    (tmp_path / "b.xml.zst").write_bytes(b"")
    with pytest.raises(UserError, match=r"unsupported suffix; use .*\.tsv .*\.parquet, \.arrow"):
        corpus.resolve_files(str(tmp_path / "b.xml.zst"))


COMPRESS = {  # each compression's reference writer: the standard library's, zstd's backport
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": zstd.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_jsonl_and_txt_read_as_their_plain_files(tmp_path, kind):
    texts = _texts(300)
    (tmp_path / "plain.jsonl").write_bytes(_jsonl(texts))
    (tmp_path / f"packed.jsonl.{kind}").write_bytes(COMPRESS[kind](_jsonl(texts)))
    lines = "\n\n".join("\n".join(t.split(" ")) for t in texts[:20]).encode()
    (tmp_path / "plain.txt").write_bytes(lines)
    (tmp_path / f"packed.TXT.{kind.upper()}").write_bytes(COMPRESS[kind](lines))
    for plain, packed in (("plain.jsonl", f"packed.jsonl.{kind}"),
                          ("plain.txt", f"packed.TXT.{kind.upper()}")):  # fmt: skip
        expected = _read(str(tmp_path / plain))[0]
        assert _read(str(tmp_path / packed))[0] == expected and len(expected) in (300, 20)


def test_zstd_multi_frame_and_long_window_files(tmp_path):
    data = _jsonl(_texts(400))
    middle = len(data) // 3
    frames = zstd.compress(data[:middle]) + zstd.compress(data[middle:])  # e.g. pzstd, cat a b
    (tmp_path / "frames.jsonl.zst").write_bytes(frames)
    options = {
        zstd.CompressionParameter.window_log: 31,  # `zstd --long=31`
        zstd.CompressionParameter.enable_long_distance_matching: 1,
    }
    (tmp_path / "long.jsonl.zst").write_bytes(zstd.compress(data, options=options))
    (tmp_path / "plain.jsonl").write_bytes(data)
    expected = _read(str(tmp_path / "plain.jsonl"))[0]
    assert _read(str(tmp_path / "frames.jsonl.zst"))[0] == expected
    assert _read(str(tmp_path / "long.jsonl.zst"))[0] == expected


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_corrupt_and_truncated_files_are_skipped_keeping_what_came_before(tmp_path, kind):
    texts = _texts(20000)
    full = COMPRESS[kind](_jsonl(texts))
    (tmp_path / f"cut.jsonl.{kind}").write_bytes(full[: len(full) // 2])
    (tmp_path / f"junk.jsonl.{kind}").write_bytes(b"this is not compressed data at all")
    docs, (cut, junk) = _read(f"{tmp_path}/*.{kind}")
    assert 0 < cut.documents == len(docs) < len(texts) and docs == texts[: len(docs)]
    assert cut.first_place["unreadable file"].startswith("EOFError: ")
    assert junk.skipped == {"unreadable file": 1}
    assert re.match(r"(OSError|BadGzipFile): ", junk.first_place["unreadable file"])


# What Windows tools write as "Unicode": the text encoded with its byte-order mark in front.
WITH_BOM = {
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


@pytest.mark.parametrize("encoding", sorted(WITH_BOM))
def test_utf16_and_utf32_files_with_a_byte_order_mark_read_as_their_utf8_files(tmp_path, encoding):
    """Before, a UTF-16 file (PowerShell 5's `>`, Notepad's "Unicode") gave no documents and
    the error blamed invalid JSON."""
    texts = [*_texts(50), "汉字 和 ünïcödé 😀 text."]
    lines = "\n\n".join("\n".join(t.split(" ")) for t in texts[:20])
    table = "id,text\r\n" + "".join(f'{i},"{t}"\r\n' for i, t in enumerate(texts))
    for name, text in (("a.jsonl", _jsonl(texts).decode()), ("b.txt", lines), ("c.csv", table)):
        (tmp_path / f"utf8_{name}").write_text(text, encoding="utf-8", newline="")
        encoded = WITH_BOM[encoding] + text.encode(encoding)
        (tmp_path / f"{encoding}_{name}").write_bytes(encoded)
        (tmp_path / f"{encoding}_{name}.gz").write_bytes(gzip.compress(encoded))
        expected = _read(str(tmp_path / f"utf8_{name}"))[0]
        assert texts[-1] in expected or name == "b.txt"
        for variant in (f"{encoding}_{name}", f"{encoding}_{name}.gz"):
            docs, (report,) = _read(str(tmp_path / variant))
            assert docs == expected and not report.skipped and not report.repaired


@pytest.mark.parametrize("given", ["", "utf-16"])
def test_bad_bytes_in_a_utf16_file_are_replaced_and_their_lines_counted(tmp_path, given):
    """Before, a UTF-16 file's undecodable bytes became U+FFFD uncounted (UTF-8's were counted):
    a half surrogate pair (a cut or corrupt line) in two documents of five, and a file cut
    within its last character."""
    texts = _texts(5)
    lines = [_jsonl([t]).decode().encode("utf-16-le") for t in texts]
    bad = "\ud800".encode("utf-16-le", "surrogatepass")  # a high surrogate with no low one
    for i in (1, 3):
        lines[i] = lines[i][:20] + bad + lines[i][20:]
    data = codecs.BOM_UTF16_LE + b"".join(lines)
    (tmp_path / "a.jsonl").write_bytes(data + "x".encode("utf-16-le")[:1])  # a cut last char
    docs, (report,) = _read(str(tmp_path / "a.jsonl"), text_encoding=given)
    assert [d.replace("\ufffd", "") for d in docs] == texts and "\ufffd" in docs[1] + docs[3]
    assert report.repaired == {"lines with invalid utf-16": 3}  # the cut line is the 6th


# Lines in the encodings text comes in besides UTF-8.
LEGACY = {
    "gb18030": "中文的文本，第{}行。",
    "big5": "繁體中文的文字，第{}行。",
    "shift_jis": "日本語のテキスト、{}行目。",
    "cp1252": "Café déjà vu, ligne {} à Noël.",
}


@pytest.mark.parametrize("encoding", sorted(LEGACY))
def test_a_file_in_another_encoding_is_skipped_saying_how_to_convert_it(tmp_path, encoding):
    """Before, a GBK file's lines were all "repaired" into U+FFFD and mojibake, logged at info
    level, and a vocabulary was trained on them."""
    lines = [LEGACY[encoding].format(i) for i in range(60)]
    jsonl = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(jsonl.encode(encoding)))
    (tmp_path / "b.txt").write_bytes("\n\n".join(lines).encode(encoding))
    (tmp_path / "c.txt").write_bytes("\n\n".join(lines).encode("utf-8"))
    docs, reports = _read(f"{tmp_path}/*")
    assert len(docs) == 60 and [r.documents for r in reports] == [0, 0, 60]
    for report in reports[:2]:
        assert report.skipped == {"file not in UTF-8": 1} and not report.repaired
        assert "`iconv -f GB18030 -t UTF-8`" in report.first_place["file not in UTF-8"]


@pytest.mark.parametrize("encoding", sorted(LEGACY))
def test_text_encoding_reads_such_files_as_their_utf8_copies(tmp_path, encoding):
    """--config.text_encoding (and vocab/prepare's --text_encoding): a GBK, Big5, Shift-JIS or
    Windows-1252 corpus read as it is, compressed or not, in every text format, without a
    converted copy of it on disk."""
    lines = [LEGACY[encoding].format(i) for i in range(60)]
    jsonl = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines)
    text = "\n\n".join(lines) + "\n"
    table = "text\n" + "".join(f"{t}\n" for t in lines)
    for name, content in (("a.jsonl.gz", jsonl), ("b.txt", text), ("c.tsv.bz2", table)):
        data = content.encode(encoding)
        compress = {".gz": gzip.compress, ".bz2": bz2.compress}.get(Path(name).suffix)
        (tmp_path / "legacy" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "legacy" / name).write_bytes(compress(data) if compress else data)
        (tmp_path / "utf8" / name).parent.mkdir(exist_ok=True)
        utf8 = content.encode("utf-8")
        (tmp_path / "utf8" / name).write_bytes(compress(utf8) if compress else utf8)
    expected, _ = _read(f"{tmp_path}/utf8/*")
    docs, reports = _read(f"{tmp_path}/legacy/*", text_encoding=encoding)
    assert docs == expected and len(docs) == 180
    assert all(not r.skipped and not r.repaired for r in reports)
    with pytest.raises(UserError, match=r"has no documents .* check --config.text_encoding \(the"):
        _read(f"{tmp_path}/legacy/*")  # as UTF-8: every file skipped


def test_a_given_encoding_reads_utf8_files_as_utf8_and_skips_files_it_cannot_decode(tmp_path):
    """A corpus of GBK and UTF-8 files given as gb18030: the UTF-8 file was decoded as GB18030
    (mojibake trained into the vocabulary); it is read as UTF-8, said in its report. A GBK file
    given as "utf-8" was read on with every line "repaired"; it is skipped as by default. A
    file the given encoding does not decode is skipped, naming the setting (one that decodes
    it into other characters, GBK as Big5 or Shift-JIS, cannot be told)."""
    lines = [LEGACY["gb18030"].format(i) for i in range(30)]
    (tmp_path / "a_gbk.txt").write_bytes("\n\n".join(lines).encode("gb18030"))
    (tmp_path / "b_utf8.txt").write_bytes("\n\n".join(lines).encode("utf-8"))
    docs, reports = _read(f"{tmp_path}/*.txt", text_encoding="gb18030")
    assert docs == lines + lines and not reports[0].repaired
    assert reports[1].repaired == {"file read as UTF-8 (its text is UTF-8), not gb18030": 1}
    docs, reports = _read(f"{tmp_path}/*.txt", text_encoding="utf-8")
    assert docs == lines and reports[0].skipped == {"file not in UTF-8": 1}
    (tmp_path / "c_gbk.txt").write_bytes("\n\n".join(lines).encode("gb18030") + b"\n")
    docs, reports = _read(f"{tmp_path}/[bc]_*.txt", text_encoding="euc_jp")  # GBK is not EUC-JP
    assert docs == lines and reports[1].skipped == {"file not in the given encoding": 1}
    assert "not euc_jp text (" in reports[1].first_place["file not in the given encoding"]


def test_a_utf8_file_with_a_stray_legacy_line_stays_utf8_under_a_given_encoding(tmp_path):
    """Its other lines were decoded as the given encoding (cp1252: 'cafÃ©', 'â€“') before."""
    utf8 = [f"It ran from 12 \u2013 14 September, said the caf\u00e9 owner {i}." for i in range(40)]
    data = "The caf\u00e9 opened in 1942.\n".encode("cp1252") + "\n".join(utf8).encode("utf-8")
    (tmp_path / "mixed.txt").write_bytes(data)
    docs, reports = _read(str(tmp_path / "mixed.txt"), text_encoding="cp1252")
    assert docs == ["The caf\ufffd opened in 1942.\n\n" + "\n\n".join(utf8)]
    assert reports[0].repaired == {
        "file read as UTF-8 (its text is UTF-8), not cp1252": 1,
        "lines with invalid UTF-8": 1,
    }


def test_an_unknown_text_encoding_is_a_one_line_error_and_stray_bytes_are_counted(tmp_path):
    from bertjax.data.spec import DataSpec

    with pytest.raises(UserError, match=r"text_encoding='gbkk' is not an encoding Python knows"):
        DataSpec(text_encoding="gbkk")
    assert DataSpec(text_encoding="GBK").text_encoding == "GBK"  # codec names as Python's
    # A stray byte that is not the encoding's is repaired and counted, as in UTF-8 text.
    lines = [LEGACY["gb18030"].format(i) for i in range(20)]
    (tmp_path / "bad.txt").write_bytes("\n\n".join(lines).encode("gb18030") + b"\n\n\x81\n")
    docs, (report,) = _read(str(tmp_path / "bad.txt"), text_encoding="gb18030")
    assert docs[:20] == lines and report.repaired == {"lines with invalid gb18030": 1}


def test_stray_bad_bytes_in_utf8_text_are_repaired_not_the_file_skipped(tmp_path):
    chinese = [f"中文的文本，第{i}行。".encode() for i in range(100)]
    for i in (5, 50, 90):
        chinese[i] = chinese[i][:-2]  # cut inside its last character
    english = [f"plain line {i}.".encode() for i in range(300)]
    english[7] = english[100] = "Café".encode("cp1252")  # 2 of 300 lines: under 1%
    for name, lines in (("zh.txt", chinese), ("en.txt", english)):
        (tmp_path / name).write_bytes(b"\n\n".join(lines))
        docs, (report,) = _read(str(tmp_path / name))
        assert len(docs) == len(lines) and not report.skipped
        assert report.repaired == {"lines with invalid UTF-8": 3 if name == "zh.txt" else 2}


def test_csv_and_tsv_rows_are_documents(tmp_path):
    texts = ['a "quoted" word, and a comma.', "two lines\nof one document.", "x" * 200_000]
    with open(tmp_path / "a.csv", "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, ["id", "text"])  # Excel's dialect, and its byte-order mark
        writer.writeheader()
        writer.writerows({"id": i, "text": t} for i, t in enumerate(texts))
    assert _read(str(tmp_path / "a.csv"))[0] == texts  # the last over csv's default field limit
    (tmp_path / "b.tsv.gz").write_bytes(
        gzip.compress(b'text\tlabel\n"quote at the start.\t1\nplain.\t0\n')
    )
    assert _read(str(tmp_path / "b.tsv.gz"))[0] == ['"quote at the start.', "plain."]
    assert csv.field_size_limit() == 131072  # given back


def test_bad_csv_rows_are_counted_and_an_unclosed_quote_ends_the_file(tmp_path):
    lines = ["text,id", "kept.,1", "too,many,values", "", "also kept.,2", '"never closed,3', "x,4"]
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, (report,) = _read(str(tmp_path / "a.csv"))
    assert docs == ["kept.", "also kept."]
    assert report.skipped == {"rows of the wrong width": 1, "invalid CSV": 1}
    assert report.first_place["rows of the wrong width"] == "line 3, 3 values for 2"
    assert report.first_place["invalid CSV"].endswith("unexpected end of data")
    (tmp_path / "b.csv").write_text("id,body\n1,x\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"without field 'text' \(first: columns: id, body\)"):
        list(corpus.read_documents(str(tmp_path / "b.csv")))


@pytest.mark.parametrize("count", [3_000, 40_000])  # under and over the 4 MiB ratio sample
def test_text_bytes_estimates_the_text_each_format_holds(tmp_path, count):
    texts = _texts(count)
    data = _jsonl(texts)
    (tmp_path / "a.jsonl").write_bytes(data)
    for kind, compress in COMPRESS.items():
        (tmp_path / f"a.jsonl.{kind}").write_bytes(compress(data))
    pq.write_table(pa.table({"id": range(count), "text": texts}), tmp_path / "a.parquet")
    text = sum(len(t.encode()) for t in texts)
    estimates = {
        path.name: corpus_sample.text_bytes(str(path), "text") for path in tmp_path.iterdir()
    }
    assert estimates["a.jsonl"] == len(data)
    # Under 4 MiB the whole file is read: exact. Over, the decompressor's read-ahead makes it an
    # underestimate (bz2, with 900 kB blocks: 7.4% under at 8.2 MB).
    tolerance = 0 if len(data) < 1 << 22 else 0.1
    for kind in COMPRESS:
        assert estimates[f"a.jsonl.{kind}"] == pytest.approx(len(data), rel=tolerance)
    assert estimates["a.parquet"] == pytest.approx(text, rel=0.1)  # its text column only


def test_streaming_resumes_inside_a_parquet_file(tmp_path):
    """The text stream's position is (file, record number): a resume from record k of a
    Parquet file gives the documents after it, as from a JSON Lines file."""
    texts = _texts(50)
    pq.write_table(pa.table({"text": texts}), tmp_path / "a.parquet", row_group_size=16)
    settings = dict(text_field="text", text_format="sentences", eval_holdout_fraction=0.0)
    files = [str(tmp_path / "a.parquet")]
    whole = [text for text, _ in text_stream.documents(files, settings)]
    resumed = [text for text, _ in text_stream.documents(files, settings, start=(0, 37))]
    assert whole == texts and resumed == texts[37:]
