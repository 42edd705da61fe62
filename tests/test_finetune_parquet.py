"""Fine-tuning and prediction from Parquet and Arrow task files as Hugging Face `datasets`
writes them.

The files in tests/fixtures/hf_datasets were written by `datasets` itself (5.2.0: "List"
features; 3.6.0: "Sequence"; see make.py there), so the class-label names are read from the
metadata the Hub's files carry. Reference: the same records written as JSON Lines with the
names spelt out, read by the long-tested JSON Lines reader.
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bertjax.errors import UserError
from bertjax.finetune import predict, squad, table_records, tasks, trainer
from tests.test_finetune import config_for, tiny_model_dir, write_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf_datasets"
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _names(path: Path) -> dict:
    return table_records.class_label_names(pq.read_schema(path).metadata)


@pytest.mark.parametrize("layout", ["list", "sequence"])
def test_class_label_names_from_the_metadata_of_both_datasets_layouts(layout):
    assert _names(FIXTURES / f"ner_{layout}.parquet") == {"ner_tags": NER_TAGS}
    assert _names(FIXTURES / f"topics_{layout}.parquet") == {"labels": ["art", "food", "sport"]}
    assert _names(FIXTURES / "sentiment_train.parquet") == {"label": ["neg", "pos"]}


def test_parquet_without_hugging_face_metadata_keeps_its_values(tmp_path):
    pq.write_table(pa.table({"text": ["a", "b"], "label": [0, 1]}), tmp_path / "plain.parquet")
    assert _names(tmp_path / "plain.parquet") == {}
    records = list(table_records.table_records(tmp_path / "plain.parquet", "plain.parquet"))
    assert records == [{"text": "a", "label": 0}, {"text": "b", "label": 1}]


def _as_jsonl(tmp_path: Path, parquet: Path) -> str:
    """The rows of `parquet` with class labels spelt out by name, as JSON Lines."""
    table = pq.read_table(parquet)
    rows = table.to_pylist()
    for column, names in _names(parquet).items():
        for row in rows:
            value = row[column]
            row[column] = [names[v] for v in value] if isinstance(value, list) else names[value]
    return write_jsonl(tmp_path / (parquet.stem + ".jsonl"), rows)


@pytest.mark.parametrize(
    "kind, stem, fields",
    [
        ("classification", "sentiment_train", {}),
        ("tagging", "ner_list", {"tags_field": "ner_tags"}),
        ("tagging", "ner_sequence", {"tags_field": "ner_tags"}),
        ("multilabel", "topics_list", {"label_field": "labels"}),
        ("multilabel", "topics_sequence", {"label_field": "labels"}),
    ],
)
def test_a_parquet_task_reads_as_its_json_lines_with_label_names(tmp_path, kind, stem, fields):
    parquet = str(FIXTURES / f"{stem}.parquet")
    reference = _as_jsonl(tmp_path, FIXTURES / f"{stem}.parquet")
    read = {}
    for name, path in (("parquet", parquet), ("jsonl", reference)):
        config = config_for(kind=kind, train_file=path, eval_file=path, **fields)
        read[name] = tasks.load_task("jsonl", config)
    assert read["parquet"].labels == read["jsonl"].labels
    assert read["parquet"].train == read["jsonl"].train and read["parquet"].eval
    if kind == "tagging":
        assert read["parquet"].labels == ["B-LOC", "B-PER", "I-PER", "O"]  # names, not "0".."3"
        assert read["parquet"].eval[0].gold == ("B-PER", "I-PER", "O", "O", "B-LOC", "O")


@pytest.mark.parametrize("layout", ["list", "sequence"])
def test_squad_from_parquet_reads_as_its_json_lines(tmp_path, layout):
    parquet = FIXTURES / f"squad_{layout}.parquet"
    reference = write_jsonl(tmp_path / "squad.jsonl", pq.read_table(parquet).to_pylist())
    examples = squad.read_squad(parquet)
    assert examples == squad.read_squad(reference)
    assert [(e.id, e.answers) for e in examples] == [
        ("q0", (("the sea at Calder", 51),)),
        ("q1", (("the stone hills", 32),)),
    ]
    config = config_for(train_file=str(parquet), eval_file=str(parquet))
    assert tasks.load_task("squad", config).eval == examples


def test_the_arrow_file_of_save_to_disk_reads_as_its_parquet():
    arrow, parquet = str(FIXTURES / "ner_saved.arrow"), str(FIXTURES / "ner_list.parquet")
    read = {}
    for path in (arrow, parquet):
        config = config_for(kind="tagging", train_file=path, eval_file=path, tags_field="ner_tags")
        read[path] = tasks.load_task("jsonl", config)
    assert read[arrow].train == read[parquet].train and read[arrow].labels == read[parquet].labels
    assert read[arrow].eval[0].gold == ("B-PER", "I-PER", "O", "O", "B-LOC", "O")


def test_unlabelled_rows_and_bad_files_are_one_line_errors(tmp_path):
    config = config_for(kind="classification", train_file=str(FIXTURES / "sentiment_train.parquet"),
                        eval_file=str(FIXTURES / "sentiment_test.parquet"))  # fmt: skip
    with pytest.raises(UserError, match=r"record 1 of .*sentiment_test.parquet: 'label' is null"):
        tasks.load_task("jsonl", config)  # -1: no label (GLUE's test splits)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 truncated")
    config.eval_file = str(tmp_path / "bad.parquet")
    with pytest.raises(UserError, match=r"bad.parquet is not a readable Parquet file \(") as info:
        tasks.load_task("jsonl", config)
    assert "\n" not in str(info.value)
    metadata = pq.read_schema(FIXTURES / "sentiment_train.parquet").metadata
    table = pa.table({"text": ["x"], "label": [2]}).replace_schema_metadata(metadata)
    pq.write_table(table, tmp_path / "beyond.parquet")  # class 2 of ["neg", "pos"]
    config.eval_file = str(tmp_path / "beyond.parquet")
    with pytest.raises(UserError, match=r"record 1 of .*beyond.parquet: class label 2 is beyond"):
        tasks.load_task("jsonl", config)


def test_fine_tune_on_parquet_and_predict_a_parquet_file(tmp_path):
    """End to end: train from a Hub-style Parquet file, then label its unlabelled test split;
    each record comes back with its prediction (the missing label as null)."""
    train = str(FIXTURES / "sentiment_train.parquet")
    test = str(FIXTURES / "sentiment_test.parquet")
    texts = pq.read_table(train).column("text").to_pylist()
    init = tiny_model_dir(tmp_path, texts * 20)
    config = config_for(kind="classification", train_file=train, eval_file=train, num_epochs=1,
                        batch_size=8, eval_batch_size=8)  # fmt: skip
    trainer.finetune("jsonl", str(init), str(tmp_path / "run"), config)
    saved = tmp_path / "run" / "seed_0" / trainer.MODEL_DIR
    out = tmp_path / "predictions.jsonl"
    done = predict.predict_file(str(saved), test, str(out), batch_size=8)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert done.count == 2 and [r["text"] for r in lines] == ["a great story", "a stupid plot"]
    assert all(r["label"] is None and r["prediction"] in ("neg", "pos") for r in lines)


def test_a_split_kept_in_several_files_is_read_in_name_order(tmp_path):
    """`train-*.parquet` (a Hub dataset's shards) or a comma-separated list: one split."""
    rows = pq.read_table(FIXTURES / "sentiment_train.parquet")
    for i in range(2):  # shards 0 and 1 of 2, written out of order
        part = rows.slice(2 * (1 - i), 2)
        pq.write_table(part, tmp_path / f"train-0000{1 - i}-of-00002.parquet")
    one = config_for(kind="classification", train_file=str(FIXTURES / "sentiment_train.parquet"),
                     eval_file=str(FIXTURES / "sentiment_train.parquet"))  # fmt: skip
    expected = tasks.load_task("jsonl", one).train
    shards = sorted(str(p) for p in tmp_path.glob("train-*"))
    for train in (str(tmp_path / "train-*.parquet"), ",".join(shards)):
        config = config_for(kind="classification", train_file=train, eval_file=train)
        assert tasks.load_task("jsonl", config).train == expected
    config.train_file = f"{shards[0]},{tmp_path}/missing-*.parquet"
    with pytest.raises(UserError, match=r"task file '.*missing-\*.parquet' does not exist"):
        tasks.load_task("jsonl", config)
