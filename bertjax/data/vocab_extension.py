"""A WordPiece vocabulary extended with a corpus's own tokens, for continued pretraining on text
the base vocabulary spells badly: another domain, or a language it lacks (`bertjax vocab
--extend=DIR --size=N`, then `bertjax train --config.init_from=DIR --config.vocab_dir=OUT`).

The base's tokens keep their ids; new ones follow. They are the tokens of a WordPiece vocabulary
of `size` trained on the corpus that the base lacks, in that vocabulary's order: the characters
first (the base would make any word holding a new one [UNK]), then the wordpieces in the order
the trainer merged them (most frequent pairs first), less those that tokenizing the corpus sample
with the extended vocabulary never uses: fragments of words the base has whole ("dur", "##fter"),
whose rows nothing would train (a 150-document marine-survey corpus extending MiniLM's vocabulary
to 30,600 added 78 tokens, 5 of them used; now 9, each used 71 to 92 times: hydrophone, seagrass,
kelp, ...). The run's embeddings keep the base's rows and start the new ones at their mean
(`bertjax/vocabulary_growth.py`).
"""

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import logging

from bertjax.data.lookups import SPECIAL_TOKEN_PATTERN, SPECIAL_TOKENS
from bertjax.data.tokenizer import VOCAB_FORMAT_VERSION, WordPieceTokenizer, train_wordpiece_vocab
from bertjax.data.vocab_files import (
    META_FILE,
    SENTENCEPIECE_FILE,
    VOCAB_FILE,
    read_vocab,
    write_vocab,
)
from bertjax.errors import UserError

TOKENIZE_BATCH = 256  # texts tokenized at a time when counting the new tokens' use


def base_vocabulary(base_dir: str | os.PathLike) -> tuple[list[str], dict]:
    """(tokens, vocab_meta.json or {}) of the WordPiece vocabulary to extend; UserError if
    `base_dir` holds none."""
    base_dir = Path(base_dir).expanduser()
    if not (base_dir / VOCAB_FILE).is_file():
        raise UserError(f"--extend={str(base_dir)!r} holds no vocab.txt; point it at a model dir")
    if (base_dir / SENTENCEPIECE_FILE).is_file():
        raise UserError(f"--extend={str(base_dir)!r} is a SentencePiece vocabulary; only "
                        "WordPiece vocabularies are extended")  # fmt: skip
    meta_path = base_dir / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return read_vocab(base_dir / VOCAB_FILE), meta


def new_tokens(trained: Sequence[str], base: Sequence[str], count: int) -> list[str]:
    """The first `count` tokens of `trained` (in its order) that `base` lacks, special and
    bracketed ones ([unused0]) left out."""
    known = set(base)
    fresh = [t for t in trained if t not in known and not SPECIAL_TOKEN_PATTERN.fullmatch(t)]
    return fresh[:count]


def _used_tokens(
    texts: Sequence[str], base: Sequence[str], candidates: Sequence[str], lowercase: bool
) -> set[str]:
    """The `candidates` that tokenizing `texts` with `base` + `candidates` uses. WordPiece
    matches the longest piece first, so a candidate the base's whole words always cover
    ("dur" beside "during") never gets a row trained; a character is kept regardless (without
    it, any word holding it is [UNK])."""
    with tempfile.TemporaryDirectory() as scratch:
        write_vocab([*base, *candidates], {}, scratch)
        tokenizer = WordPieceTokenizer(Path(scratch) / VOCAB_FILE, lowercase)
        counts = np.zeros(len(base) + len(candidates), np.int64)
        for start in range(0, len(texts), TOKENIZE_BATCH):
            ids = tokenizer.encode(list(texts[start : start + TOKENIZE_BATCH]))
            flat = np.fromiter((i for row in ids for i in row), np.int64)
            counts += np.bincount(flat, minlength=len(counts))
    return {token for token, n in zip(candidates, counts[len(base) :], strict=True) if n}


def extend_wordpiece_vocab(
    texts: Sequence[str],
    base_dir: str | os.PathLike,
    size: int,
    lowercase: bool,
    out_dir: str | os.PathLike,
    *,
    fingerprint: str = "",
) -> dict:
    """Writes `base_dir`'s vocabulary plus up to ``size - len(base)`` tokens of `texts` to
    `out_dir` (vocab.txt, vocab_meta.json); returns the metadata. `lowercase` is the base's
    (its vocab_meta.json) when it says, else the given one."""
    base, base_meta = base_vocabulary(base_dir)
    if size <= len(base):
        raise UserError(f"size={size} adds nothing to the {len(base)} tokens of {base_dir}")
    if base_meta.get("lowercase", lowercase) != lowercase:
        logging.info("Extending with the base's casing: lowercase=%s", base_meta["lowercase"])
    lowercase = base_meta.get("lowercase", lowercase)
    with tempfile.TemporaryDirectory() as scratch:
        trained = read_vocab(
            train_wordpiece_vocab(texts, size, lowercase, scratch, casing_from=str(base_dir))
        )
    candidates = new_tokens(trained, base, len(trained))
    used = _used_tokens(texts, base, candidates, lowercase)
    kept = [t for t in candidates if len(t.removeprefix("##")) == 1 or t in used]
    if len(kept) < len(candidates):
        logging.info(
            "Left out %d of the corpus's %d new wordpieces: tokenizing the corpus sample with the "
            "extended vocabulary never uses them (fragments of words the base spells whole)",
            len(candidates) - len(kept), len(candidates),
        )  # fmt: skip
    added = kept[: size - len(base)]
    if len(added) < size - len(base):
        logging.warning(
            "The corpus gave %d new tokens that its text uses, not the %d asked: the vocabulary "
            "has %d",
            len(added), size - len(base), len(base) + len(added),
        )  # fmt: skip
    tokens = [*base, *added]
    ids = {token: i for i, token in enumerate(tokens)}
    meta = {
        "kind": "wordpiece",
        "vocab_size": len(tokens),
        "requested_vocab_size": size,
        "lowercase": lowercase,
        "special_token_ids": {t: ids[t] for t in SPECIAL_TOKENS if t in ids},
        "corpus_fingerprint": fingerprint,
        "format_version": VOCAB_FORMAT_VERSION,
        "extends": {"directory": str(base_dir), "vocab_size": len(base), "added": len(added)},
    }
    write_vocab(tokens, meta, out_dir)
    return meta
