"""SQuAD-style extractive question answering: windowed features and span decoding (the files
are read by `squad_files`).

The recipe is google-research/bert's run_squad.py. A context is split on whitespace into words,
each CJK ideograph a word of its own (so Chinese answers, CMRC 2018's and DRCD's, start and end
at any character); each word keeps its character start and end and is WordPiece-tokenized; a
context longer than one sequence is cut into windows that overlap by ``max_seq_length - query -
3 - doc_stride`` wordpieces. Each feature is ``[CLS] question [SEP] window [SEP]``. A wordpiece
seen in several windows is predicted only from the window where it has the most context on both
sides, and a predicted span is mapped back to the original context text through the characters
of its first and last wordpieces.
"""

import bisect
import collections
import dataclasses
import itertools
import unicodedata
from collections.abc import Sequence

import numpy as np

from bertjax.data import basic_split
from bertjax.data.lookups import VocabularyLookups
from bertjax.errors import UserError
from bertjax.finetune.squad_files import QAExample, read_squad  # noqa: F401 (squad.* names)


@dataclasses.dataclass(frozen=True)
class QAFeatures:
    """N windows of L = max_seq_length tokens. Answer positions are wordpiece positions inside
    the feature, 0 (the [CLS] position) when the first answer is not wholly in the window."""

    input_ids: np.ndarray  # [N, L] int32
    input_mask: np.ndarray  # [N, L] int32, 1 on real tokens
    segment_ids: np.ndarray  # [N, L] int32, 0 for [CLS] question [SEP], 1 for window [SEP]
    start_positions: np.ndarray  # [N] int32
    end_positions: np.ndarray  # [N] int32, inclusive
    example_index: np.ndarray  # [N] int32, index into the examples the features came from
    token_to_word: np.ndarray  # [N, L] int32, context word of each window token, -1 elsewhere
    token_is_max_context: np.ndarray  # [N, L] bool, this window is the token's best window
    # Position p of a feature's window holds the context's wordpiece p + piece_shift[feature].
    piece_shift: np.ndarray  # [N] int32
    # Per example: [T, 2] character start and end (exclusive) of each context wordpiece.
    piece_chars: tuple[np.ndarray, ...] = ()


def context_words(context: str) -> list[tuple[int, int]]:
    """(character start, character end exclusive) of each word: a CJK ideograph, or a run of
    other characters between BERT's whitespace and ideographs (`basic_split`; not Python's
    whitespace, whose VT, FF and \\x1c-\\x1f BERT deletes inside a word)."""
    return basic_split.whitespace_word_spans(context)


@dataclasses.dataclass(frozen=True)
class _TokenizedContext:
    words: list[tuple[int, int]]  # character spans, as `context_words`
    token_ids: np.ndarray  # [T] wordpiece ids of the whole context
    token_to_word: np.ndarray  # [T] word index of each wordpiece
    word_offsets: np.ndarray  # [W + 1] first wordpiece of each word; the last entry is T
    token_chars: np.ndarray  # [T, 2] character start and end (exclusive) of each wordpiece


# Characters tokenizers' normalisers drop: combining marks (accents), controls, format characters.
_DROPPED_CATEGORIES = ("Mn", "Cc", "Cf")


def _comparable(text: str) -> str:
    """`text` as any of the tokenizers' normalisers could leave it, for comparing a wordpiece
    with the word it came from: compatibility-decomposed, case-folded, without accents, controls,
    format characters or whitespace."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(
        char
        for char in folded
        if unicodedata.category(char) not in _DROPPED_CATEGORIES and not char.isspace()
    )


def piece_char_spans(word: str, pieces: Sequence[str | None]) -> list[tuple[int, int]] | None:
    """Character start and end (exclusive) in `word` of each of its wordpieces (their text,
    without "##" or "▁"; None for [UNK], whose length is unknown), or None when the pieces do
    not spell the word (an [UNK], a normalisation not foreseen): the caller then gives every
    piece the whole word. A piece without characters (SentencePiece's lone "▁") has an empty
    span where the next piece starts; characters no piece spells (accents when uncased, format
    characters) belong to the piece before them."""
    if None not in pieces and word.isascii() and "".join(pieces).lower() == word.lower():
        ends = list(itertools.accumulate(map(len, pieces)))  # ASCII: lengths are kept
        return [(end - len(piece), end) for piece, end in zip(pieces, ends, strict=True)]
    chars, owner = [], []  # the word's comparable characters, and the index each came from
    for index, char in enumerate(word):
        for comparable in _comparable(char):
            chars.append(comparable)
            owner.append(index)
    owner.append(len(word))
    spans, at = [], 0
    for piece in pieces:
        if piece is None:
            return None
        text = _comparable(piece)
        if "".join(chars[at : at + len(text)]) != text:
            return None
        # A piece ends where the next one starts: marks it does not spell (a combining accent)
        # stay with the letter before them.
        spans.append((owner[at], owner[at + len(text)] if text else owner[at]))
        at += len(text)
    return spans if at == len(chars) else None


def _piece_texts(tokenizer: VocabularyLookups) -> list[str | None]:
    """The surface text of each wordpiece id: without "##" (WordPiece's continuation) or "▁"
    (SentencePiece's word start); None for [UNK] and other special tokens."""
    special = {*tokenizer.special_ids, tokenizer.unk_id}
    return [
        None if i in special else token.removeprefix("##").replace("▁", "")
        for i, token in enumerate(tokenizer.vocab)
    ]


def _token_chars(
    texts: list[str | None], spans: list[tuple[int, int]], context: str, ids: list[list[int]]
) -> np.ndarray:
    """[T, 2] character spans in `context` of the wordpieces `ids` of its words `spans`
    (`texts`: `_piece_texts`)."""
    rows = []
    for (start, end), piece_ids in zip(spans, ids, strict=True):
        inside = piece_char_spans(context[start:end], [texts[i] for i in piece_ids])
        if inside is None:
            rows += [(start, end)] * len(piece_ids)
        else:
            rows += [(start + first, start + last) for first, last in inside]
    return np.array(rows, np.int32).reshape(-1, 2)


def _tokenize_contexts(
    contexts: Sequence[str], tokenizer: VocabularyLookups
) -> dict[str, _TokenizedContext]:
    """Each distinct context's wordpieces, from one batched call over all their words."""
    unique = list(dict.fromkeys(contexts))
    words = [context_words(context) for context in unique]
    word_ids = tokenizer.encode(
        [c[start:end] for c, spans in zip(unique, words, strict=True) for start, end in spans]
    )
    tokenized, first_word, texts = {}, 0, _piece_texts(tokenizer)
    for context, spans in zip(unique, words, strict=True):
        ids = word_ids[first_word : first_word + len(spans)]
        first_word += len(spans)
        lengths = np.array([len(piece_ids) for piece_ids in ids], np.int64)
        tokenized[context] = _TokenizedContext(
            words=spans,
            token_ids=np.array([i for piece_ids in ids for i in piece_ids], np.int32),
            token_to_word=np.repeat(np.arange(len(spans), dtype=np.int32), lengths),
            word_offsets=np.concatenate([[0], np.cumsum(lengths)]),
            token_chars=_token_chars(texts, spans, context, ids),
        )
    return tokenized


def _answer_tokens(
    answer: tuple[str, int], context: _TokenizedContext, answer_ids: list[int]
) -> tuple[int, int] | None:
    """First and last wordpiece of `answer` in the context, or None when no wordpiece covers it.

    The answer's words give a first guess; as run_squad's `_improve_answer_span`, the span then
    shrinks to the sub-span whose ids equal the answer's own wordpieces, so "1990" inside the
    word "1990." keeps only the "1990" wordpiece.
    """
    text, char_start = answer
    word_starts = [start for start, _ in context.words]
    word_ends = [end for _, end in context.words]
    first_word = bisect.bisect_right(word_ends, char_start)
    last_word = bisect.bisect_left(word_starts, char_start + len(text)) - 1
    if first_word > last_word:
        return None
    start = int(context.word_offsets[first_word])
    end = int(context.word_offsets[last_word + 1]) - 1
    if start > end:
        return None
    ids = context.token_ids.tolist()
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if ids[new_start : new_end + 1] == answer_ids:
                return new_start, new_end
    return start, end


def _windows(num_tokens: int, window_length: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of run_squad's sliding windows; the last one reaches the end."""
    windows, start = [], 0
    while start < num_tokens:
        length = min(num_tokens - start, window_length)
        windows.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return windows


def _best_windows(windows: list[tuple[int, int]], num_tokens: int) -> np.ndarray:
    """[num_tokens] index of each token's max-context window: the one maximising
    min(left context, right context) + 0.01 * window length; the first such on a tie."""
    positions = np.arange(num_tokens)
    scores = np.full((len(windows), num_tokens), -np.inf)
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        inside = (positions >= start) & (positions <= end)
        context = np.minimum(positions - start, end - positions) + 0.01 * length
        scores[index] = np.where(inside, context, -np.inf)
    return np.argmax(scores, axis=0)


def _check_window_settings(max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
    if max_seq_length - max_query_length - 3 < 1:
        raise UserError(
            f"max_seq_length={max_seq_length} leaves no room for context after a "
            f"max_query_length={max_query_length} question; raise max_seq_length or lower "
            "max_query_length"
        )
    if doc_stride < 1:
        raise UserError(f"doc_stride={doc_stride} must be at least 1 wordpiece")


def make_features(
    examples: Sequence[QAExample],
    tokenizer: VocabularyLookups,
    *,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> QAFeatures:
    """Windows every example's context into ``[CLS] question [SEP] window [SEP]`` features,
    labelled with the first answer (see QAFeatures). Questions keep their first
    `max_query_length` wordpieces."""
    _check_window_settings(max_seq_length, doc_stride, max_query_length)
    queries = [ids[:max_query_length] for ids in tokenizer.encode([e.question for e in examples])]
    contexts = _tokenize_contexts([e.context for e in examples], tokenizer)
    answer_ids = tokenizer.encode([e.answers[0][0] if e.answers else "" for e in examples])
    rows = collections.defaultdict(list)
    for example_index, example in enumerate(examples):
        query, context = queries[example_index], contexts[example.context]
        answer = None
        if example.answers:
            answer = _answer_tokens(example.answers[0], context, answer_ids[example_index])
        windows = _windows(len(context.token_ids), max_seq_length - len(query) - 3, doc_stride)
        best_windows = _best_windows(windows, len(context.token_ids))
        window_offset = len(query) + 2  # [CLS] question [SEP]
        for window_index, (start, length) in enumerate(windows):
            window = slice(window_offset, window_offset + length)
            input_ids = np.full(max_seq_length, tokenizer.pad_id, np.int32)
            input_ids[: window.start] = [tokenizer.cls_id, *query, tokenizer.sep_id]
            input_ids[window] = context.token_ids[start : start + length]
            input_ids[window.stop] = tokenizer.sep_id
            segment_ids = np.zeros(max_seq_length, np.int32)
            segment_ids[window.start : window.stop + 1] = 1
            token_to_word = np.full(max_seq_length, -1, np.int32)
            token_to_word[window] = context.token_to_word[start : start + length]
            is_max_context = np.zeros(max_seq_length, bool)
            is_max_context[window] = best_windows[start : start + length] == window_index
            inside = answer is not None and start <= answer[0] and answer[1] < start + length
            rows["input_ids"].append(input_ids)
            rows["input_mask"].append((np.arange(max_seq_length) <= window.stop).astype(np.int32))
            rows["segment_ids"].append(segment_ids)
            rows["start_positions"].append(answer[0] - start + window_offset if inside else 0)
            rows["end_positions"].append(answer[1] - start + window_offset if inside else 0)
            rows["example_index"].append(example_index)
            rows["token_to_word"].append(token_to_word)
            rows["token_is_max_context"].append(is_max_context)
            rows["piece_shift"].append(start - window_offset)
    by_token = ("input_ids", "input_mask", "segment_ids", "token_to_word")
    return QAFeatures(
        **{name: np.array(rows[name], np.int32).reshape(-1, max_seq_length) for name in by_token},
        **{
            name: np.array(rows[name], np.int32)
            for name in ("start_positions", "end_positions", "example_index", "piece_shift")
        },
        token_is_max_context=np.array(rows["token_is_max_context"], bool).reshape(
            -1, max_seq_length
        ),
        piece_chars=tuple(contexts[example.context].token_chars for example in examples),
    )


def decode(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float | None = None,
) -> dict[str, str]:
    """Predicted answer text of every example id, from [N, L] start and end logits: its best
    span (`best_spans`), and with a `null_score_diff_threshold` (SQuAD 2.0, run_squad's rule)
    "" where its null score beats the span's by more than the threshold."""
    spans, null_diffs = best_spans(examples, features, start_logits, end_logits, n_best=n_best,
                                   max_answer_length=max_answer_length)  # fmt: skip
    return null_answered(spans, null_diffs, null_score_diff_threshold)


def null_answered(
    spans: dict[str, str], null_diffs: dict[str, float], threshold: float | None
) -> dict[str, str]:
    """`spans` with "" where the null score diff is over `threshold` (None: every span kept)."""
    if threshold is None:
        return spans
    return {q: "" if null_diffs[q] > threshold else span for q, span in spans.items()}


def best_spans(
    examples: Sequence[QAExample],
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> tuple[dict[str, str], dict[str, float]]:
    """(best span text, null score diff) of every example id, from [N, L] start and end logits.

    Per feature, the `n_best` highest start and end positions are paired; a pair counts when
    both lie in the context window, start <= end, the span has at most `max_answer_length`
    wordpieces and the start position has its max context in this feature. The best
    start_logit + end_logit over all features of an example wins, and its text is the context
    from the first character of its first wordpiece to the last of its last (original casing
    and accents; "1990" of the word "1990." is "1990", as run_squad's `get_final_text` and
    Hugging Face's offsets give it; a word whose wordpieces do not spell it, with an [UNK], is
    whole). An example with no valid span gets "". The null score diff is the example's
    null score (the [CLS] start and end logits, lowest over its features) minus its best span's
    score (run_squad's null_odds; +inf without a valid span).
    """
    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    if start_logits.shape != features.input_ids.shape or end_logits.shape != start_logits.shape:
        raise ValueError(
            f"logits of shapes {start_logits.shape} and {end_logits.shape} for features of "
            f"shape {features.input_ids.shape}"
        )
    best: dict[int, tuple[float, int, int]] = {}  # example -> (score, first piece, last piece)
    null: dict[int, float] = {}  # example -> its lowest null score
    for feature, example_index in enumerate(features.example_index.tolist()):
        null_score = float(start_logits[feature, 0] + end_logits[feature, 0])
        null[example_index] = min(null.get(example_index, null_score), null_score)
        span = _best_span(features, feature, start_logits, end_logits, n_best, max_answer_length)
        if span and (example_index not in best or span[0] > best[example_index][0]):
            shift = int(features.piece_shift[feature])
            best[example_index] = (span[0], span[1] + shift, span[2] + shift)
    spans, null_diffs = {}, {}
    for example_index, example in enumerate(examples):
        if example_index not in best:
            spans[example.id], null_diffs[example.id] = "", np.inf
            continue
        score, first, last = best[example_index]
        chars = features.piece_chars[example_index]
        spans[example.id] = example.context[chars[first, 0] : chars[last, 1]]
        null_diffs[example.id] = null.get(example_index, np.inf) - score
    return spans, null_diffs


def _best_span(features: QAFeatures, feature: int, start_logits, end_logits, n_best: int,
               max_answer_length: int) -> tuple[float, int, int] | None:  # fmt: skip
    """(score, start, end position) of `feature`'s best valid span (`decode`'s rules), or None
    when no pair of its n_best starts and ends is one."""
    starts = np.argsort(-start_logits[feature], kind="stable")[:n_best, None]
    ends = np.argsort(-end_logits[feature], kind="stable")[None, :n_best]
    token_to_word = features.token_to_word[feature]
    valid = (
        (token_to_word[starts] >= 0)
        & (token_to_word[ends] >= 0)
        & features.token_is_max_context[feature][starts]
        & (starts <= ends)
        & (ends - starts < max_answer_length)
    )
    scores = start_logits[feature][starts] + end_logits[feature][ends]
    candidates = np.flatnonzero(valid)
    if not len(candidates):
        return None
    start_rank, end_rank = np.unravel_index(
        candidates[np.argmax(scores.ravel()[candidates])], valid.shape
    )
    start, end = starts[start_rank, 0], ends[0, end_rank]
    return float(scores[start_rank, end_rank]), int(start), int(end)
