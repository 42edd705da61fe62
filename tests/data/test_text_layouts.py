"""Tests for bertjax/data/text_layouts.py: WikiExtractor's output (files written by
wikiextractor 3.1.0 itself, tests/fixtures/wikiextractor/make.sh) read as its articles.

Reference: the same articles from WikiExtractor's own JSON output (`--json`, its `text` field,
read as JSON Lines by the long-tested reader, its HTML escapes undone), paragraph for
paragraph."""

import html
import json
import shutil
from pathlib import Path

import pytest

from bertjax.data import corpus, sentences
from bertjax.errors import UserError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wikiextractor"


def _read(pattern, **kwargs):
    reports = []
    return list(corpus.read_documents(str(pattern), reports=reports, **kwargs)), reports


def _json_articles() -> list[dict]:
    lines = (FIXTURES / "json" / "AA" / "wiki_00").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("layout", ["text", "compressed"])
@pytest.mark.parametrize("text_format", ["sentences", "paragraphs"])
def test_wikiextractor_output_reads_as_its_articles(layout, text_format):
    """Before, `--config.corpus='text/*/wiki_*'` was refused (no suffix), and the same files
    named .txt were read one sentence per line: the <doc> lines became sentences and each
    title its own document."""
    docs, reports = _read(FIXTURES / layout / "*" / "wiki_*", text_format=text_format)
    articles = _json_articles()
    # One paragraph a line; WikiExtractor's HTML escapes (its --html-safe default) undone.
    assert docs == [html.unescape(a["text"]).replace("\n", "\n\n") for a in articles]
    assert docs[2].endswith("with salt & vinegar, since 3 < 5.")  # "&amp;", "&lt;" in the file
    assert not reports[0].skipped and reports[0].documents == 3
    assert sentences.split_sentences(docs[1]) == [
        "灯塔是一种塔状建筑物。", "它在夜间发出光亮，为船只指引方向。", "历史.",
        "古代的灯塔用柴火照明。", "现代的灯塔大多已经自动化。",
    ]  # fmt: skip
    assert docs[2].startswith("A Fresnel lens")  # the title "Lamps &amp; lenses" left out


def test_wikiextractor_json_output_and_renamed_files_read_the_same(tmp_path):
    expected, _ = _read(FIXTURES / "text" / "*" / "wiki_*")
    from_json, _ = _read(FIXTURES / "json" / "*" / "wiki_*")  # suffixless JSON Lines
    assert [d.split() for d in from_json] == [d.split() for d in expected]
    shutil.copy(FIXTURES / "text" / "AA" / "wiki_00", tmp_path / "wiki_00.txt")
    assert _read(tmp_path / "wiki_00.txt")[0] == expected


def test_a_directory_of_wikiextractor_folders_suggests_their_files():
    with pytest.raises(UserError, match=r"is a directory; .* --config.corpus='.*/text/\*/\*'$"):
        corpus.resolve_files(str(FIXTURES / "text"))
    with pytest.raises(UserError, match=r"--config.corpus='.*/compressed/\*/\*\.bz2'$"):
        corpus.resolve_files(str(FIXTURES / "compressed"))


def test_text_outside_articles_is_counted_and_a_cut_article_kept(tmp_path):
    (tmp_path / "wiki_01").write_text(
        '\n<doc id="1" url="u" title="A">\nA\n\nFirst para.\nSecond para.\n</doc>\nstray line\n'
        '<doc id="2" url="u" title="B">\nB\n\nCut off here.\n',
        encoding="utf-8",
    )
    docs, reports = _read(tmp_path / "wiki_01")
    assert docs == ["First para.\n\nSecond para.", "Cut off here."]
    assert (
        reports[0].summary()
        == "wiki_01: 2 documents; skipped 1 lines outside <doc> ... </doc> (first: line 8)"
    )


def test_a_suffixless_text_file_reads_as_a_txt_file(tmp_path):
    text = "First sentence here.\nSecond one.\n\nAnother document.\n"
    (tmp_path / "part-00000").write_text(text, encoding="utf-8")
    (tmp_path / "same.txt").write_text(text, encoding="utf-8")
    assert _read(tmp_path / "part-00000")[0] == _read(tmp_path / "same.txt")[0]
    assert len(_read(tmp_path / "part-00000")[0]) == 2
    # Suffixless JSON Lines that are not WikiExtractor's keep their text as it is.
    (tmp_path / "part-00001").write_text('{"text": "salt &amp; vinegar"}\n', encoding="utf-8")
    assert _read(tmp_path / "part-00001")[0] == ["salt &amp; vinegar"]
