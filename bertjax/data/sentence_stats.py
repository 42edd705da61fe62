"""Statistics of how each corpus source split into sentences (`sentences.split_sentences`), and
the warning when a source looks unsplit: its NSP pairs would be arbitrary cuts."""

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging

# A source looks unsplit when its median "sentence" is longer than this many characters, or when
# most of its documents of at least LONG_DOCUMENT_CHARS characters come out as one sentence. On
# ../shared/data's 16 English and Chinese sources the largest median is 134 once split; the
# unsplit ones had 264 to 3,310 (docs/data.md, "Sentence splitting").
UNSPLIT_MEDIAN_CHARS = 250
LONG_DOCUMENT_CHARS = 1000


@dataclasses.dataclass(frozen=True)
class SentenceStats:
    """How one corpus source split into sentences; lengths in characters."""

    documents: int
    sentences: int
    sentences_per_document_mean: float
    sentences_per_document_median: float
    chars_per_sentence_mean: float
    chars_per_sentence_median: float
    chars_per_sentence_p95: float
    single_sentence_share: float  # of all documents, those that are one sentence
    long_documents: int  # documents of at least LONG_DOCUMENT_CHARS characters
    long_single_sentence_share: float  # of those, the ones that are one sentence


def sentence_stats(sentence_lengths: Sequence[Sequence[int]]) -> SentenceStats:
    """Statistics of documents given as the character lengths of their sentences."""
    per_document = np.array([len(doc) for doc in sentence_lengths], dtype=np.int64)
    lengths = np.array([n for doc in sentence_lengths for n in doc], dtype=np.int64)
    doc_chars = np.array([sum(doc) for doc in sentence_lengths], dtype=np.int64)
    long = doc_chars >= LONG_DOCUMENT_CHARS
    single = per_document == 1

    def share(mask: np.ndarray, of: np.ndarray) -> float:
        return float(mask[of].mean()) if of.any() else 0.0

    def stat(values: np.ndarray, fn: Callable[[np.ndarray], float]) -> float:
        return float(fn(values)) if values.size else 0.0

    return SentenceStats(
        documents=len(per_document),
        sentences=int(per_document.sum()),
        sentences_per_document_mean=stat(per_document, np.mean),
        sentences_per_document_median=stat(per_document, np.median),
        chars_per_sentence_mean=stat(lengths, np.mean),
        chars_per_sentence_median=stat(lengths, np.median),
        chars_per_sentence_p95=stat(lengths, lambda x: np.percentile(x, 95)),
        single_sentence_share=share(single, np.ones_like(single)),
        long_documents=int(long.sum()),
        long_single_sentence_share=share(single, long),
    )


def unsplit_warning(source: str, stats: SentenceStats) -> str | None:
    """A one-line warning when `source`'s sentences look unsplit, else None."""
    symptoms = []
    if stats.chars_per_sentence_median > UNSPLIT_MEDIAN_CHARS:
        symptoms.append(f"median sentence {stats.chars_per_sentence_median:.0f} characters")
    if stats.long_single_sentence_share > 0.5:
        symptoms.append(
            f"{stats.long_single_sentence_share:.0%} of its {stats.long_documents} documents of "
            f"{LONG_DOCUMENT_CHARS}+ characters are one sentence"
        )
    if not symptoms:
        return None
    return (
        f"Sentences of {source} look unsplit ({'; '.join(symptoms)}): its NSP pairs become "
        "arbitrary cuts. Give its text sentence punctuation or a blank line after each sentence "
        "(.txt: one sentence per line), or train with --config.packing=True (no NSP)"
    )


def log_source_stats(source: str, stats: SentenceStats, *, nsp: bool = True) -> None:
    """Logs one line of `source`'s sentence statistics, and the unsplit warning if it applies
    (`nsp`: its sentences become NSP pairs; packed rows do not need them)."""
    logging.info(
        "Sentences of %s: %d documents, %.1f sentences/document (median %.0f), "
        "%.0f characters/sentence (median %.0f, p95 %.0f), %.1f%% one-sentence documents",
        source,
        stats.documents,
        stats.sentences_per_document_mean,
        stats.sentences_per_document_median,
        stats.chars_per_sentence_mean,
        stats.chars_per_sentence_median,
        stats.chars_per_sentence_p95,
        100 * stats.single_sentence_share,
    )
    if nsp and (warning := unsplit_warning(source, stats)):
        logging.warning("%s", warning)


def stats_by_source(
    sources: Sequence[str], sentence_lengths: Sequence[Sequence[int]]
) -> dict[str, SentenceStats]:
    """`sentence_stats` of each source's documents; `sources` names the source of each document."""
    grouped: dict[str, list[Sequence[int]]] = {}
    for source, lengths in zip(sources, sentence_lengths, strict=True):
        grouped.setdefault(source, []).append(lengths)
    return {source: sentence_stats(docs) for source, docs in grouped.items()}
