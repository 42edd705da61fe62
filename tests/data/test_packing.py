"""Tests for bertjax/data/packing.py and packed rows through the training stream."""

import itertools
import json

import numpy as np
import pytest

from bertjax.config import defaults as get_config
from bertjax.data import packing, pipeline
from bertjax.data.masking import MaskingSpec
from bertjax.data.sources.in_memory import InMemoryInstances
from bertjax.data.spec import DataSpec
from bertjax.errors import UserError

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
LENGTH = 32
SPECIAL = dict(cls_id=CLS, sep_id=SEP, pad_id=PAD)


def _documents(num: int, seed: int = 0) -> list[list[list[int]]]:
    """Random documents: 1-6 sentences of 1-40 ids in 5..999, some longer than a row."""
    rng = np.random.default_rng(seed)
    return [
        [list(rng.integers(5, 1000, rng.integers(1, 41))) for _ in range(rng.integers(1, 7))]
        for _ in range(num)
    ]


def _framed(document) -> tuple[int, ...]:
    return (CLS, *[t for s in document for t in s], SEP)


def _pieces_of_stream(rows: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    """The framed documents read back from the rows: real tokens in order, cut before [CLS]."""
    stream = rows["input_ids"][rows["input_mask"] == 1]
    starts = np.flatnonzero(stream == CLS)
    return [tuple(p) for p in np.split(stream, starts[1:])]


@pytest.mark.parametrize("dupe_factor", [1, 3])
def test_rows_are_full_and_no_token_is_lost_or_duplicated(dupe_factor):
    documents = _documents(50) + [[[7]], [[]], []]  # a one-token document; two empty ones
    rows = packing.pack_documents(
        documents, max_seq_length=LENGTH, dupe_factor=dupe_factor, seed=1, **SPECIAL
    )
    mask = rows["input_mask"]
    assert mask.shape[1] == LENGTH and mask.dtype == np.int32
    assert np.all(mask[:-1] == 1), "every row but the last is full"
    last = mask[-1]
    assert np.all(np.diff(last) <= 0) and last[0] == 1, "padding only at the very end"
    assert np.all(rows["input_ids"][mask == 0] == PAD)
    expected = sorted(_framed(d) for d in documents if any(d) for _ in range(dupe_factor))
    assert sorted(_pieces_of_stream(rows)) == expected
    assert rows["input_mask"].sum() == sum(len(p) for p in expected)


def test_passes_use_fresh_document_orders():
    documents = _documents(30)
    rows = packing.pack_documents(
        documents, max_seq_length=LENGTH, dupe_factor=2, seed=0, **SPECIAL
    )
    pieces = _pieces_of_stream(rows)
    first, second = pieces[:30], pieces[30:]
    assert sorted(first) == sorted(second) and first != second
    again = packing.pack_documents(
        documents, max_seq_length=LENGTH, dupe_factor=2, seed=0, **SPECIAL
    )
    for key in rows:
        np.testing.assert_array_equal(rows[key], again[key])


def test_attention_never_crosses_documents():
    rows = packing.pack_documents(
        _documents(80, seed=3), max_seq_length=LENGTH, dupe_factor=1, seed=2, **SPECIAL
    )
    allowed = packing.attention_mask_from_segments(rows["attention_segment_ids"])
    assert allowed.shape == (len(rows["input_ids"]), LENGTH, LENGTH)
    # Independent reference: a token's document is the number of [CLS] seen before it in the
    # stream (each framed document starts with exactly one).
    real = rows["input_mask"] == 1
    document = np.full(rows["input_ids"].shape, -1)
    document[real] = np.cumsum(rows["input_ids"][real] == CLS)
    same_document = (document[:, :, None] == document[:, None, :]) & real[:, None, :]
    np.testing.assert_array_equal(allowed[real], same_document[real])
    assert not np.any(allowed[:, :, ~real[-1]][-1]), "padding keys are never attended to"
    # Rows hold several documents, so the mask is a real restriction.
    assert np.mean([len(np.unique(s[s > 0])) for s in rows["attention_segment_ids"]]) > 1.3
    np.testing.assert_array_equal(rows["segment_ids"], 0)
    np.testing.assert_array_equal(rows["next_sentence_weights"], 0.0)
    assert rows["next_sentence_weights"].dtype == np.float32


def test_attention_segments_number_pieces_from_one_in_each_row():
    rows = packing.pack_documents(
        [[[10] * 5], [[11] * 40], [[12] * 3]], max_seq_length=16, dupe_factor=1, seed=0,
        **SPECIAL,
    )  # fmt: skip
    for segments, mask in zip(rows["attention_segment_ids"], rows["input_mask"], strict=True):
        real = segments[mask == 1]
        assert real[0] == 1 and np.all(np.diff(real) >= 0) and np.all(np.diff(real) <= 1)
        assert np.all(segments[mask == 0] == 0)


def test_user_errors():
    with pytest.raises(UserError, match="no document with text"):
        packing.pack_documents([[[]], []], max_seq_length=8, dupe_factor=1, seed=0, **SPECIAL)
    with pytest.raises(UserError, match="max_seq_length=2"):
        packing.pack_documents([[[5]]], max_seq_length=2, dupe_factor=1, seed=0, **SPECIAL)


class _Vocab:
    """The tokenizer surface `masking.masking_tables` reads, over a made-up vocabulary."""

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"##p{i}" if i % 3 == 0 else f"w{i}" for i in range(5, 1000)
    ]
    vocab_size = len(vocab)
    special_ids = (PAD, UNK, CLS, SEP, MASK)
    mask_id = MASK


@pytest.mark.parametrize("masking", ["token", "whole_word", "span"])
def test_packed_rows_through_make_dataset(masking):
    rows = packing.pack_documents(
        _documents(60, seed=5), max_seq_length=LENGTH, dupe_factor=1, seed=0, **SPECIAL
    )
    config = get_config()
    config.update(masking=masking, max_predictions_per_seq=8)
    spec = MaskingSpec.from_config(config)
    num = len(rows["input_ids"])
    source = InMemoryInstances(rows)
    dataset = pipeline.make_dataset(source, spec, _Vocab(), global_batch_size=num, seed=4)
    (batch,) = itertools.islice(dataset.as_numpy_iterator(), 1)
    assert tuple(batch) == pipeline.FEATURE_NAMES + pipeline.PACKED_FEATURE_NAMES
    assert batch["attention_segment_ids"].shape == (num, LENGTH)
    assert batch["next_sentence_weights"].dtype == np.float32
    np.testing.assert_array_equal(batch["next_sentence_weights"], 0.0)
    # One epoch: each packed row exactly once, its segments travelling with it.
    original = batch["input_ids"].copy()
    for row in range(num):
        real = batch["masked_lm_weights"][row] == 1.0
        original[row, batch["masked_lm_positions"][row][real]] = batch["masked_lm_ids"][row][real]
    index = {r.tobytes(): i for i, r in enumerate(rows["input_ids"])}
    order = [index[r.tobytes()] for r in original]
    assert sorted(order) == list(range(num))
    np.testing.assert_array_equal(
        batch["attention_segment_ids"], rows["attention_segment_ids"][order]
    )
    chosen = np.take_along_axis(original, batch["masked_lm_positions"], axis=1)
    real = batch["masked_lm_weights"] == 1.0
    assert not np.any(np.isin(chosen[real], [CLS, SEP, PAD])), "specials are never masked"
    assert 0.1 < real.sum() / (batch["input_mask"].sum() - 2 * 60) < 0.16


def test_build_pretraining_data_with_packing(tmp_path, tmp_path_factory):
    path = tmp_path / "one.jsonl"
    text = " ".join(f"Sentence number {i} of the only document." for i in range(60))
    path.write_text(json.dumps({"text": text}) + "\n")
    config = get_config()
    config.update(
        corpus=str(path),
        cache_dir=str(tmp_path / "cache"),
        vocab_size=200,
        max_seq_length=64,
        packing=True,
        dupe_factor=2,
    )
    # one document is enough without NSP
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    rows = data.source.arrays
    assert set(rows) == {*pipeline.INSTANCE_KEYS, *pipeline.PACKED_FEATURE_NAMES}
    assert np.all(rows["input_mask"][:-1] == 1)
    assert (rows["input_ids"] == data.tokenizer.cls_id).sum() == 2  # the document, twice
