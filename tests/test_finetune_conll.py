"""Tagging task files in the CoNLL layout (CoNLL-2003's four columns, the character-per-line BIO
files of Chinese NER sets), read as the same sentences written as JSON Lines (the long-tested
reader) are."""

import pytest

from bertjax.errors import UserError
from bertjax.finetune import records, tasks
from tests.test_finetune import config_for, write_jsonl

SENTENCES = [
    {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
    {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
]
CHINESE = [
    {"tokens": list("中国在北京"), "tags": ["B-LOC", "I-LOC", "O", "B-LOC", "I-LOC"]},
    {"tokens": list("他说"), "tags": ["O", "O"]},
]


def _load(path):
    config = config_for(kind="tagging", train_file=str(path), eval_file=str(path))
    return tasks.load_task("jsonl", config)


def test_conll_2003_columns_and_docstart_lines(tmp_path):
    """Token first, NER tag last (POS and chunk columns between), -DOCSTART- skipped."""
    pos = {"EU": "NNP", "rejects": "VBZ", "German": "JJ", "call": "NN", "Peter": "NNP"}
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in SENTENCES:
        for token, tag in zip(sentence["tokens"], sentence["tags"], strict=True):
            lines.append(f"{token} {pos.get(token, 'NNP')} I-NP {tag}")
        lines.append("")
    (tmp_path / "eng.conll").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    expected = _load(write_jsonl(tmp_path / "train.jsonl", SENTENCES))
    got = _load(tmp_path / "eng.conll")
    assert got.train == expected.train and got.labels == expected.labels
    assert len(got.train) == 2 and "B-ORG" in got.labels


@pytest.mark.parametrize("name", ["train.txt", "msra_train.bio", "train.char.bmes"])
def test_chinese_character_per_line_files(tmp_path, name):
    """MSRA-style: one character and its tag a line, tab-separated, blank lines (and stray
    ones at the end) between sentences."""
    text = "\n\n".join("\n".join(f"{t}\t{g}" for t, g in zip(s["tokens"], s["tags"], strict=True))
                       for s in CHINESE)  # fmt: skip
    (tmp_path / name).write_text(text + "\n\n\n", encoding="utf-8")
    expected = _load(write_jsonl(tmp_path / "train.jsonl", CHINESE))
    got = _load(tmp_path / name)
    assert got.train == expected.train and got.labels == expected.labels


def test_a_file_of_tokens_alone_is_what_predict_reads_and_partial_tags_are_an_error(tmp_path):
    (tmp_path / "new.conll").write_text("EU\nrejects\n\nPeter\n", encoding="utf-8")
    assert list(records.read_records(tmp_path / "new.conll", "new.conll", "tagging")) == [
        {"tokens": ["EU", "rejects"]},
        {"tokens": ["Peter"]},
    ]
    (tmp_path / "bad.conll").write_text("a O\nb O\n\nc B-PER\nd\ne O\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.conll:5: this line has a token but no tag, in a "
                       r"sentence whose other tokens are tagged \(2 of 3\)"):  # fmt: skip
        list(records.read_records(tmp_path / "bad.conll", "bad.conll", "tagging"))


def test_an_ideographic_space_is_a_token_not_a_separator(tmp_path):
    """Columns split at ASCII spaces and tabs: U+3000 (a full-width space in Chinese text) is a
    token with its tag. str.split() took it for a separator: the tag became the token and the
    error blamed the sentence's first line; a file to predict on lost the token and split the
    sentence in two."""
    (tmp_path / "ner.txt").write_text("张 B-PER\n三 I-PER\n\u3000 O\n在 O\n", encoding="utf-8")
    assert list(records.read_records(tmp_path / "ner.txt", "ner.txt", "tagging")) == [
        {"tokens": ["张", "三", "\u3000", "在"], "tags": ["B-PER", "I-PER", "O", "O"]}
    ]
    (tmp_path / "new.txt").write_text("张\n三\n\u3000\n在\n", encoding="utf-8")
    assert list(records.read_records(tmp_path / "new.txt", "new.txt", "tagging")) == [
        {"tokens": ["张", "三", "\u3000", "在"]}
    ]


def test_a_conll_suffix_for_another_kind_is_one_line(tmp_path):
    (tmp_path / "reviews.bio").write_text("great movie\tpos\nbad film\tneg\n", encoding="utf-8")
    config = config_for(kind="classification", train_file=str(tmp_path / "reviews.bio"),
                        eval_file=str(tmp_path / "reviews.bio"))  # fmt: skip
    expected = r"reviews.bio is read as a CoNLL file of tokens and tags \(its suffix\), which"
    with pytest.raises(UserError, match=expected + " only tagging takes; give a classification"):
        tasks.load_task("jsonl", config)


def test_a_bmes_file_fine_tunes_and_scores_per_entity_type(tmp_path):
    """Resume NER's and OntoNotes-4 Chinese's layout: BMES tags (B-, M-, E-, S-). Before, the
    first evaluation stopped the fine-tune: the scores took only B- and I- tags."""
    from bertjax.finetune import trainer
    from tests.test_finetune import tiny_model_dir

    sentences = [
        ("张三在北京工作", ["B-NAME", "E-NAME", "O", "B-LOC", "E-LOC", "O", "O"]),
        ("李小明是工程师", ["B-NAME", "M-NAME", "E-NAME", "O", "B-TITLE", "M-TITLE", "E-TITLE"]),
        ("王住上海", ["S-NAME", "O", "B-LOC", "E-LOC"]),
    ] * 4
    lines = ["\n".join(f"{c} {t}" for c, t in zip(text, tags, strict=True))
             for text, tags in sentences]  # fmt: skip
    (tmp_path / "train.char.bmes").write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    init = tiny_model_dir(tmp_path, [text for text, _ in sentences] * 10)
    config = config_for(kind="tagging", train_file=str(tmp_path / "train.char.bmes"),
                        eval_file=str(tmp_path / "train.char.bmes"), num_epochs=1)  # fmt: skip
    result = trainer.finetune("jsonl", str(init), str(tmp_path / "run"), config)["seeds"]["0"]
    assert {"f1", "f1/NAME", "f1/LOC", "f1/TITLE"} <= set(result)  # the true types
    assert 0.0 <= result["f1"] <= 1.0 and "accuracy" in result
