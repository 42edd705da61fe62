"""Tests for bertjax/data/prepare.py (sharded TFRecords + manifest) and
bertjax/data/sources/prepared.py (the make_dataset contract over prepared shards)."""

import collections
import gzip
import itertools
import json

import numpy as np
import pytest

from bertjax import config as base_config
from bertjax.data import pipeline, prepare, vocab
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
    sizes = [prepare._shard_bytes(manifest["sources"], s, NUM_FILES) for s in range(NUM_FILES)]
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
    with pytest.raises(UserError, match="has no manifest.json"):
        missing = _config(corpus_dir, prepared_dir=str(corpus_dir))
        pipeline.build_pretraining_data(DataSpec.from_config(missing))
    with pytest.raises(UserError, match="gets no prepared shard"):
        _stream(prepared, config, global_batch_size=8, process_index=5, process_count=8)
