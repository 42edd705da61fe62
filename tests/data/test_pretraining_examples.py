"""Tests for bertjax/data/pretraining_examples.py: NSP pair structure, balance, speed."""

import random
import time

import ml_collections
import numpy as np
import pytest

from bertjax.data import corpus, sentences
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.pretraining_examples import (
    create_instances,
    split_long_sentence,
    truncate_seq_pair,
)
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.data.vocab import build_or_load_vocab
from bertjax.errors import UserError

PAD, CLS, SEP = 0, 1, 2
DOC_STRIDE = 100_000  # synthetic token = 100 + doc * DOC_STRIDE + position of the token in doc


def _synthetic_documents(num_docs: int, seed: int) -> list[list[list[int]]]:
    """Documents whose token ids encode (document, position), so pairs can be traced back."""
    rng = random.Random(seed)
    documents = []
    for doc in range(num_docs):
        sentences_, position = [], 0
        for _ in range(rng.randint(1, 30)):
            length = rng.randint(1, 40)
            sentences_.append([100 + doc * DOC_STRIDE + position + k for k in range(length)])
            position += length
        documents.append(sentences_)
    return documents


def _create(documents, **overrides):
    kwargs = dict(
        max_seq_length=64,
        short_seq_prob=0.1,
        dupe_factor=3,
        seed=0,
        cls_id=CLS,
        sep_id=SEP,
        pad_id=PAD,
    )
    kwargs.update(overrides)
    return create_instances(documents, **kwargs)


def _check_layout(instances, max_seq_length):
    """[CLS] A [SEP] B [SEP] PAD..., segment and mask layout of every row; returns (A, B) lists."""
    input_ids, input_mask = instances["input_ids"], instances["input_mask"]
    segment_ids = instances["segment_ids"]
    n = len(input_ids)
    assert input_ids.shape == input_mask.shape == segment_ids.shape == (n, max_seq_length)
    assert instances["next_sentence_labels"].shape == (n,)
    for array in instances.values():
        assert array.dtype == np.int32
    lengths = input_mask.sum(axis=1)
    # The mask is a prefix of ones; padding is exactly where the mask is zero.
    assert np.array_equal(
        input_mask, (np.arange(max_seq_length) < lengths[:, None]).astype(np.int32)
    )
    assert np.all((input_ids == PAD) == (input_mask == 0))
    assert np.all(input_ids[:, 0] == CLS)
    assert np.all((input_ids == SEP).sum(axis=1) == 2)
    assert np.all((input_ids == CLS).sum(axis=1) == 1)
    pairs = []
    for row in range(n):
        sep_first, sep_last = np.flatnonzero(input_ids[row] == SEP)
        assert sep_last == lengths[row] - 1
        assert sep_first >= 2 and sep_last - sep_first >= 2, "A and B both non-empty"
        expected_segments = np.zeros(max_seq_length, np.int32)
        expected_segments[sep_first + 1 : sep_last + 1] = 1
        assert np.array_equal(segment_ids[row], expected_segments)
        pairs.append((input_ids[row, 1:sep_first], input_ids[row, sep_first + 1 : sep_last]))
    return pairs


def test_truncate_seq_pair_trims_the_longer_side():
    rng = random.Random(0)
    a, b = list(range(10)), list(range(100, 103))
    truncate_seq_pair(a, b, 8, rng)
    assert len(a) == 5 and b == [100, 101, 102]
    # What is left of A is a contiguous slice: tokens went from the ends only.
    assert a == list(range(a[0], a[0] + 5))
    c, d = [1, 2], [3]
    truncate_seq_pair(c, d, 5, rng)
    assert (c, d) == ([1, 2], [3])


def test_truncation_trims_front_and_back_alike():
    """google's fair coin: a segment trimmed only at its back would always end mid-sentence."""
    rng = random.Random(0)
    front = back = 0
    for _ in range(200):
        a = list(range(100))
        truncate_seq_pair(a, [1000, 1001, 1002], 8, rng)
        front, back = front + a[0], back + 99 - a[-1]
    assert front + back == 200 * 95 and 0.45 < front / (front + back) < 0.55


def test_a_continuation_splits_its_chunk_at_a_random_sentence():
    """A ends at a random sentence of the chunk (google's `a_end`), so B often holds several
    sentences (39% here); were B always the chunk's last sentence, it would hold one."""
    documents = _synthetic_documents(40, seed=1)
    starts = [{s[0] - 100 - d * DOC_STRIDE for s in doc} for d, doc in enumerate(documents)]
    instances = _create(documents)
    several = [
        any(p in starts[doc[0]] for p in pos[1:])
        for (_, b), label in zip(_check_layout(instances, 64), instances["next_sentence_labels"],
                                 strict=True) if label == 0
        for doc, pos in [np.divmod(b - 100, DOC_STRIDE)]
    ]  # fmt: skip
    assert len(several) > 300 and 0.25 < np.mean(several) < 0.55


def test_pairs_trace_back_to_their_documents():
    documents = _synthetic_documents(40, seed=1)
    instances = _create(documents)
    pairs = _check_layout(instances, 64)
    labels = instances["next_sentence_labels"]
    assert len(pairs) > 200
    for (a, b), label in zip(pairs, labels, strict=True):
        doc_a, pos_a = np.divmod(a - 100, DOC_STRIDE)
        doc_b, pos_b = np.divmod(b - 100, DOC_STRIDE)
        # Truncation only removes tokens from segment ends, so each segment is contiguous.
        assert np.all(doc_a == doc_a[0]) and np.all(np.diff(pos_a) == 1)
        assert np.all(doc_b == doc_b[0]) and np.all(np.diff(pos_b) == 1)
        if label == 0:
            assert doc_b[0] == doc_a[0] and pos_b[0] > pos_a[-1], "B must continue A"
        else:
            assert doc_b[0] != doc_a[0], "a random B comes from another document"
    assert 0.4 < labels.mean() < 0.6
    # A random B starts at a random sentence of its document (google's `random_start`), not at
    # its first: documents here hold 1-30 sentences, so few start at position 0.
    random_starts = [np.divmod(b[0] - 100, DOC_STRIDE)[1]
                     for (_, b), label in zip(pairs, labels, strict=True) if label]  # fmt: skip
    assert np.mean(np.array(random_starts) == 0) < 0.3


def test_deterministic_in_seed_and_shuffled():
    documents = _synthetic_documents(10, seed=2)
    first, again, other = _create(documents), _create(documents), _create(documents, seed=1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["input_ids"][:20], other["input_ids"][:20])
    # Shuffled: consecutive rows are not consecutive documents.
    first_docs = (first["input_ids"][:, 1] - 100) // DOC_STRIDE
    assert np.mean(np.diff(first_docs) == 0) < 0.5


def test_dupe_factor_scales_instances():
    documents = _synthetic_documents(10, seed=3)
    one, five = _create(documents, dupe_factor=1), _create(documents, dupe_factor=5)
    assert 4 < len(five["input_ids"]) / len(one["input_ids"]) < 6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_targets_are_a_share_of_pairs_whatever_the_documents(seed):
    """Two long documents of one-token sentences: every pair is exactly its target length, so
    rows under L are the short draws, short_seq_prob * 59/60 of them (targets uniform in
    [2, 61], 61 being full) on every seed, ~2,750 rows (binomial sd 0.006; bounds 5 sd). One
    draw per document pass, as google does, gave 0.2-0.3% or 31-39% on seeds 0-5."""
    documents = [[[100 + d * DOC_STRIDE + k] for k in range(20_000)] for d in range(2)]
    lengths = _create(documents, short_seq_prob=0.1, seed=seed)["input_mask"].sum(axis=1)
    short = lengths[lengths < 64]
    assert 0.07 < len(short) / len(lengths) < 0.13
    # Short rows hold 5..63 tokens ([CLS] A [SEP] B [SEP] of 2..60), mean 34 (sd of the mean ~1).
    assert short.min() >= 5
    assert abs(short.mean() - 34.0) < 4.0


def test_empty_sentences_and_documents_are_skipped():
    documents = [[[], [100, 101], []], [], [[], []], [[200 + DOC_STRIDE, 201 + DOC_STRIDE]]]
    instances = _create(documents, dupe_factor=50)
    pairs = _check_layout(instances, 64)
    assert len(pairs) > 50
    # Two one-sentence documents: continuations split the sentence, random pairs cross over.
    for (a, b), label in zip(pairs, instances["next_sentence_labels"], strict=True):
        assert (len(a), len(b)) == ((2, 2) if label else (1, 1))
        if label:
            assert (a[0] < DOC_STRIDE) != (b[0] < DOC_STRIDE)
        else:
            assert b[0] == a[0] + 1


def test_a_sentence_is_cut_only_when_longer_than_a_pairs_tokens():
    """A sentence of exactly max_num_tokens fits a pair whole; one token more is cut in pieces
    of half that (rounded up), in order."""
    assert split_long_sentence(list(range(61)), 61) == [list(range(61))]
    pieces = split_long_sentence(list(range(62)), 61)
    assert [len(p) for p in pieces] == [31, 31] and sum(pieces, []) == list(range(62))


@pytest.mark.parametrize("length", [200, 1000, 5000])
def test_sentences_longer_than_a_row_reach_the_rows_in_pieces(length):
    """Text without sentence ends: whole, a 1,000-token "sentence" was truncated into one pair
    (12% of the document in some row at length 128); cut into half-row pieces, continuation
    pairs are consecutive pieces and nearly all of it is seen."""
    document = [[100 + k for k in range(i, i + length)] for i in range(0, 20_000, length)]
    partner = [[100 + DOC_STRIDE + k for k in range(i, i + 20)] for i in range(0, 2_000, 20)]
    instances = _create([document, partner], dupe_factor=1, short_seq_prob=0.0)
    pairs = _check_layout(instances, 64)
    seen = np.unique(instances["input_ids"])
    assert np.isin(np.arange(100, 20_100), seen).mean() > 0.9  # whole: 0.3 (200) to 0.03
    for (a, b), label in zip(pairs, instances["next_sentence_labels"], strict=True):
        if label == 0 and a[0] < DOC_STRIDE:  # B: the next pieces, less what truncation cut
            assert a[-1] < b[0] <= a[-1] + 16


def test_user_errors():
    with pytest.raises(UserError, match="at least 2 non-empty documents, got 1"):
        _create([[[5, 6, 7]], [[]]])
    with pytest.raises(UserError, match="max_seq_length=4"):
        _create(_synthetic_documents(3, 0), max_seq_length=4)
    with pytest.raises(UserError, match="dupe_factor=0"):
        _create(_synthetic_documents(3, 0), dupe_factor=0)


@pytest.fixture(scope="module")
def sample_documents(tmp_path_factory):
    config = ml_collections.ConfigDict(
        dict(
            corpus=SAMPLE_CORPUS,
            text_field="text",
            vocab_dir="",
            vocab_size=3000,
            lowercase=True,
            cache_dir=str(tmp_path_factory.getbasetemp() / "bertjax-vocab-cache"),
        )
    )
    tok = WordPieceTokenizer(build_or_load_vocab(DataSpec.from_config(config)), lowercase=True)
    assert (tok.pad_id, tok.cls_id, tok.sep_id) == (PAD, CLS + 1, SEP + 1)
    texts = [sentences.split_sentences(doc) for doc in corpus.read_documents(SAMPLE_CORPUS)]
    flat = [s for doc in texts for s in doc]
    ids = []
    for begin in range(0, len(flat), 1024):
        ids.extend(tok.encode(flat[begin : begin + 1024]))
    documents, cursor = [], 0
    for doc in texts:
        documents.append(ids[cursor : cursor + len(doc)])
        cursor += len(doc)
    return documents, tok


def test_sample_corpus_balanced_nsp_and_fast(sample_documents):
    documents, tok = sample_documents
    start = time.perf_counter()
    instances = create_instances(
        documents,
        max_seq_length=128,
        short_seq_prob=0.1,
        dupe_factor=5,
        seed=0,
        cls_id=tok.cls_id,
        sep_id=tok.sep_id,
        pad_id=tok.pad_id,
    )
    seconds = time.perf_counter() - start
    assert seconds < 30, f"create_instances took {seconds:.1f}s"
    labels = instances["next_sentence_labels"]
    assert len(labels) > 25_000
    assert abs(labels.mean() - 0.5) <= 0.03
    input_ids, input_mask = instances["input_ids"], instances["input_mask"]
    assert input_ids.shape[1] == 128
    assert np.all(input_ids[:, 0] == tok.cls_id)
    assert np.all((input_ids == tok.sep_id).sum(axis=1) == 2)
    assert np.all((input_ids == tok.pad_id) == (input_mask == 0))
    # Mostly full rows: the packing uses the sequence length.
    assert input_mask.mean() > 0.85
    segment_ids = instances["segment_ids"]
    first_sep = np.argmax(input_ids == tok.sep_id, axis=1)
    columns = np.arange(128)
    assert np.all((segment_ids == 1) == ((columns > first_sep[:, None]) & (input_mask == 1)))
