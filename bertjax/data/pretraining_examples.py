"""Sentence-pair instances for masked-LM + next-sentence-prediction pretraining.

Follows google-research/bert ``create_pretraining_data.py`` (``create_instances_from_document``
and ``truncate_seq_pair``) with two deviations. Masking is not done here: it happens per epoch in
the tf.data pipeline.

* Balanced NSP labels: google makes B random whenever the chunk holds a single sentence, which
  skews its labels towards "random" (about 60% on typical corpora). Here a fair coin decides,
  independent of the chunk. When it says "continuation" but the chunk is one sentence, B is the
  document's next sentence (consumed), or, at the end of the document, the sentence's tokens
  are split at a random point into A and B.
* A short target per pair: google draws it once per document pass, so a corpus of a few long
  documents (books, one file each) gets all or none of a pass short: the sample corpus joined
  into its 3 files gave 0-11.9% of rows under 100 of 128 tokens over 8 seeds. Here each chunk
  of sentences draws its own, as Megatron-LM's BERT sample mapping does: 5.6-6.3%
  (benchmarks/short_pairs.py).
"""

import random
from collections.abc import Sequence

import numpy as np

from bertjax.data import corpus, spec, word_segmenter
from bertjax.errors import UserError

Sentence = Sequence[int]
Document = Sequence[Sentence]
# (tokens_a, tokens_b, is_random_next)
_Pair = tuple[list[int], list[int], bool]


def truncate_seq_pair(
    tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random
) -> None:
    """Trims the longer list one token at a time, from its front or back (fair coin), in place.

    Trimming both ends, not just the back, avoids teaching the model that segments always end
    mid-sentence. The trims are counted first and applied with one slice per list, so a
    megabyte-long sentence costs O(n), not O(n^2); the coin flips are the same as trimming one
    token at a time.
    """
    length_a, length_b = len(tokens_a), len(tokens_b)
    front = {"a": 0, "b": 0}
    back = {"a": 0, "b": 0}
    while length_a + length_b > max_num_tokens:
        side = "a" if length_a > length_b else "b"
        if rng.random() < 0.5:
            front[side] += 1
        else:
            back[side] += 1
        if side == "a":
            length_a -= 1
        else:
            length_b -= 1
    for tokens, side in ((tokens_a, "a"), (tokens_b, "b")):
        if front[side] or back[side]:
            tokens[:] = tokens[front[side] : len(tokens) - back[side]]


def _flatten(sentences: Sequence[Sentence]) -> list[int]:
    return [token for sentence in sentences for token in sentence]


def _random_continuation(
    documents: Sequence[Document], doc_index: int, target_length: int, rng: random.Random
) -> list[int]:
    """Consecutive sentences from a random *other* document: >= target_length tokens if it can."""
    # Drawing from n-1 and skipping doc_index guarantees a different document in one draw.
    other = rng.randrange(len(documents) - 1)
    other += other >= doc_index
    document = documents[other]
    tokens: list[int] = []
    for sentence in document[rng.randrange(len(document)) :]:
        tokens.extend(sentence)
        if len(tokens) >= target_length:
            break
    return tokens


def _target_length(max_num_tokens: int, short_seq_prob: float, rng: random.Random) -> int:
    """Mostly max_num_tokens, to use the compute; with probability short_seq_prob a length
    uniform in [2, max_num_tokens], so the model also sees the short inputs of fine-tuning."""
    if rng.random() < short_seq_prob:
        return rng.randint(2, max_num_tokens)
    return max_num_tokens


def _pairs_from_document(
    documents: Sequence[Document],
    doc_index: int,
    max_num_tokens: int,
    short_seq_prob: float,
    rng: random.Random,
) -> list[_Pair]:
    """One pass of google's `create_instances_from_document` over documents[doc_index], each
    chunk of sentences drawing its own target length (google draws one per document pass)."""
    document = documents[doc_index]
    pairs: list[_Pair] = []
    chunk: list[Sentence] = []
    chunk_length = 0
    target_length = max_num_tokens
    i = 0
    while i < len(document):
        if not chunk:
            target_length = _target_length(max_num_tokens, short_seq_prob, rng)
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = _flatten(chunk[:a_end])
            is_random_next = rng.random() < 0.5
            if is_random_next:
                tokens_b = _random_continuation(
                    documents, doc_index, target_length - len(tokens_a), rng
                )
                # The sentences of the chunk after A were not used: give them back.
                i -= len(chunk) - a_end
            elif len(chunk) >= 2:
                tokens_b = _flatten(chunk[a_end:])
            elif i + 1 < len(document):
                i += 1
                tokens_b = list(document[i])
            elif len(tokens_a) >= 2:
                split = rng.randint(1, len(tokens_a) - 1)
                tokens_a, tokens_b = tokens_a[:split], tokens_a[split:]
            else:
                tokens_b = []  # a lone one-token sentence at the end: no pair possible
            if tokens_b:
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                pairs.append((tokens_a, tokens_b, is_random_next))
            chunk = []
            chunk_length = 0
        i += 1
    return pairs


def _to_arrays(
    pairs: Sequence[_Pair], max_seq_length: int, cls_id: int, sep_id: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Packs pairs as ``[CLS] A [SEP] B [SEP]`` rows, right-padded to max_seq_length."""
    n = len(pairs)
    input_ids = np.full((n, max_seq_length), pad_id, np.int32)
    input_mask = np.zeros((n, max_seq_length), np.int32)
    segment_ids = np.zeros((n, max_seq_length), np.int32)
    next_sentence_labels = np.zeros((n,), np.int32)
    for row, (tokens_a, tokens_b, is_random_next) in enumerate(pairs):
        tokens = [cls_id, *tokens_a, sep_id, *tokens_b, sep_id]
        length = len(tokens)
        input_ids[row, :length] = tokens
        input_mask[row, :length] = 1
        segment_ids[row, len(tokens_a) + 2 : length] = 1
        next_sentence_labels[row] = int(is_random_next)
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "next_sentence_labels": next_sentence_labels,
    }


def split_long_sentence(sentence: Sentence, max_num_tokens: int) -> list[list[int]]:
    """[sentence], or, when it is longer than a pair's `max_num_tokens` (text without sentence
    ends, a table dump), pieces of half that, two of which fill a row as a continuation pair.
    Whole, such a sentence was truncated into one pair, as google-research/bert does: of text in
    1,000-token "sentences" 12% reached an instance at length 128 (5,000-token ones, cut into
    whole rows over 4,096: 66%); 98% and 99% now (benchmarks/long_sentences.py; prose, 20-token
    sentences: 92%, random partners' unused halves and truncation)."""
    if len(sentence) <= max_num_tokens:
        return [list(sentence)]
    piece = (max_num_tokens + 1) // 2
    return [list(sentence[i : i + piece]) for i in range(0, len(sentence), piece)]


def _check_args(max_seq_length: int, short_seq_prob: float, dupe_factor: int) -> None:
    spec.require_row_length(max_seq_length, packing=False)
    if not 0.0 <= short_seq_prob <= 1.0:
        raise UserError(f"short_seq_prob={short_seq_prob} is not a probability; use 0..1")
    if dupe_factor < 1:
        raise UserError(f"dupe_factor={dupe_factor} must be >= 1; set --config.dupe_factor=5")


# Training's other way out of too few documents; evaluate, which reads a trained run, drops it.
PACKING_ADVICE = " or train with --config.packing=True (masked LM only)"


def create_instances(
    documents: Sequence[Document],
    *,
    max_seq_length: int,
    short_seq_prob: float,
    dupe_factor: int,
    seed: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    word_starts: bool = False,
) -> dict[str, np.ndarray]:
    """Builds shuffled NSP sentence-pair instances from tokenized documents.

    Args:
      documents: documents -> sentences -> token ids (no [CLS]/[SEP]). Empty sentences and
        documents are skipped; at least two non-empty documents are needed for random pairs.
      max_seq_length: L, tokens per instance including [CLS] and both [SEP]s.
      short_seq_prob: probability that a pair aims at a random length in [2, L-3] instead
        of L-3.
      dupe_factor: passes over the corpus, each drawing fresh split points and random pairs.
      seed: seeds a `random.Random`; same inputs and seed -> identical output.
      word_starts: also return ``word_starts`` (ids marked by a word segmenter, see
        `word_segmenter`; the mark is always removed from ``input_ids``).

    Returns:
      ``input_ids`` [N, L] int32 (padded with pad_id), ``input_mask`` [N, L] int32 (1 = real
      token), ``segment_ids`` [N, L] int32 (0 for [CLS] A [SEP], 1 for B [SEP]),
      ``next_sentence_labels`` [N] int32 (0 = B continues A, 1 = B is random), and with
      `word_starts` ``word_starts`` [N, L] int32 (0 on tokens inside a segmenter word).
    """
    _check_args(max_seq_length, short_seq_prob, dupe_factor)
    max_num_tokens = max_seq_length - 3
    documents = [
        [piece for s in doc if len(s) for piece in split_long_sentence(s, max_num_tokens)]
        for doc in documents
    ]
    documents = [doc for doc in documents if doc]
    if len(documents) < 2:
        raise UserError(
            f"next-sentence pairs need at least 2 non-empty documents, got {len(documents)}; "
            f"add documents to --config.corpus ({corpus.DOCUMENT_BOUNDARIES}){PACKING_ADVICE}"
        )
    rng = random.Random(seed)
    pairs: list[_Pair] = []
    for _ in range(dupe_factor):
        for doc_index in range(len(documents)):
            pairs.extend(
                _pairs_from_document(documents, doc_index, max_num_tokens, short_seq_prob, rng)
            )
    rng.shuffle(pairs)
    arrays = _to_arrays(pairs, max_seq_length, cls_id, sep_id, pad_id)
    arrays["input_ids"], starts = word_segmenter.split_inside_word(arrays["input_ids"])
    if word_starts:
        arrays["word_starts"] = starts
    return arrays
