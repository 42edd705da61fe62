"""`bertjax vocab`: train a WordPiece or SentencePiece vocabulary on a sample of a corpus, and
load whichever kind a vocabulary directory holds.

A vocabulary directory always holds ``vocab.txt`` (tokens, index = id) and ``vocab_meta.json``
(kind, vocab_size, special_token_ids, lowercase: what the model config needs); a SentencePiece
one also holds ``sentencepiece.model``. Point ``--config.vocab_dir`` at it to train with it.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path

from absl import logging

from bertjax.data import corpus, sentences
from bertjax.data.sentencepiece_vocab import (
    MODEL_FILE,
    MODEL_TYPES,
    SentencePieceTokenizer,
    train_sentencepiece_vocab,
)
from bertjax.data.tokenizer import META_FILE, WordPieceTokenizer, train_wordpiece_vocab
from bertjax.errors import UserError

KINDS = ("wordpiece", "sentencepiece")
DEFAULT_SAMPLE_BYTES = 1 << 30  # 1 GiB of text: plenty for a 30k-32k vocabulary


def load_tokenizer(
    vocab_path: str | os.PathLike, lowercase: bool
) -> WordPieceTokenizer | SentencePieceTokenizer:
    """The tokenizer for a ``vocab.txt``: SentencePiece when ``sentencepiece.model`` sits beside
    it, WordPiece otherwise."""
    model_path = Path(vocab_path).parent / MODEL_FILE
    if model_path.is_file():
        return SentencePieceTokenizer(model_path, lowercase)
    return WordPieceTokenizer(vocab_path, lowercase=lowercase)


def sample_documents(
    patterns: str, text_field: str = "text", sample_bytes: int = DEFAULT_SAMPLE_BYTES
) -> Iterator[str]:
    """Documents from every file, each file giving a share of `sample_bytes` (UTF-8 bytes of
    text) in proportion to its size on disk, so a sorted corpus is not sampled from its first
    files only. TFDS sources are read from their start."""
    files = corpus.resolve_files(patterns)
    sizes = [corpus.source_size(path) for path in files]
    total = sum(sizes)
    for path, size in zip(files, sizes, strict=True):
        quota = sample_bytes * size / total if total else sample_bytes / len(files)
        taken = 0
        for text in corpus.read_documents([path], text_field):
            if taken >= quota:
                break
            taken += len(text.encode("utf-8"))
            yield text


def run_vocab(
    input: str,
    kind: str = "wordpiece",
    size: int = 30522,
    out_dir: str | os.PathLike = "vocab",
    uncased: bool = True,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    *,
    text_field: str = "text",
    model_type: str = "unigram",
    seed: int = 0,
) -> dict:
    """Trains a vocabulary on a sample of `input` and writes it to `out_dir`.

    Args:
      input: corpus files/globs (comma-separated) or ``tfds:name/config:version``, as
        ``--config.corpus``.
      kind: "wordpiece" (BERT; Hugging Face trainer) or "sentencepiece".
      size: target vocabulary size (SentencePiece: soft limit).
      out_dir: directory to write vocab.txt, vocab_meta.json (and sentencepiece.model).
      uncased: lowercase (and strip accents / case-fold) before training and tokenizing.
      sample_bytes: UTF-8 bytes of text to train on, spread over the files.
      text_field: JSON Lines / TFDS feature holding a document's text.
      model_type: SentencePiece "unigram" or "bpe".
      seed: SentencePiece's sampling seed.

    Returns:
      the contents of vocab_meta.json (vocab_size, special_token_ids, lowercase, kind, ...).
    """
    if kind not in KINDS:
        raise UserError(f"--kind={kind!r} is unknown; use one of {KINDS}")
    if model_type not in MODEL_TYPES:
        raise UserError(f"--model_type={model_type!r} is unknown; use one of {MODEL_TYPES}")
    if sample_bytes <= 0:
        raise UserError(f"--sample_bytes={sample_bytes} must be positive")
    out_dir = Path(out_dir).expanduser()
    texts = list(sample_documents(input, text_field, sample_bytes))
    if not texts:
        raise UserError(f"corpus {input!r} has no documents to train a vocabulary on")
    fingerprint = corpus.corpus_fingerprint(corpus.resolve_files(input))
    if kind == "wordpiece":
        train_wordpiece_vocab(texts, size, uncased, out_dir, fingerprint=fingerprint)
    else:
        train_sentencepiece_vocab(
            (s for text in texts for s in sentences.split_sentences(text)),
            size,
            uncased,
            out_dir,
            model_type=model_type,
            seed=seed,
            fingerprint=fingerprint,
        )
    meta_path = out_dir / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.setdefault("kind", kind)
    meta["sample_bytes"] = sum(len(t.encode("utf-8")) for t in texts)
    meta["sample_documents"] = len(texts)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logging.info(
        "Trained a %s vocabulary of %d tokens on %d documents (%d bytes) -> %s",
        kind,
        meta["vocab_size"],
        len(texts),
        meta["sample_bytes"],
        out_dir,
    )
    return meta
