"""Task examples -> model inputs: [CLS] a [SEP] (b [SEP]) rows of ids, and their labels
(multiple choice: one such row per choice, the example's rows kept together).

Rows keep their own length here; `batches` pads each batch only to the next multiple of
`LENGTH_BUCKET` (at most max_seq_length), so short-sentence tasks do not pay for 128 tokens and
only a few shapes are ever compiled.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import numpy as np

from bertjax.finetune.choice_records import ChoiceExample, second_segment
from bertjax.finetune.records import TaggedExample, TextExample

IGNORE = -1  # label of positions that carry no loss (continuation wordpieces, specials)
LENGTH_BUCKET = 32


@dataclasses.dataclass
class Encoded:
    """Variable-length rows; `labels` is [N] ids (classification, multiple choice: the right
    choice) or floats (regression), [N] multi-hot tuples (multilabel), [N] lists (tagging) or
    [N, 2] start/end (QA). Multiple choice: input_ids[i] and segment_ids[i] are example i's
    rows, one per choice."""

    input_ids: list
    segment_ids: list
    labels: list
    first_piece: list[list[int]] | None = None  # tagging: row position of each word (-1: cut)
    num_choices: list[int] | None = None  # multiple choice: each example's number of choices

    def __len__(self) -> int:
        return len(self.input_ids)

    @functools.cached_property
    def most_choices(self) -> int:
        """Multiple choice: the most choices any example has (the C of every batch's shape)."""
        return max(self.num_choices)

    def longest_row(self, index: int) -> int:
        """Example `index`'s longest row (multiple choice: over its choices), in tokens."""
        if self.num_choices is not None:
            return max(len(ids) for ids in self.input_ids[index])
        return len(self.input_ids[index])


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Longest-first truncation (BERT's run_classifier `_truncate_seq_pair`): drop the end of
    the longer side, of the second on a tie (Hugging Face's fast tokenizers drop the first's)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def _row(tokenizer, a: list[int], b: list[int] | None, max_seq_length: int):
    """(ids, segment ids) of [CLS] a [SEP] or, with `b`, [CLS] a [SEP] b [SEP], truncated
    longest-first to max_seq_length."""
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    if b is None:
        a = a[: max_seq_length - 2]
        return [cls, *a, sep], [0] * (len(a) + 2)
    a, b = _truncate_pair(a, b, max_seq_length - 3)
    return [cls, *a, sep, *b, sep], [0] * (len(a) + 2) + [1] * (len(b) + 1)


def encode_texts(examples: Sequence[TextExample], tokenizer, max_seq_length: int) -> Encoded:
    """[CLS] a [SEP] or [CLS] a [SEP] b [SEP], truncated longest-first to max_seq_length."""
    num_texts = len(examples[0].texts)
    pieces = [tokenizer.encode([e.texts[i] for e in examples]) for i in range(num_texts)]
    rows = [
        _row(tokenizer, pieces[0][i], pieces[1][i] if num_texts > 1 else None, max_seq_length)
        for i in range(len(examples))
    ]
    return Encoded([ids for ids, _ in rows], [s for _, s in rows], [e.label for e in examples])


def encode_choices(examples: Sequence[ChoiceExample], tokenizer, max_seq_length: int) -> Encoded:
    """A row per choice: [CLS] context [SEP] rest choice [SEP], the first text field, then the
    other text fields and the choice joined by spaces (run_swag's rows; a blank "_" filled by
    the choice instead: `choice_records.second_segment`), truncated longest-first as a pair
    is."""
    firsts = tokenizer.encode([e.texts[0] for e in examples])
    seconds = iter(tokenizer.encode([second_segment(e, c) for e in examples for c in e.choices]))
    encoded = Encoded([], [], [e.label for e in examples], num_choices=[])
    for example, first in zip(examples, firsts, strict=True):
        rows = [_row(tokenizer, first, next(seconds), max_seq_length) for _ in example.choices]
        encoded.input_ids.append([ids for ids, _ in rows])
        encoded.segment_ids.append([segments for _, segments in rows])
        encoded.num_choices.append(len(example.choices))
    return encoded


def encode_tagged(examples: Sequence[TaggedExample], tokenizer, max_seq_length: int) -> Encoded:
    """Each word's wordpieces in a row; the word's tag sits on its first piece, IGNORE on the
    others. Words past max_seq_length - 2 pieces are cut (first_piece -1: predicted "none")."""
    words = [word for e in examples for word in e.words]
    word_pieces = tokenizer.encode(words)
    cls, sep, unk = tokenizer.cls_id, tokenizer.sep_id, tokenizer.unk_id
    encoded = Encoded([], [], [], first_piece=[])
    offset = 0
    for example in examples:
        ids, labels, first = [cls], [IGNORE], []
        for tag, pieces in zip(
            example.tags, word_pieces[offset : offset + len(example.words)], strict=True
        ):
            pieces = pieces or [unk]  # a word the tokenizer drops entirely still gets a slot
            if len(ids) + len(pieces) > max_seq_length - 1:
                first.append(-1)
                continue
            first.append(len(ids))
            ids.extend(pieces)
            labels.extend([tag] + [IGNORE] * (len(pieces) - 1))
        offset += len(example.words)
        encoded.input_ids.append(ids + [sep])
        encoded.segment_ids.append([0] * (len(ids) + 1))
        encoded.labels.append(labels + [IGNORE])
        encoded.first_piece.append(first)
    return encoded


def _bucket(encoded: Encoded, rows: Sequence[int], max_len: int) -> int:
    """The smallest multiple of LENGTH_BUCKET >= the longest of `rows` (at most max_len)."""
    longest = max(encoded.longest_row(r) for r in rows)
    return min(-(-longest // LENGTH_BUCKET) * LENGTH_BUCKET, max_len)


def pad_batch(encoded: Encoded, rows: Sequence[int], batch_size: int, max_len: int) -> dict:
    """Rows `rows` of `encoded` as a dense batch of `batch_size` rows (extra rows weight 0),
    padded to the smallest multiple of LENGTH_BUCKET >= the longest row (<= max_len)."""
    if encoded.num_choices is not None:
        return pad_choice_batch(encoded, rows, batch_size, max_len)
    length = _bucket(encoded, rows, max_len)
    input_ids = np.zeros((batch_size, length), np.int32)
    segment_ids = np.zeros((batch_size, length), np.int32)
    input_mask = np.zeros((batch_size, length), np.int32)
    weights = np.zeros((batch_size,), np.float32)
    tagging = encoded.first_piece is not None
    if tagging:
        labels = np.full((batch_size, length), IGNORE, np.int32)
    else:  # the rows' labels stacked: [n] ids or targets, [n, 2] QA spans, [n, C] multi-hot
        stacked = np.asarray([encoded.labels[r] for r in rows])
        dtype = np.float32 if stacked.dtype.kind == "f" else np.int32
        labels = np.zeros((batch_size, *stacked.shape[1:]), dtype)  # filler rows: weight 0
    for i, r in enumerate(rows):
        n = len(encoded.input_ids[r])
        input_ids[i, :n] = encoded.input_ids[r]
        segment_ids[i, :n] = encoded.segment_ids[r]
        input_mask[i, :n] = 1
        weights[i] = 1.0
        if tagging:
            labels[i, :n] = encoded.labels[r]
        else:
            labels[i] = encoded.labels[r]
    input_mask[:, 0] = 1  # filler rows attend to one token: no all-masked softmax (NaN)
    return {
        "input_ids": input_ids,
        "segment_ids": segment_ids,
        "input_mask": input_mask,
        "labels": labels,
        "weights": weights,
    }


def pad_choice_batch(encoded: Encoded, rows: Sequence[int], batch_size: int, max_len: int) -> dict:
    """Multiple-choice examples `rows` as [batch_size, C, length] inputs, C the most choices any
    example of `encoded` has (one shape per split), and `choice_mask` [batch_size, C]: 1 for a
    real choice, 0 for the padding of an example with fewer (and for filler rows)."""
    length, choices = _bucket(encoded, rows, max_len), encoded.most_choices
    shape = (batch_size, choices, length)
    input_ids, segment_ids, input_mask = (np.zeros(shape, np.int32) for _ in range(3))
    choice_mask = np.zeros((batch_size, choices), np.float32)
    labels, weights = np.zeros((batch_size,), np.int32), np.zeros((batch_size,), np.float32)
    for i, r in enumerate(rows):
        for c, (ids, segments) in enumerate(
            zip(encoded.input_ids[r], encoded.segment_ids[r], strict=True)
        ):
            input_ids[i, c, : len(ids)], segment_ids[i, c, : len(ids)] = ids, segments
            input_mask[i, c, : len(ids)] = 1
        choice_mask[i, : encoded.num_choices[r]] = 1.0
        labels[i], weights[i] = encoded.labels[r], 1.0
    input_mask[..., 0] = 1  # padding choices attend to one token: no all-masked softmax (NaN)
    return {"input_ids": input_ids, "segment_ids": segment_ids, "input_mask": input_mask,
            "choice_mask": choice_mask, "labels": labels, "weights": weights}  # fmt: skip


def batches(
    encoded: Encoded,
    batch_size: int,
    max_len: int,
    *,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, dict]]:
    """(row indices, padded batch) over all rows, shuffled by `rng` (None: in order, for eval).

    Training batches are drawn from length-sorted windows of 50 batches, so rows of a batch have
    similar lengths (little padding) while the order stays random."""
    order = np.arange(len(encoded))
    if rng is not None:
        order = rng.permutation(order)
        window = batch_size * 50
        lengths = np.array([encoded.longest_row(i) for i in range(len(encoded))])
        chunks = [order[i : i + window] for i in range(0, len(order), window)]
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
        starts = rng.permutation(np.arange(0, len(order), batch_size))
    else:
        starts = np.arange(0, len(order), batch_size)
    for start in starts:
        rows = order[start : start + batch_size]
        yield rows, pad_batch(encoded, rows, batch_size, max_len)
