"""Tests for bertjax/data/pipeline.py: corpus -> instances -> deterministic, resumable batches."""

import itertools
import json
import logging
import re

import numpy as np
import pytest

from bertjax.config import defaults as get_config
from bertjax.config import from_config
from bertjax.data import corpus, pipeline
from bertjax.data import masking as masking_module
from bertjax.data.masking import MaskingSpec
from bertjax.data.sources.in_memory import InMemoryInstances
from bertjax.data.spec import DataSpec
from bertjax.errors import UserError

MAX_SEQ_LENGTH = 64
MAX_PREDICTIONS = 10
BATCH = 8


def _config(cache_dir, **overrides):
    config = get_config()
    config.vocab_size = 3000
    config.cache_dir = str(cache_dir)
    config.max_seq_length = MAX_SEQ_LENGTH
    config.max_predictions_per_seq = MAX_PREDICTIONS
    config.dupe_factor = 1
    config.batch_size = BATCH
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # The session-wide cache shared with the other data tests: the vocabulary is trained once.
    return _config(tmp_path_factory.getbasetemp() / "bertjax-vocab-cache")


@pytest.fixture(scope="module")
def data(config) -> pipeline.PretrainingData:
    return pipeline.build_pretraining_data(DataSpec.from_config(config))


def _dataset(data, config, **overrides):
    kwargs = dict(global_batch_size=BATCH, seed=3)
    kwargs.update(overrides)
    masking = MaskingSpec.from_config(config)
    return pipeline.make_dataset(data.source, masking, data.tokenizer, **kwargs)


def _take(dataset, num_batches):
    return list(itertools.islice(dataset.as_numpy_iterator(), num_batches))


def _assert_batches_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _unmasked(batch) -> np.ndarray:
    """The batch's input_ids with the original ids put back at the masked positions."""
    ids = batch["input_ids"].copy()
    for row in range(len(ids)):
        real = batch["masked_lm_weights"][row] == 1.0
        ids[row, batch["masked_lm_positions"][row][real]] = batch["masked_lm_ids"][row][real]
    return ids


def test_build_pretraining_data_counts(data):
    assert data.num_documents == 126
    assert data.num_sentences > 20_000
    assert data.vocab_path.name == "vocab.txt" and data.tokenizer.vocab_size == 3000
    instances = data.source.arrays
    assert set(instances) == {"input_ids", "input_mask", "segment_ids", "next_sentence_labels"}
    assert instances["input_ids"].shape[1] == MAX_SEQ_LENGTH
    assert len(instances["input_ids"]) > 10_000
    assert abs(instances["next_sentence_labels"].mean() - 0.5) < 0.03


def test_features_shapes_and_dtypes(data, config):
    (batch,) = _take(_dataset(data, config), 1)
    assert tuple(batch) == pipeline.FEATURE_NAMES
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert batch[name].shape == (BATCH, MAX_SEQ_LENGTH) and batch[name].dtype == np.int32
    for name in ("masked_lm_positions", "masked_lm_ids"):
        assert batch[name].shape == (BATCH, MAX_PREDICTIONS) and batch[name].dtype == np.int32
    assert batch["masked_lm_weights"].shape == (BATCH, MAX_PREDICTIONS)
    assert batch["masked_lm_weights"].dtype == np.float32
    assert batch["next_sentence_labels"].shape == (BATCH,)
    assert batch["next_sentence_labels"].dtype == np.int32


def test_masks_on_real_text(data, config):
    tokenizer = data.tokenizer
    batches = _take(_dataset(data, config, global_batch_size=64), 8)
    selected = total_eligible = 0
    for batch in batches:
        original = _unmasked(batch)
        eligible = (batch["input_mask"] == 1) & ~np.isin(original, tokenizer.special_ids)
        total_eligible += eligible.sum()
        selected += batch["masked_lm_weights"].sum()
        real = batch["masked_lm_weights"] == 1.0
        rows = np.nonzero(real)[0]
        positions = batch["masked_lm_positions"][real]
        assert np.all(eligible[rows, positions]), "a special token or padding was selected"
        assert np.all(original[:, 0] == tokenizer.cls_id)
    # max_predictions_per_seq=10 binds for the longest rows (15% of 61 rounds to 9): <= 15%.
    assert 0.13 < selected / total_eligible <= 0.15


def test_resume_gives_the_same_batches(data, config):
    full = _take(_dataset(data, config), 6)
    resumed = _take(_dataset(data, config, start_step=3), 3)
    _assert_batches_equal(full[3:], resumed)
    again = _take(_dataset(data, config), 6)
    _assert_batches_equal(full, again)
    other_seed = _take(_dataset(data, config, seed=4), 1)
    assert not np.array_equal(full[0]["input_ids"], other_seed[0]["input_ids"])


def test_processes_split_each_global_batch(data, config):
    single = _take(_dataset(data, config, start_step=2), 2)
    shards = [
        _take(_dataset(data, config, start_step=2, process_index=p, process_count=2), 2)
        for p in range(2)
    ]
    for step in range(2):
        assert shards[0][step]["input_ids"].shape[0] == BATCH // 2
        for key in pipeline.FEATURE_NAMES:
            joined = np.concatenate([shards[0][step][key], shards[1][step][key]])
            np.testing.assert_array_equal(joined, single[step][key], err_msg=key)
    # Disjoint examples: no row of process 0 equals a row of process 1.
    rows_0 = {r.tobytes() for b in shards[0] for r in _unmasked(b)}
    rows_1 = {r.tobytes() for b in shards[1] for r in _unmasked(b)}
    assert len(rows_0) == len(rows_1) == BATCH and not rows_0 & rows_1


def test_epochs_are_permutations_with_fresh_order_and_masks(data, config):
    num = 12
    instances = {key: value[:num] for key, value in data.source.arrays.items()}
    dataset = pipeline.make_dataset(
        InMemoryInstances(instances),
        MaskingSpec.from_config(config),
        data.tokenizer,
        global_batch_size=4,
        seed=3,
    )
    batches = _take(dataset, 6)  # two epochs of 12
    table = {row.tobytes(): i for i, row in enumerate(instances["input_ids"])}
    order = [table[row.tobytes()] for batch in batches for row in _unmasked(batch)]
    assert sorted(order[:num]) == sorted(order[num:]) == list(range(num))
    assert order[:num] != order[num:], "each epoch is shuffled differently"
    assert order[:num] != list(range(num))
    positions = {}
    for step, batch in enumerate(batches):
        for row in range(4):
            positions.setdefault(order[step * 4 + row], []).append(
                batch["masked_lm_positions"][row].tobytes()
            )
    fresh = sum(first != second for first, second in positions.values())
    assert fresh >= num - 1, "dynamic masking: an instance gets a new mask each epoch"
    labels = np.concatenate([b["next_sentence_labels"] for b in batches])
    np.testing.assert_array_equal(labels, instances["next_sentence_labels"][order])


def test_masking_tables(data, config):
    spec = MaskingSpec.from_config(config)
    tables = masking_module.masking_tables(spec, data.tokenizer)
    assert tables.mask_id == data.tokenizer.mask_id
    assert spec.masked_lm_prob == config.masked_lm_prob
    assert spec.max_predictions_per_seq == MAX_PREDICTIONS
    special, random_ids = tables.special_ids, tables.random_token_ids
    assert list(special) == [0, 1, 2, 3, 4]
    assert len(random_ids) == 3000 - 5 and random_ids.min() == 5 and random_ids.max() == 2999


def test_dataset_user_errors(data, config):
    with pytest.raises(UserError, match="batch_size=9 must be a positive multiple of the 2"):
        _dataset(data, config, global_batch_size=9, process_count=2)
    empty = InMemoryInstances({key: value[:0] for key, value in data.source.arrays.items()})
    with pytest.raises(UserError, match="no pretraining instances"):
        pipeline.make_dataset(
            empty, MaskingSpec.from_config(config), data.tokenizer, global_batch_size=2, seed=0
        )


def test_single_document_corpus_is_a_user_error(tmp_path, data, config):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"text": "Only one document. It has two sentences."}) + "\n")
    vocab_dir = data.vocab_path.parent
    small = _config(config.cache_dir, corpus=str(path), vocab_dir=str(vocab_dir))
    with pytest.raises(UserError, match="at least 2 non-empty documents"):
        pipeline.build_pretraining_data(DataSpec.from_config(small))


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_word_masking_on_real_text_is_resumable_and_whole(data, config, masking):
    config = _config(config.cache_dir, masking=masking)
    tables = masking_module.masking_tables(MaskingSpec.from_config(config), data.tokenizer)
    vocab = data.tokenizer.vocab
    table = tables.word_start_table
    assert table.shape == (len(vocab),)
    assert all(table[i] != vocab[i].startswith("##") for i in range(len(vocab)))
    assert (tables.span_length_probs is not None) == (masking == "span")
    full = _take(_dataset(data, config), 4)
    resumed = _take(_dataset(data, config, start_step=2), 2)
    _assert_batches_equal(full[2:], resumed)
    for batch in full:
        original = _unmasked(batch)
        for row in range(BATCH):
            real = batch["masked_lm_weights"][row] == 1.0
            selected = np.zeros(MAX_SEQ_LENGTH, bool)
            selected[batch["masked_lm_positions"][row][real]] = True
            # A selected word start is followed by its selected ## pieces, never a partial word.
            following = np.flatnonzero(selected[:-1] & ~selected[1:]) + 1
            assert not any(vocab[original[row, i]].startswith("##") for i in following)
            # A selected ## piece continues a selected piece, unless truncation cut the word and
            # left the piece right after [CLS]/[SEP].
            special = set(data.tokenizer.special_ids)
            assert not any(
                vocab[original[row, i]].startswith("##")
                and not selected[i - 1]
                and original[row, i - 1] not in special
                for i in np.flatnonzero(selected)
            )


def test_unknown_masking_is_a_user_error(data, config):
    with pytest.raises(UserError, match="masking='bpe' is unknown"):
        MaskingSpec.from_config(_config(config.cache_dir, masking="bpe"))


def test_bad_corpus_end_to_end_is_skipped_and_counted(tmp_path, data, config, caplog):
    """Non-UTF-8 bytes, malformed lines, control characters, empty files and documents,
    single-sentence documents and a 10 MB line without a sentence end: no crash."""
    (tmp_path / "big.jsonl").write_text(json.dumps({"text": "word and more " * 700_000}) + "\n")
    singles = [json.dumps({"text": f"Only one sentence in document {i}."}) for i in range(5)]
    (tmp_path / "single.jsonl").write_text("\n".join(singles) + "\n")
    (tmp_path / "bad.jsonl").write_bytes(
        b'{"text": "caf\xe9 bytes. Second one."}\n{broken\n{"text": "\x00\x01\x07"}\n'
    )
    (tmp_path / "empty.txt").write_text("")
    small = _config(
        config.cache_dir,
        corpus=f"{tmp_path}/*,{tmp_path}/none/*.txt",
        vocab_dir=str(data.vocab_path.parent),
    )
    result = pipeline.build_pretraining_data(DataSpec.from_config(small))
    assert result.num_documents == 7
    instances = result.source.arrays
    # The 10 MB "sentence" (2.1M tokens) is cut into half-row pieces that fill many instances
    # (a random B from this corpus's one-sentence documents leaves a row part empty: 0.84 full).
    assert len(instances["input_ids"]) > 20_000
    assert instances["input_mask"].mean() > 0.8
    assert "none/*.txt' matched no files" in caplog.text
    assert "skipped {'invalid JSON': 1, 'empty documents': 1}" in caplog.text
    assert "'lines with invalid UTF-8': 1" in caplog.text


def test_build_logs_sentence_statistics_per_source(tmp_path, data, config, caplog):
    """One statistics line per corpus file, for the documents of the split; a warning names the
    file whose documents come out as one long sentence each."""
    unsplit = [
        f"review {i} is lowercase , has no sentence end , and goes on " * 30 for i in range(6)
    ]
    prose = [
        f"It rained on day {i}. We stayed in and read. The sun came out. " * 5 for i in range(6)
    ]
    (tmp_path / "reviews.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in unsplit)
    )
    (tmp_path / "prose.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in prose))
    small = _config(
        config.cache_dir,
        corpus=f"{tmp_path}/*.jsonl",
        vocab_dir=str(data.vocab_path.parent),
        eval_holdout_fraction=0.5,
    )
    with caplog.at_level(logging.INFO):
        result = pipeline.build_pretraining_data(DataSpec.from_config(small))
    lines = re.findall(
        r"Sentences of (\w+\.jsonl): (\d+) documents, ([\d.]+) sentences", caplog.text
    )
    assert sorted(name for name, _, _ in lines) == ["prose.jsonl", "reviews.jsonl"]
    assert sum(int(count) for _, count, _ in lines) == result.num_documents < 12
    assert {name: float(mean) for name, _, mean in lines} == {
        "prose.jsonl": 15.0,
        "reviews.jsonl": 1.0,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Sentences of reviews.jsonl look unsplit" in w for w in warnings)
    assert not any("prose.jsonl look unsplit" in w for w in warnings)


@pytest.mark.parametrize(
    "split, fraction, packing, message",
    [
        ("eval", 0.02, False, "held out 0 of the corpus's 3 documents .* NSP pairs need 2"),
        ("train", 0.999, False, "left for training 0 of the corpus's 3 documents"),
        ("eval", 0.02, True, "held out 0 of the corpus's 3 documents .* packed rows need 1"),
    ],
)
def test_a_holdout_that_leaves_a_split_too_few_documents_says_so(
    tmp_path, data, config, split, fraction, packing, message
):
    """A corpus of 3 long documents (books, one file each): a 2% holdout holds none of them out,
    which used to fail as 'add documents to --config.corpus'."""
    books = [f"Book {b} begins. " + f"It goes on with part {b}. " * 200 for b in range(3)]
    for b, text in enumerate(books):
        (tmp_path / f"book{b}.txt").write_text(text, encoding="utf-8")
    held_out = [corpus.is_held_out(text, fraction) for text in books]
    assert held_out == [split == "train"] * 3  # the case the test is about
    small = _config(
        config.cache_dir,
        corpus=f"{tmp_path}/*.txt",
        text_format="paragraphs",
        vocab_dir=str(data.vocab_path.parent),
        eval_holdout_fraction=fraction,
        packing=packing,
    )
    with pytest.raises(UserError, match=message):
        pipeline.build_pretraining_data(DataSpec.from_config(small), split)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(masking="span", max_ngram=0), "max_ngram=0 must be >= 1"),
        (dict(masking="span", span_distribution="zipf"), "span_distribution='zipf' is unknown"),
        (dict(masking="span", span_geometric_p=1.5), "span_geometric_p=1.5 must be in"),
        (dict(text_format="csv"), "text_format='csv' is unknown"),
        (dict(masking="words"), "masking='words' is unknown"),
    ],
)
def test_bad_data_fields_fail_before_reading_the_corpus(tmp_path, overrides, message):
    config = _config(tmp_path, corpus=str(tmp_path / "does-not-matter.jsonl"), **overrides)
    with pytest.raises(UserError, match=message):
        pipeline.build_pretraining_data(from_config(config).data)


def test_the_random_streams_domains_are_distinct():
    """Two streams sharing a domain would share seeds (masks correlated with pairing, ...)."""
    from bertjax.data import seeds

    domains = {k: v for k, v in vars(seeds).items() if k.isupper() and isinstance(v, int)}
    assert len(domains) >= 7 and len(set(domains.values())) == len(domains)
