"""Tests for Chinese whole-word masking (bertjax/data/word_segmenter.py and the word_starts
feature through documents, instances, every source and masking) on the Chinese sample corpus."""

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

from bertjax import config as base_config
from bertjax.data import (
    corpus,
    masking,
    packing,
    pipeline,
    prepare,
    pretraining_examples,
    word_segmenter,
)
from bertjax.data.corpus import SAMPLE_CORPUS_ZH
from bertjax.data.lookups import SPECIAL_TOKENS
from bertjax.data.sentencepiece_vocab import WORD_START, SentencePieceTokenizer
from bertjax.data.sources import prepared, text_stream
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import WordPieceTokenizer
from bertjax.data.word_segmenter import INSIDE_WORD
from bertjax.errors import UserError

SPECIAL = dict(cls_id=2, sep_id=3, pad_id=0)
SEGMENTER = "rjieba"


@pytest.fixture(scope="module")
def chapters() -> list[str]:
    """The first 8 chapters of 西游记 (the sample corpus shipped in the package)."""
    return list(itertools.islice(corpus.read_documents(SAMPLE_CORPUS_ZH), 8))


@pytest.fixture(scope="module")
def char_vocab_dir(tmp_path_factory, chapters):
    """A WordPiece vocabulary of the special tokens and every character of the chapters."""
    directory = tmp_path_factory.mktemp("zh-vocab")
    characters = sorted(set("".join(chapters)) - set(" \n"))
    tokens = [*SPECIAL_TOKENS, *characters, "##1"]
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def wordpiece(char_vocab_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer(char_vocab_dir / "vocab.txt", lowercase=True)


def test_inside_word_marks_ideographs_after_the_first_of_a_word():
    text = "我们今天去北京天安门，看到了T恤和2008年。"
    # rjieba: 我们 今天 去 北京 天安门 ， 看到 了 T恤 和 2008 年 。
    inside = word_segmenter.inside_word(text, SEGMENTER)
    assert "".join(c for c, i in zip(text, inside, strict=True) if i) == "们天京安门到"
    # Only ideographs after ideographs: "恤" follows "T", "年" starts its own word.
    assert not inside[text.index("恤")] and not inside[text.index("年")]
    assert not word_segmenter.inside_word("", SEGMENTER).size
    with pytest.raises(ValueError, match="word_segmenter"):
        word_segmenter.cut(text, "ltp")


def test_wordpiece_char_starts_point_at_each_ideograph(wordpiece):
    texts = ["孙悟空 Ab1 道：“𠀀好。”", "", "Hello"]
    ids, starts = wordpiece.encode_with_char_starts(texts)
    assert ids == wordpiece.encode(texts)
    ideographs = [i for i, c in enumerate(texts[0]) if word_segmenter.is_cjk(
        word_segmenter.code_points(c))[0]]  # fmt: skip
    assert ideographs == [0, 1, 2, 8, 11, 12]
    assert [s for s in starts[0] if s >= 0] == ideographs
    for token_id, start in zip(ids[0], starts[0], strict=True):
        if start >= 0:  # the ideograph itself, or [UNK] for "𠀀", which the vocabulary lacks
            token = wordpiece.vocab[token_id]
            assert token == (texts[0][start] if start != 11 else "[UNK]"), (token, start)
    assert starts[1:] == [[], [-1] * len(ids[2])]


def test_encode_marks_the_characters_inside_words(wordpiece):
    text = "孙悟空道：“师父，我们去灵山。”"
    (marked,) = word_segmenter.encode(wordpiece, [text], SEGMENTER)
    plain, starts = word_segmenter.split_inside_word(np.array(marked))
    assert plain.tolist() == wordpiece.encode([text])[0]
    assert wordpiece.unk_id not in plain and len(plain) == len(text)  # a token per character
    inside = word_segmenter.inside_word(text, SEGMENTER)
    assert starts.tolist() == [int(not i) for c, i in zip(text, inside, strict=True)]
    assert starts.tolist().count(0) >= 4  # 悟空, 师父, 我们, 灵山 at least
    assert word_segmenter.encode(wordpiece, [text], "") == wordpiece.encode([text])


def _marked_documents(seed: int) -> list[list[list[int]]]:
    """Random documents whose even ids >= 100 carry INSIDE_WORD: after pairing, truncation and
    packing, word_starts must still be 0 exactly on those tokens."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(30):
        sentences = []
        for _ in range(rng.integers(1, 12)):
            ids = rng.integers(5, 300, rng.integers(1, 40))
            inside = (ids >= 100) & (ids % 2 == 0)
            sentences.append(np.where(inside, ids | INSIDE_WORD, ids).tolist())
        docs.append(sentences)
    return docs


@pytest.mark.parametrize("packed", [False, True])
def test_instances_carry_word_starts_with_their_tokens(packed):
    docs = _marked_documents(seed=0)
    common = dict(max_seq_length=64, dupe_factor=2, seed=3, **SPECIAL)
    if packed:
        rows = packing.pack_documents(docs, word_starts=True, **common)
        plain = packing.pack_documents(docs, **common)
    else:
        rows = pretraining_examples.create_instances(
            docs, short_seq_prob=0.2, word_starts=True, **common
        )
        plain = pretraining_examples.create_instances(docs, short_seq_prob=0.2, **common)
    ids, starts = rows["input_ids"], rows["word_starts"]
    assert ids.max() < 300 and starts.dtype == np.int32
    expected = ~((ids >= 100) & (ids % 2 == 0) & (rows["input_mask"] == 1))
    np.testing.assert_array_equal(starts, expected.astype(np.int32))
    assert (starts == 0).sum() > 1000
    # Without word_starts: the same rows, the mark removed all the same.
    assert "word_starts" not in plain
    np.testing.assert_array_equal(plain["input_ids"], ids)


def _data_config(corpus_path: str, vocab_dir, **overrides):
    config = base_config.defaults()
    config.update(
        corpus=corpus_path,
        vocab_dir=str(vocab_dir),
        max_seq_length=128,
        max_predictions_per_seq=20,
        dupe_factor=1,
        word_segmenter=SEGMENTER,
        masking="whole_word",
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def chapters_file(tmp_path_factory, chapters) -> str:
    path = tmp_path_factory.mktemp("zh-corpus") / "chapters.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in chapters))
    return str(path)


def _word_ids(input_ids, input_mask, word_starts, special_ids) -> np.ndarray:
    """Reference words: a new word at each eligible token with word_starts 1 (every character
    token of this vocabulary starts a WordPiece word) or after an ineligible token."""
    eligible = (input_mask == 1) & ~np.isin(input_ids, special_ids)
    word_id = np.full(input_ids.shape, -1)
    for row in range(len(input_ids)):
        current = -1
        for i in np.flatnonzero(eligible[row]):
            if word_starts[row, i] or i == 0 or not eligible[row, i - 1]:
                current += 1
            word_id[row, i] = current
    return word_id


def _masked_batch(data, spec: masking.MaskingSpec, count: int) -> dict:
    dataset = pipeline.make_dataset(
        data.source, spec, data.tokenizer, global_batch_size=count, seed=5
    )
    return next(dataset.as_numpy_iterator())


def test_whole_word_masking_masks_whole_segmenter_words(chapters_file, char_vocab_dir):
    config = _data_config(chapters_file, char_vocab_dir)
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    arrays = data.source.arrays
    count = len(arrays["input_ids"])
    assert count > 500 and "word_starts" in arrays
    spec = masking.MaskingSpec.from_config(config)
    batch = _masked_batch(data, spec, count)
    # Batch row r is instance index_shuffle(r): find each row's instance by its unmasked tokens.
    order = {arrays["input_ids"][i].tobytes(): i for i in range(count)}
    special = np.array(data.tokenizer.special_ids)
    outcomes = {"mask": 0, "random": 0, "keep": 0}
    multi_char = selected_total = eligible_total = multi_char_words = all_words = mixed = 0
    mask_id = data.tokenizer.mask_id
    for row in range(count):
        positions = batch["masked_lm_positions"][row][batch["masked_lm_weights"][row] == 1]
        original = batch["input_ids"][row].copy()
        original[positions] = batch["masked_lm_ids"][row][: len(positions)]
        index = order[original.tobytes()]
        starts, mask = arrays["word_starts"][index : index + 1], arrays["input_mask"][index]
        words = _word_ids(original[None], mask[None], starts, special)[0]
        selected = np.zeros(len(original), bool)
        selected[positions] = True
        chosen = np.unique(words[selected])
        assert np.all(chosen >= 0), "a special token or padding was selected"
        # Every character of a chosen word is selected, and nothing else: labels per character.
        np.testing.assert_array_equal(selected, np.isin(words, chosen) & (words >= 0))
        for word in chosen:
            shown, truth = batch["input_ids"][row][words == word], original[words == word]
            # One 80/10/10 decision per word: all of it [MASK], or none of it; all of it kept,
            # or all of it random (a random draw equals the character 1 time in ~2,500).
            is_mask = shown == mask_id
            assert is_mask.all() or not is_mask.any(), (shown, truth)
            if is_mask.all():
                outcomes["mask"] += 1
            else:
                kept = shown == truth
                outcomes["keep" if kept.all() else "random"] += 1
                mixed += kept.any() and not kept.all()
            multi_char += len(truth) > 1
        selected_total += len(positions)
        eligible_total += (words >= 0).sum()
        sizes = np.bincount(words[words >= 0])
        multi_char_words += (sizes > 1).sum()
        all_words += len(sizes)
    words_masked = sum(outcomes.values())
    assert words_masked > 5000
    shares = {name: n / words_masked for name, n in outcomes.items()}
    for name, share in (("mask", 0.8), ("random", 0.1), ("keep", 0.1)):
        assert abs(shares[name] - share) < 0.025, shares  # > 5 standard errors
    assert mixed <= 0.01 * outcomes["random"], (mixed, outcomes)
    # Chinese words, not characters: masked words are as often multi-character as words are.
    assert multi_char_words / all_words > 0.25
    assert abs(multi_char / words_masked - multi_char_words / all_words) < 0.1
    assert abs(selected_total / eligible_total - 0.15) < 0.01


def test_without_word_starts_each_character_is_its_own_word(chapters_file, char_vocab_dir):
    config = _data_config(chapters_file, char_vocab_dir, word_segmenter="")
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    assert "word_starts" not in data.source.arrays
    spec = masking.MaskingSpec.from_config(config)
    batch = _masked_batch(data, spec, 256)
    weights = batch["masked_lm_weights"] == 1
    positions = np.where(weights, batch["masked_lm_positions"], -10)
    # Adjacent masked characters happen only by chance (about 15% of neighbours).
    adjacent = (np.diff(positions, axis=1) == 1) & weights[:, 1:]
    assert adjacent.sum() / weights.sum() < 0.25


@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory, chapters_file):
    from bertjax.data import vocab

    directory = tmp_path_factory.mktemp("zh-spm")
    vocab.run_vocab(chapters_file, kind="sentencepiece", size=3000, out_dir=directory)
    return directory


@pytest.mark.parametrize("kind", ["whole_word", "span"])
def test_sentencepiece_unspaced_rows_get_their_predictions(
    tmp_path, sentencepiece_dir, chapters, kind
):
    # Unspaced Chinese without sentence ends: every row is cut from one long "sentence".
    unsplit = tmp_path / "unsplit.jsonl"
    texts = ["".join(c for c in t if c.isalnum()) for t in chapters]
    unsplit.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
    config = _data_config(str(unsplit), sentencepiece_dir, masking=kind, word_segmenter="")
    config.max_ngram = 3
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    tokenizer = data.tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer)
    spec = masking.MaskingSpec.from_config(config)
    batch = _masked_batch(data, spec, 256)
    predictions = batch["masked_lm_weights"].sum(axis=1)
    eligible = (batch["input_ids"] != tokenizer.pad_id).sum(axis=1) - 3  # [CLS], 2 x [SEP]
    assert np.all(predictions >= 1)
    assert predictions.sum() / eligible.sum() > 0.13
    # A word only at "▁" (the rule before): a row holds one or two giant "words", which never
    # fit the budget, so it gets no prediction at all.
    starts_with_space = np.array([p.startswith(WORD_START) for p in tokenizer.vocab])
    tables = masking.masking_tables(spec, tokenizer)
    rows = data.source.arrays
    before = [
        masking.mask_tokens(
            rows["input_ids"][i], rows["input_mask"][i], tf.constant([0, i], tf.int64),
            masked_lm_prob=0.15, max_predictions_per_seq=20, special_ids=tables.special_ids,
            mask_id=tokenizer.mask_id, random_token_ids=tables.random_token_ids, masking=kind,
            word_start_table=starts_with_space, span_length_probs=tables.span_length_probs,
        )["masked_lm_weights"].numpy().sum()
        for i in range(32)
    ]  # fmt: skip
    assert np.mean(before) < 2


def test_sentencepiece_char_starts_and_segmenter_words(sentencepiece_dir):
    tokenizer = SentencePieceTokenizer(sentencepiece_dir / "sentencepiece.model", lowercase=True)
    texts = ["孙悟空道：“师父，我们去灵山。”", "Hi 你好 there"]
    ids, starts = tokenizer.encode_with_char_starts(texts)
    assert ids == tokenizer.encode(texts)
    for text, row_ids, row_starts in zip(texts, ids, starts, strict=True):
        for token_id, start in zip(row_ids, row_starts, strict=True):
            piece = tokenizer.vocab[token_id]
            if piece.startswith(WORD_START) and text[start] == " ":
                start += 1  # "▁..." after a space starts at the space it stands for
            piece = piece.lstrip(WORD_START)
            if piece and word_segmenter.is_cjk(word_segmenter.code_points(piece)).all():
                assert text[start : start + len(piece)] == piece, (text, piece, start)
    (marked,) = word_segmenter.encode(tokenizer, texts[:1], SEGMENTER)
    _, word_starts = word_segmenter.split_inside_word(np.array(marked))
    inside = word_segmenter.inside_word(texts[0], SEGMENTER)
    np.testing.assert_array_equal(word_starts == 0, inside[starts[0]])


def test_prepared_shards_and_text_stream_carry_word_starts(tmp_path, chapters_file, char_vocab_dir):
    config = _data_config(chapters_file, char_vocab_dir, packing=True)
    in_memory = pipeline.build_pretraining_data(DataSpec.from_config(config)).source.arrays
    out_dir = tmp_path / "prepared"
    prepare.run_prepare(
        chapters_file, char_vocab_dir, out_dir, packing=True, dupe_factor=1,
        num_shards=1, num_workers=1, word_segmenter=SEGMENTER,
    )  # fmt: skip
    corpus_dir = prepared.load_prepared(out_dir)
    assert corpus_dir.segmented
    shard_rows = prepared.read_instances(corpus_dir)
    for name in ("input_ids", "word_starts"):  # one shard: the in-memory instances
        np.testing.assert_array_equal(shard_rows[name], in_memory[name])
    config.prepared_dir = str(out_dir)
    config.vocab_dir = ""
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    assert data.source.segmented
    with pytest.raises(UserError, match="word_segmenter='rjieba'"):
        config.word_segmenter = ""
        pipeline.build_pretraining_data(DataSpec.from_config(config))

    config.update(prepared_dir="", vocab_dir=str(char_vocab_dir), word_segmenter=SEGMENTER)
    stream = text_stream.from_spec(DataSpec.from_config(config), data.tokenizer, char_vocab_dir)
    assert "word_starts" in text_stream.row_spec(stream)
    rows = text_stream.build_chunk(list(corpus.read_documents(chapters_file)), stream, seed=0)
    assert rows["word_starts"].shape == rows["input_ids"].shape
    assert (rows["word_starts"][rows["input_mask"] == 1] == 0).mean() > 0.15
    # Each source's masking reads them: whole_word batches from the stream mask words.
    spec = masking.MaskingSpec.from_config(config)
    batch = next(
        pipeline.make_dataset(
            stream, spec, data.tokenizer, global_batch_size=8, seed=0
        ).as_numpy_iterator()
    )
    assert batch["masked_lm_weights"].sum() > 8 and "word_starts" not in batch


def test_word_segmenter_is_checked_once():
    config = base_config.defaults()
    config.word_segmenter = "jieba-fast"
    with pytest.raises(UserError, match="word_segmenter='jieba-fast' is unknown"):
        DataSpec.from_config(config)


def test_masking_reads_word_starts_only_for_word_units(wordpiece):
    text = "孙悟空道：“师父，我们去灵山。”"
    (marked,) = word_segmenter.encode(wordpiece, [text], SEGMENTER)
    ids, starts = word_segmenter.split_inside_word(np.array(marked))
    length = 32
    input_ids = np.zeros(length, np.int32)
    input_ids[: len(ids) + 2] = [2, *ids, 3]
    input_mask = (np.arange(length) < len(ids) + 2).astype(np.int32)
    word_starts = np.ones(length, np.int32)
    word_starts[1 : len(ids) + 1] = starts
    for kind in ("token", "whole_word", "span"):
        spec = masking.MaskingSpec(masking=kind, masked_lm_prob=0.5, max_predictions_per_seq=16)
        mask = masking.example_masker(spec, wordpiece)
        seed = tf.constant([1, 2], tf.int64)
        with_starts = mask(input_ids, input_mask, seed, word_starts)
        without = mask(input_ids, input_mask, seed)
        same = all(np.array_equal(with_starts[k].numpy(), without[k].numpy()) for k in with_starts)
        assert same == (kind == "token"), kind
