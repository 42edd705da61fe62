"""Packed MLM-only instances: documents concatenated and cut into full-length sequences.

Layout (RoBERTa's FULL-SENTENCES, but attention kept inside each document): each document,
its sentences concatenated, is framed as ``[CLS] tokens [SEP]``; all framed documents are laid
end to end into one stream and the stream is cut into rows of exactly ``max_seq_length``
tokens. A document longer than the room left continues on the next row, so every row is full
and only the very last row of the corpus is padded; every token of the stream appears in
exactly one row. A row that starts inside a document starts without ``[CLS]``.

Per-token features:
  * ``attention_segment_ids``: 1, 2, 3, ... for the first, second, third document piece in the
    row, 0 on padding. Attention must stay within a piece: query i may see key j only when
    ``attention_segment_ids[i] == attention_segment_ids[j] != 0`` (see
    `attention_mask_from_segments`). The model needs this mask for packing to be correct.
  * ``segment_ids``: all 0 (one sentence "A" per document; there is no NSP pair);
  * ``next_sentence_labels`` 0 and ``next_sentence_weights`` 0.0 per row: there is no NSP task,
    and the loss must weight the NSP term by ``next_sentence_weights``.

With ``dupe_factor`` > 1 the stream holds that many passes over the corpus, each with its
documents in a fresh random order, so cut points (and neighbours) differ between passes.
"""

from collections.abc import Sequence

import numpy as np

from bertjax.data import spec, word_segmenter
from bertjax.errors import UserError

Document = Sequence[Sequence[int]]


def pack_documents(
    documents: Sequence[Document],
    *,
    max_seq_length: int,
    dupe_factor: int,
    seed: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    word_starts: bool = False,
) -> dict[str, np.ndarray]:
    """Packs tokenized documents (documents -> sentences -> ids) into full rows.

    Returns ``input_ids``, ``input_mask``, ``segment_ids``, ``attention_segment_ids``
    [N, L] int32, ``next_sentence_labels`` [N] int32 and ``next_sentence_weights`` [N] float32,
    rows in stream order (the training stream shuffles them); with `word_starts` also
    ``word_starts`` [N, L] int32 (0 on tokens a word segmenter marked inside a word, see
    `word_segmenter`; the mark is always removed from ``input_ids``).
    """
    spec.require_row_length(max_seq_length, packing=True)
    if dupe_factor < 1:
        raise UserError(f"dupe_factor={dupe_factor} must be >= 1")
    framed = [
        np.concatenate([[cls_id], *[np.asarray(s, np.int32) for s in doc], [sep_id]])
        for doc in documents
        if any(len(s) for s in doc)
    ]
    if not framed:
        raise UserError("packing found no document with text; check --config.corpus")
    rng = np.random.default_rng(seed)
    pieces = [framed[i] for _ in range(dupe_factor) for i in rng.permutation(len(framed))]
    stream = np.concatenate(pieces).astype(np.int32)
    # Occurrence number of each token's document in the stream: strictly increasing per piece.
    occurrence = np.repeat(np.arange(len(pieces), dtype=np.int64), [len(p) for p in pieces])

    num_rows = -(-len(stream) // max_seq_length)
    padding = num_rows * max_seq_length - len(stream)
    input_ids = np.pad(stream, (0, padding), constant_values=pad_id).reshape(num_rows, -1)
    input_mask = np.pad(np.ones_like(stream), (0, padding)).reshape(num_rows, -1)
    occurrence = np.pad(occurrence, (0, padding), constant_values=-1).reshape(num_rows, -1)
    attention_segment_ids = np.where(input_mask == 1, occurrence - occurrence[:, :1] + 1, 0).astype(
        np.int32
    )
    input_ids, starts = word_segmenter.split_inside_word(input_ids)
    rows = {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": np.zeros_like(input_ids),
        "attention_segment_ids": attention_segment_ids,
        "next_sentence_labels": np.zeros(num_rows, np.int32),
        "next_sentence_weights": np.zeros(num_rows, np.float32),
    }
    if word_starts:
        rows["word_starts"] = starts
    return rows


def attention_mask_from_segments(attention_segment_ids: np.ndarray) -> np.ndarray:
    """[B, L] attention segment ids -> [B, L, L] bool: query i may attend to key j.

    The reference for the model: ``same = seg[:, :, None] == seg[:, None, :]`` and
    ``seg[:, None, :] != 0`` (keys must be real tokens). Padding queries see nothing; their
    outputs are never used.
    """
    seg = np.asarray(attention_segment_ids)
    return (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != 0)
