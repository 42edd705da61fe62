"""Tests for bertjax/data/prepare.py (sharded TFRecords + manifest) and
bertjax/data/sources/prepared.py (the make_dataset contract over prepared shards)."""

import collections
import functools
import gzip
import itertools
import json
import shutil

import numpy as np
import pytest

from bertjax import config as base_config
from bertjax.data import corpus, pipeline, prepare, prepare_shards, vocab
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.masking import MaskingSpec
from bertjax.data.sources import prepared as prepared_source
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import train_wordpiece_vocab
from bertjax.errors import UserError

LENGTH = 64
NUM_FILES = 4


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """24 inaugural addresses in 4 JSON Lines files, and a 1,000-token vocabulary."""
    root = tmp_path_factory.mktemp("prepare")
    with gzip.open(SAMPLE_CORPUS.replace("*", "inaugural"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:24]
    for i in range(NUM_FILES):
        lines = [json.dumps({"text": t}) for t in texts[i::NUM_FILES]]
        (root / f"part-{i}.jsonl").write_text("\n".join(lines) + "\n")
    train_wordpiece_vocab(texts, 1000, True, root / "vocab")
    return root


def _config(corpus_dir, **overrides):
    config = base_config.defaults()
    config.update(
        corpus=f"{corpus_dir}/part-*.jsonl",
        vocab_dir=str(corpus_dir / "vocab"),
        max_seq_length=LENGTH,
        max_predictions_per_seq=10,
        dupe_factor=1,
        seed=5,
    )
    config.update(overrides)
    return config


def _prepare(corpus_dir, out_name, **kwargs):
    kwargs = {"max_seq_length": LENGTH, "dupe_factor": 1, "seed": 5, "num_workers": 1, **kwargs}
    return prepare.run_prepare(
        f"{corpus_dir}/part-*.jsonl", corpus_dir / "vocab", corpus_dir / out_name, **kwargs
    )


@pytest.fixture(scope="module")
def four_shards(corpus_dir):
    """4 shards prepared by 2 worker processes."""
    manifest = _prepare(corpus_dir, "four", num_shards=4, num_workers=2)
    return prepared_source.load_prepared(corpus_dir / "four"), manifest


@pytest.mark.parametrize("packing", [False, True])
def test_one_shard_equals_the_in_memory_path(corpus_dir, packing):
    _prepare(corpus_dir, f"one-{packing}", num_shards=1, packing=packing)
    prepared = prepared_source.load_prepared(corpus_dir / f"one-{packing}")
    from_shards = prepared_source.read_instances(prepared)
    spec = DataSpec.from_config(_config(corpus_dir, packing=packing))
    in_memory = pipeline.build_pretraining_data(spec).source.arrays
    assert from_shards.keys() == in_memory.keys()
    for key in in_memory:
        np.testing.assert_array_equal(from_shards[key], in_memory[key], err_msg=key)
        assert from_shards[key].dtype == in_memory[key].dtype, key


def test_manifest_counts_settings_and_vocab(corpus_dir, four_shards):
    prepared, manifest = four_shards
    assert json.loads((prepared.directory / "manifest.json").read_text()) == manifest
    assert [s["file"] for s in manifest["shards"]] == [
        f"instances-0000{i}-of-00004.tfrecord" for i in range(4)
    ]
    assert all(s["instances"] > 0 and s["documents"] == 6 for s in manifest["shards"])
    assert all(s["seconds"] > 0 for s in manifest["shards"])
    # The workers took the shards largest first, not in shard order; results are in shard order.
    sizes = [
        prepare_shards.shard_bytes(manifest["sources"], s, NUM_FILES) for s in range(NUM_FILES)
    ]
    assert sizes != sorted(sizes, reverse=True)
    assert manifest["num_instances"] == sum(s["instances"] for s in manifest["shards"])
    assert manifest["num_documents"] == 24 and manifest["num_tokens"] > 10_000
    assert len(prepared_source.read_instances(prepared)["input_ids"]) == manifest["num_instances"]
    assert manifest["settings"]["max_seq_length"] == LENGTH
    assert manifest["settings"]["lowercase"] is True, "taken from vocab_meta.json"
    assert manifest["vocab_sha256"] == vocab.vocab_sha256(corpus_dir / "vocab")
    assert (prepared.vocab_dir / "vocab.txt").read_bytes() == (
        corpus_dir / "vocab" / "vocab.txt"
    ).read_bytes()
    assert len(manifest["sources"]) == NUM_FILES


def test_parallel_and_sequential_prepare_write_the_same_bytes(corpus_dir, four_shards):
    prepared, _ = four_shards
    _prepare(corpus_dir, "four-sequential", num_shards=4, num_workers=1)
    for name in (f"instances-0000{i}-of-00004.tfrecord" for i in range(4)):
        assert (corpus_dir / "four-sequential" / name).read_bytes() == (
            prepared.directory / name
        ).read_bytes()


def test_more_shards_than_files_split_documents(corpus_dir):
    manifest = _prepare(corpus_dir, "eight", num_shards=8)
    assert [s["documents"] for s in manifest["shards"]] == [3] * 8


def _stream(prepared, config, **kwargs):
    kwargs = {"global_batch_size": 4, "seed": 1, **kwargs}
    masking = MaskingSpec.from_config(config)
    return pipeline.make_dataset(prepared, masking, _Tokenizer(prepared), **kwargs)


class _Tokenizer:
    """`masking.masking_tables`' view of the prepared vocabulary."""

    def __init__(self, prepared):
        self.vocab = (prepared.vocab_dir / "vocab.txt").read_text().splitlines()
        self.vocab_size = len(self.vocab)
        self.special_ids = (0, 1, 2, 3, 4)
        self.mask_id = 4


def _take(dataset, num):
    return list(itertools.islice(dataset.as_numpy_iterator(), num))


def _rows(batches) -> list[bytes]:
    """Unmasked input_ids rows of the batches, as bytes."""
    rows = []
    for batch in batches:
        ids = batch["input_ids"].copy()
        for r in range(len(ids)):
            real = batch["masked_lm_weights"][r] == 1.0
            ids[r, batch["masked_lm_positions"][r][real]] = batch["masked_lm_ids"][r][real]
        rows.extend(row.tobytes() for row in ids)
    return rows


def test_stream_resumes_exactly_and_depends_on_the_seed(corpus_dir, four_shards):
    prepared, _ = four_shards
    config = _config(corpus_dir, masking="whole_word")
    full = _take(_stream(prepared, config), 6)
    resumed = _take(_stream(prepared, config, start_step=4), 2)
    for a, b in zip(full[4:], resumed, strict=True):
        assert tuple(a) == pipeline.FEATURE_NAMES
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    other = _take(_stream(prepared, config, seed=2), 1)
    assert not np.array_equal(full[0]["input_ids"], other[0]["input_ids"])
    # Past an epoch boundary too: example k keeps its mask (its global index) when resumed.
    epoch_steps = len(prepared) // 4
    full = _take(_stream(prepared, config), epoch_steps + 3)
    resumed = _take(_stream(prepared, config, start_step=epoch_steps + 1), 2)
    for a, b in zip(full[epoch_steps + 1 :], resumed, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_processes_cover_all_shards_disjointly_each_epoch(corpus_dir, four_shards, process_count):
    prepared, _ = four_shards
    config = _config(corpus_dir)
    everything = collections.Counter()
    for p in range(process_count):
        shards = prepared_source.process_shards(prepared, p, process_count)
        assert shards == list(range(p, 4, process_count))
        expected = collections.Counter(
            row.tobytes() for row in prepared_source.read_instances(prepared, shards)["input_ids"]
        )
        count = sum(expected.values())
        dataset = _stream(
            prepared, config, global_batch_size=process_count, process_index=p,
            process_count=process_count,
        )  # fmt: skip
        batches = _take(dataset, 2 * count)  # local batch 1: two epochs
        first, second = _rows(batches[:count]), _rows(batches[count:])
        assert collections.Counter(first) == collections.Counter(second) == expected
        assert first != second, "each epoch is shuffled afresh"
        everything.update(first)
    all_rows = prepared_source.read_instances(prepared)["input_ids"]
    assert everything == collections.Counter(row.tobytes() for row in all_rows)


def test_prepared_dir_in_the_config(corpus_dir, four_shards):
    prepared, _ = four_shards
    config = _config(corpus_dir, prepared_dir=str(prepared.directory), corpus="unused")
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    assert isinstance(data.source, prepared_source.PreparedCorpus)
    assert data.vocab_path == prepared.vocab_dir / "vocab.txt"
    assert data.num_documents == 24 and data.tokenizer.vocab_size == 1000
    masking = MaskingSpec.from_config(config)
    (batch,) = _take(
        pipeline.make_dataset(data.source, masking, data.tokenizer, global_batch_size=8, seed=0), 1
    )
    assert batch["input_ids"].shape == (8, LENGTH) and batch["masked_lm_weights"].sum() > 8
    with pytest.raises(UserError, match="prepared with max_seq_length=64"):
        pipeline.build_pretraining_data(
            DataSpec.from_config(
                _config(corpus_dir, prepared_dir=config.prepared_dir, max_seq_length=128)
            )
        )
    with pytest.raises(UserError, match=r"prepared with lowercase=True; set --config.lowercase"):
        pipeline.build_pretraining_data(  # the shards' ids are lowercased text's
            DataSpec.from_config(
                _config(corpus_dir, prepared_dir=config.prepared_dir, lowercase=False)
            )
        )
    with pytest.raises(UserError, match="has no manifest.json"):
        missing = _config(corpus_dir, prepared_dir=str(corpus_dir))
        pipeline.build_pretraining_data(DataSpec.from_config(missing))
    with pytest.raises(UserError, match="gets no prepared shard"):
        _stream(prepared, config, global_batch_size=8, process_index=5, process_count=8)


HOLDOUT = 0.25  # of the 24 documents, 3 are held out (by the CRC32 of their texts)


def test_held_out_documents_leave_the_shards_and_equal_the_in_memory_split(corpus_dir):
    """prepare --eval_holdout_fraction: one shard holds exactly the in-memory training split;
    heldout.jsonl.gz holds the documents the in-memory eval split reads (same order)."""
    manifest = _prepare(corpus_dir, "holdout-one", num_shards=1, eval_holdout_fraction=HOLDOUT)
    prepared = prepared_source.load_prepared(corpus_dir / "holdout-one")
    config = _config(corpus_dir, eval_holdout_fraction=HOLDOUT)
    in_memory = pipeline.build_pretraining_data(DataSpec.from_config(config)).source.arrays
    from_shards = prepared_source.read_instances(prepared)
    for key in in_memory:
        np.testing.assert_array_equal(from_shards[key], in_memory[key], err_msg=key)
    texts = [json.loads(line)["text"] for line in gzip.open(prepared.heldout_file, "rt")]
    expected = [t for t in corpus.read_documents(config.corpus) if corpus.is_held_out(t, HOLDOUT)]
    assert texts == expected and len(texts) == manifest["num_heldout_documents"] == 3
    assert manifest["num_documents"] == 24 - 3
    assert manifest["settings"]["eval_holdout_fraction"] == HOLDOUT


def test_a_prepared_run_evaluates_on_its_held_out_documents_with_its_vocabulary(corpus_dir):
    """The eval split of a run from prepared shards is the held-out documents of prepare, with
    the prepared vocabulary, whatever `corpus` and `vocab_dir` say (before: the held-out part of
    `corpus`, the sample corpus by default, tokenized by a vocabulary trained on it)."""
    manifest = _prepare(corpus_dir, "holdout-four", num_shards=4, eval_holdout_fraction=HOLDOUT)
    assert [s["heldout_documents"] for s in manifest["shards"]] == [
        sum(corpus.is_held_out(t, HOLDOUT) for t in corpus.read_documents(f))
        for f in manifest["sources"]
    ]
    directory = str(corpus_dir / "holdout-four")
    in_memory = pipeline.build_pretraining_data(
        DataSpec.from_config(_config(corpus_dir, eval_holdout_fraction=HOLDOUT)), split="eval"
    )
    from_prepared = pipeline.build_pretraining_data(
        DataSpec.from_config(
            _config(
                corpus_dir, prepared_dir=directory, eval_holdout_fraction=HOLDOUT,
                corpus=SAMPLE_CORPUS, vocab_dir="",
            )
        ),
        split="eval",
    )  # fmt: skip
    assert from_prepared.vocab_path == prepared_source.load_prepared(directory).vocab_dir / (
        "vocab.txt"
    )
    # The same documents (4 shards: in shard order) and vocabulary: the same token multiset.
    ids = [d.source.arrays["input_ids"] for d in (in_memory, from_prepared)]
    assert sorted(ids[0][ids[0] > 3].tolist()) == sorted(ids[1][ids[1] > 3].tolist())
    assert from_prepared.num_documents == 3


def test_a_prepared_run_refuses_held_out_settings_it_was_not_prepared_with(corpus_dir):
    _prepare(corpus_dir, "holdout-two", num_shards=2, eval_holdout_fraction=HOLDOUT)
    _prepare(corpus_dir, "no-holdout", num_shards=2)

    def eval_data(name, **overrides):
        config = _config(corpus_dir, prepared_dir=str(corpus_dir / name), **overrides)
        return pipeline.build_pretraining_data(DataSpec.from_config(config), split="eval")

    with pytest.raises(UserError, match=r"prepared with eval_holdout_fraction=0.25; set "):
        eval_data("holdout-two", eval_holdout_fraction=0.1)
    with pytest.raises(UserError, match="holds no held-out documents; prepare it with "):
        eval_data("no-holdout", eval_holdout_fraction=0.1)
    # Separate held-out files need no held-out documents in the prepared directory.
    assert eval_data("no-holdout", eval_corpus=f"{corpus_dir}/part-0.jsonl").num_documents == 6
    (corpus_dir / "holdout-two" / prepare.HELDOUT_FILE).unlink()
    with pytest.raises(UserError, match="heldout.jsonl.gz' is missing; prepare the corpus again"):
        eval_data("holdout-two", eval_holdout_fraction=HOLDOUT)
    # A finished dataset is not prepared over (it lost its manifest first, and kept shards of
    # another count beside the new ones); once its manifest is removed, nothing of it is kept.
    with pytest.raises(UserError, match=r"holdout-two already holds manifest.json from an earl"):
        _prepare(corpus_dir, "holdout-two", num_shards=1)
    (corpus_dir / "holdout-two" / prepare.MANIFEST_FILE).unlink()
    _prepare(corpus_dir, "holdout-two", num_shards=1)
    assert sorted(p.name for p in (corpus_dir / "holdout-two").iterdir()) == [
        "instances-00000-of-00001.tfrecord",
        prepare.MANIFEST_FILE,
        "run.lock",  # held while it was prepared (bertjax/run_lock.py)
        prepare.VOCAB_SUBDIR,
    ]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--eval_holdout_fraction=1", "--eval_holdout_fraction=1.0 must be in [0, 1)"),
        ("--short_seq_prob=2", "--short_seq_prob=2.0 must be in [0, 1]"),
        ("--dupe_factor=0", "--dupe_factor=0 must be >= 1"),
        ("--max_seq_length=4", "cannot hold [CLS] A [SEP] B [SEP]; set --max_seq_length to at"),
        ("--max_seq_length=2 --packing", "set --max_seq_length to at least 3"),
        ("--num_shards=0", "--num_shards=0 must be >= 1"),
    ],
)
def test_prepare_command_line_errors(corpus_dir, tmp_path, flag, message, capsys):
    from bertjax import cli

    argv = ["bertjax", "prepare", f"--input={corpus_dir}/part-*.jsonl",
            f"--vocab={corpus_dir}/vocab", f"--out={tmp_path}/out", *flag.split()]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_prepare_command_line_reads_paragraph_text(corpus_dir, tmp_path, capsys):
    """--text_format=paragraphs: one document per file (before, the flag did not exist and every
    blank-line paragraph became a document)."""
    from bertjax import cli

    texts = [json.loads(line)["text"] for line in (corpus_dir / "part-0.jsonl").open()]
    for i, text in enumerate(texts[:4]):
        (tmp_path / f"speech-{i}.txt").write_text(text.replace("\n", "\n\n"))
    argv = ["bertjax", "prepare", f"--input={tmp_path}/speech-*.txt",
            f"--vocab={corpus_dir}/vocab", f"--out={tmp_path}/out", "--text_format=paragraphs",
            "--num_shards=2", "--max_seq_length=64", "--short_seq_prob=0"]  # fmt: skip
    cli.main(argv)
    assert "from 4 documents" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["shards"]) == 2
    assert manifest["settings"]["text_format"] == "paragraphs"
    assert manifest["settings"]["short_seq_prob"] == 0.0


def test_nsp_from_one_document_files_pairs_them_in_shards_of_two(corpus_dir, tmp_path, caplog):
    """--text_format=paragraphs makes each file one document and NSP partners come from the
    shard: by default a shard takes two files (one each made no pair and failed as 'yields no
    training instance'); shards of one document each pair their documents in the first of
    them (they were left out: a corpus of books without blank lines lost all but one); one
    document left alone is a warning naming its shard, a corpus of one document an error."""
    texts = [json.loads(line)["text"] for line in (corpus_dir / "part-0.jsonl").open()]
    for i, text in enumerate(texts[:5]):
        (tmp_path / f"book-{i}.txt").write_text(text)
    run = functools.partial(
        prepare.run_prepare, f"{tmp_path}/book-*.txt", corpus_dir / "vocab",
        text_format="paragraphs", max_seq_length=LENGTH, dupe_factor=1, num_workers=1,
    )  # fmt: skip
    manifest = run(tmp_path / "default")
    assert [s["documents"] for s in manifest["shards"]] == [3, 2]
    assert all(s["instances"] > 0 for s in manifest["shards"])
    manifest = run(tmp_path / "five", num_shards=5)
    assert [s["documents"] for s in manifest["shards"]] == [5, 0, 0, 0, 0]
    assert manifest["shards"][0]["instances"] > 0 and manifest["num_documents"] == 5
    assert sum(s["unpaired_documents"] for s in manifest["shards"]) == 0
    assert "5 shards of one document each: their documents are paired" in caplog.text
    manifest = run(tmp_path / "three", num_shards=3)  # files 0 and 3, 1 and 4, 2 alone
    assert [s["documents"] for s in manifest["shards"]] == [2, 2, 0]
    assert [s["unpaired_documents"] for s in manifest["shards"]] == [0, 0, 1]
    assert (
        "1 document alone in its shard (instances-00002-of-00003.tfrecord) is left" in caplog.text
    )
    with pytest.raises(UserError, match=r"holds one document, and NSP pairs need 2 \(in a .txt "):
        prepare.run_prepare(
            f"{tmp_path}/book-0.txt", corpus_dir / "vocab", tmp_path / "one",
            text_format="paragraphs", max_seq_length=LENGTH, dupe_factor=1, num_workers=1,
        )  # fmt: skip


def test_one_document_files_without_a_document_are_not_paired_by_default(corpus_dir, tmp_path):
    """Files without a document (empty, another encoding) are left out before the default
    shards pair files: each book has a partner (before, an empty file's partner book was alone
    in its shard and dropped with a warning: 2 of 4 books here)."""
    texts = [json.loads(line)["text"] for line in (corpus_dir / "part-0.jsonl").open()]
    for i, text in enumerate(texts[:4]):
        (tmp_path / f"book-{i}.txt").write_text(text)
    (tmp_path / "book-4.txt").write_text("")
    (tmp_path / "book-5.txt").write_bytes("Café à la crème.\nÉté brûlé.\n".encode("latin-1"))
    manifest = prepare.run_prepare(
        f"{tmp_path}/book-*.txt", corpus_dir / "vocab", tmp_path / "out",
        text_format="paragraphs", max_seq_length=LENGTH, dupe_factor=1, num_workers=1,
    )  # fmt: skip
    assert [s["documents"] for s in manifest["shards"]] == [2, 2]
    assert manifest["num_documents"] == 4
    assert len(manifest["sources"]) == 6  # the input as given


def test_a_corpus_without_the_text_field_names_the_flag(corpus_dir, tmp_path, capsys):
    """The reading error of the shards, not 'yields no training instance; check --input'."""
    from bertjax import cli

    argv = ["bertjax", "prepare", f"--input={corpus_dir}/part-*.jsonl",
            f"--vocab={corpus_dir}/vocab", f"--out={tmp_path}/out", "--text_field=body",
            "--num_shards=2"]  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main(argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "0 documents; skipped 6 without field 'body'" in last  # 2 files of 6
    assert last.endswith("check --text_field (the JSON field or the column that holds the text)")


def test_unknown_tokens_are_counted_and_warned_about(corpus_dir, tmp_path, caplog):
    """Text the vocabulary cannot spell (Greek and Thai for an English vocabulary) is [UNK]:
    prepare and the in-memory build count it and warn; the English corpus itself does not."""
    caplog.set_level("WARNING", logger="absl")
    english = _prepare(corpus_dir, "english")
    assert english["num_unknown_tokens"] / english["num_tokens"] < 0.01
    assert "are [UNK]" not in caplog.text
    foreign = ["Η Αθήνα είναι πρωτεύουσα. Είναι μεγάλη πόλη. Ναι, πολύ!", "ฉันไปตลาด วันนี้ฝนตก"]
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in foreign * 4]
    (tmp_path / "foreign.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = prepare.run_prepare(
        f"{tmp_path}/foreign.jsonl", corpus_dir / "vocab", tmp_path / "out", num_workers=1
    )
    share = manifest["num_unknown_tokens"] / manifest["num_tokens"]
    assert share > 0.5
    assert sum(s["unknown_tokens"] for s in manifest["shards"]) == manifest["num_unknown_tokens"]
    assert f"{share:.1%} of the corpus's tokens are [UNK]" in caplog.text
    caplog.clear()
    spec = DataSpec.from_config(_config(corpus_dir, corpus=f"{tmp_path}/foreign.jsonl"))
    pipeline.build_pretraining_data(spec)
    assert "of the corpus's tokens are [UNK]: the vocabulary lacks" in caplog.text


@pytest.mark.parametrize("num_shards", [None, 3])
def test_prepare_logs_sentence_stats_and_warns_of_an_unsplit_source(
    corpus_dir, tmp_path, caplog, num_shards
):
    """As the in-memory build: each source's sentence statistics, and the warning for a source
    whose documents are one long "sentence" each (NSP pairs of arbitrary cuts): exact with a
    shard per file, from one shard's sample when documents are dealt across shards; none when
    the rows are packed (they need no sentences)."""
    caplog.set_level("INFO", logger="absl")
    run_on = "a review without any capital letter or full stop that goes on and on " * 20
    lines = [json.dumps({"text": f"{i} {run_on}"}) for i in range(8)]
    (tmp_path / "reviews.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "prose.jsonl").write_text((corpus_dir / "part-0.jsonl").read_text())
    corpus_glob = f"{tmp_path}/*.jsonl"
    kwargs = dict(num_workers=1, num_shards=num_shards, max_seq_length=LENGTH, dupe_factor=1)
    prepare.run_prepare(corpus_glob, corpus_dir / "vocab", tmp_path / "nsp", **kwargs)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if "look unsplit" in w] == [
        next(w for w in warnings if w.startswith("Sentences of reviews.jsonl look unsplit"))
    ]
    assert "Sentences of prose.jsonl: " in caplog.text
    documents = 8 if num_shards is None else 3  # dealt 3, 3, 2 to the 3 shards: the largest
    assert f"Sentences of reviews.jsonl: {documents} documents, 1.0 sentences" in caplog.text
    caplog.clear()
    prepare.run_prepare(
        corpus_glob, corpus_dir / "vocab", tmp_path / "packed", packing=True, **kwargs
    )
    assert "Sentences of reviews.jsonl: " in caplog.text and "look unsplit" not in caplog.text


def test_a_cased_vocab_txt_without_its_settings_prepares_cased_text(corpus_dir, tmp_path):
    """google's cased_L-12 download is a bare vocab.txt: its casing comes from its tokens (it
    was lowercased, the upper-case tokens never used); an uncased one stays lowercased."""
    tokens = (corpus_dir / "vocab" / "vocab.txt").read_text().splitlines()
    (tmp_path / "cased").mkdir()
    (tmp_path / "cased" / "vocab.txt").write_text("\n".join(tokens + ["President", "The"]) + "\n")
    manifest = prepare.run_prepare(
        f"{corpus_dir}/part-0.jsonl", tmp_path / "cased", tmp_path / "out", num_workers=1
    )
    assert manifest["settings"]["lowercase"] is False
    (tmp_path / "uncased").mkdir()
    (tmp_path / "uncased" / "vocab.txt").write_text("\n".join(tokens) + "\n")
    manifest = prepare.run_prepare(
        f"{corpus_dir}/part-0.jsonl", tmp_path / "uncased", tmp_path / "out2", num_workers=1
    )
    assert manifest["settings"]["lowercase"] is True


def _damaged_manifest(manifest: dict, damage: str):
    if damage == "not JSON":
        return '{"format_version": 1, "shards": ['  # cut short
    manifest = json.loads(json.dumps(manifest))
    if damage == "no instance count":
        del manifest["shards"][2]["instances"]
    elif damage == "no settings key":
        del manifest["settings"]["packing"]
    elif damage == "a list":
        manifest = [manifest]
    return json.dumps(manifest)


@pytest.mark.parametrize("damage, message", [
    ("not JSON", r"manifest.json' is damaged \(it is not JSON: "),
    ("no instance count", r"manifest.json' is damaged \(shard 2 has no instance count\)"),
    ("no settings key", r"manifest.json' is damaged \(no packing in its settings\)"),
    ("a list", r"manifest.json' is damaged \(not a JSON object\)"),
    ("cut shard", r"prepared file '.*instances-00001-of-00004.tfrecord' is 100 bytes, not the "
     r"[\d,]+ it was written with: it was cut or changed; prepare the corpus again$"),
    ("empty shard, older manifest", r"instances-00001-of-00004.tfrecord' is empty; prepare"),
    ("no vocab.txt", r"prepared file '.*vocab.txt' is missing; prepare the corpus again$"),
])  # fmt: skip
def test_a_damaged_prepared_dir_is_one_line_before_training(
    corpus_dir, four_shards, tmp_path, damage, message
):
    prepared, manifest = four_shards
    copy = tmp_path / "prepared"
    shutil.copytree(prepared.directory, copy)
    shard = copy / manifest["shards"][1]["file"]
    if damage == "cut shard":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "empty shard, older manifest":  # manifests before sizes were recorded
        shard.write_bytes(b"")
        older = json.loads((copy / "manifest.json").read_text())
        for entry in older["shards"]:
            del entry["bytes"]
        (copy / "manifest.json").write_text(json.dumps(older))
    elif damage == "no vocab.txt":
        (copy / "vocab" / "vocab.txt").unlink()
    else:
        (copy / "manifest.json").write_text(_damaged_manifest(manifest, damage))
    with pytest.raises(UserError, match=message):
        prepared_source.load_prepared(copy)
    # The intact directory still loads, and records each file's size.
    assert all(entry["bytes"] > 0 for entry in prepared_source.load_prepared(prepared.directory)
               .manifest["shards"])  # fmt: skip
