"""Vocabulary directories: training one (`run_vocab`, i.e. `bertjax vocab`, on a sample of a
corpus; `build_or_load_vocab`, a run's vocabulary trained once per corpus and cached) and loading
the tokenizer of whichever kind a directory holds (`load_tokenizer`).

A vocabulary directory always holds ``vocab.txt`` (tokens, index = id) and ``vocab_meta.json``
(kind, vocab_size, special_token_ids, lowercase: what the model config needs); a SentencePiece
one also holds ``sentencepiece.model``. Point ``--config.vocab_dir`` at it to train with it.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

from absl import logging
from etils import epath

from bertjax import paths, run_lock
from bertjax.data import corpus, corpus_sample, sentences, text_encodings, vocab_extension
from bertjax.data.lookups import SPECIAL_TOKENS, cased_tokens
from bertjax.data.sentencepiece_vocab import (
    DEFAULT_CHARACTER_COVERAGE,
    MODEL_TYPES,
    SentencePieceTokenizer,
    train_sentencepiece_vocab,
)
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import VOCAB_FORMAT_VERSION, WordPieceTokenizer, train_wordpiece_vocab
from bertjax.data.vocab_files import META_FILE, SENTENCEPIECE_FILE, VOCAB_FILE, read_vocab
from bertjax.errors import UserError

KINDS = ("wordpiece", "sentencepiece")
DEFAULT_CACHE_DIR = "~/.cache/bertjax"
STAGING_PREFIX = ".vocab-"  # `run_vocab`'s staging folders in --out
Tokenizer = WordPieceTokenizer | SentencePieceTokenizer


def vocabulary_kind(vocab_path: str | os.PathLike) -> str:
    """The kind of the vocabulary of a ``vocab.txt`` (one of KINDS): "sentencepiece" when
    ``sentencepiece.model`` sits beside it, "wordpiece" otherwise; UserError when the
    directory's vocab_meta.json says WordPiece beside such a model (a stale one)."""
    directory = epath.Path(vocab_path).parent
    if not (directory / SENTENCEPIECE_FILE).is_file():
        return "wordpiece"
    meta_path = directory / META_FILE
    try:
        kind = json.loads(meta_path.read_text()).get("kind") if meta_path.is_file() else None
    except (ValueError, AttributeError):  # not JSON, or not an object: the model decides
        kind = None
    if kind == "wordpiece":
        raise UserError(
            f"{directory} holds a {SENTENCEPIECE_FILE} beside a WordPiece vocabulary (its "
            f"{META_FILE} says so: one written over a SentencePiece one); remove "
            f"{SENTENCEPIECE_FILE} from it"
        )
    return "sentencepiece"


def load_tokenizer(vocab_path: str | os.PathLike, lowercase: bool) -> Tokenizer:
    """The tokenizer for a ``vocab.txt``, of its `vocabulary_kind`."""
    if vocabulary_kind(vocab_path) == "sentencepiece":
        return SentencePieceTokenizer(epath.Path(vocab_path).parent / SENTENCEPIECE_FILE, lowercase)
    return WordPieceTokenizer(vocab_path, lowercase=lowercase)


def vocab_files(vocab_path: str | os.PathLike) -> list[epath.Path]:
    """The files of the vocabulary of `vocab_path` (a ``vocab.txt``): it, and the
    ``sentencepiece.model`` beside it for a SentencePiece vocabulary."""
    directory = epath.Path(vocab_path).parent
    return [
        directory / name
        for name in (VOCAB_FILE, SENTENCEPIECE_FILE)
        if (directory / name).is_file()
    ]


def vocab_sha256(vocab_dir: str | os.PathLike) -> str:
    """sha256 over vocab.txt (and sentencepiece.model when present): a vocabulary's identity."""
    digest = hashlib.sha256()
    for name in (VOCAB_FILE, SENTENCEPIECE_FILE):
        path = epath.Path(vocab_dir) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def vocab_cache_key(
    fingerprint: str, vocab_size: int, lowercase: bool, text_field: str, text_encoding: str = ""
) -> str:
    """Hex key naming a cached vocabulary: changes with the corpus or any training setting."""
    settings = [fingerprint, vocab_size, lowercase, text_field, VOCAB_FORMAT_VERSION]
    key = json.dumps(settings + ([text_encoding] if text_encoding else []))  # UTF-8: as before
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def _check_given_vocab(vocab_dir: str, lowercase: bool) -> epath.Path:
    """Validates a user-supplied vocabulary directory (local or a URI) and returns its
    ``vocab.txt``."""
    vocab_path = epath.Path(vocab_dir).expanduser() / VOCAB_FILE
    if not vocab_path.is_file():
        raise UserError(
            f"vocabulary {str(vocab_path)!r} does not exist; point --config.vocab_dir at a "
            "directory holding vocab.txt, or set --config.vocab_dir='' to train one"
        )
    meta_lowercase = vocabulary_lowercase(vocab_path.parent)
    if meta_lowercase is not None and meta_lowercase != lowercase:
        raise UserError(
            f"vocabulary {str(vocab_path)!r} was trained with lowercase={meta_lowercase}; "
            f"set --config.lowercase={meta_lowercase}"
        )
    if meta_lowercase is None and lowercase and (cased := cased_tokens(read_vocab(vocab_path))):
        raise UserError(
            f"vocabulary {str(vocab_path)!r} is cased (tokens such as {', '.join(cased)}), and "
            "lowercased text never reaches its upper-case tokens; set --config.lowercase=False"
        )
    return vocab_path


def vocabulary_lowercase(vocab_dir: epath.Path | Path) -> bool | None:
    """The casing `vocab_dir`'s vocab_meta.json gives (bertjax's vocabularies, imports), None
    when it has none (a vocab.txt from elsewhere)."""
    meta_path = epath.Path(vocab_dir) / META_FILE
    if not meta_path.is_file():
        return None
    return json.loads(meta_path.read_bytes().decode("utf-8")).get("lowercase")


def default_lowercase(vocab_dir: epath.Path | Path) -> bool:
    """`vocab_dir`'s casing: its vocab_meta.json's, else cased when its vocab.txt has upper-case
    tokens (google's cased_L-12 download), else uncased."""
    lowercase = vocabulary_lowercase(vocab_dir)
    if lowercase is None:
        return not cased_tokens(read_vocab(epath.Path(vocab_dir) / VOCAB_FILE), limit=1)
    return lowercase


def build_or_load_vocab(data: DataSpec) -> epath.Path:
    """Returns the path of the run's ``vocab.txt``, training and caching one when needed.

    Uses ``data.vocab_dir`` when set. Otherwise looks in
    ``<data.cache_dir or ~/.cache/bertjax>/vocab-<key>`` (key: corpus fingerprint, vocab_size,
    lowercase, text_field, format version) and trains there on a miss. Training writes to a
    temporary directory renamed into place at the end, so a killed run never leaves a partial
    vocabulary behind.
    """
    if data.vocab_dir:
        vocab_path = _check_given_vocab(data.vocab_dir, data.lowercase)
        logging.info("Using vocabulary %s", vocab_path)
        return vocab_path
    files = corpus.resolve_files(data.corpus)
    fingerprint = corpus.corpus_fingerprint(files)
    key = vocab_cache_key(
        fingerprint, data.vocab_size, data.lowercase, data.text_field, data.text_encoding
    )
    cache_root = Path(data.cache_dir or DEFAULT_CACHE_DIR).expanduser()
    final_dir = cache_root / f"vocab-{key}"
    if (final_dir / VOCAB_FILE).is_file():
        logging.info("Reusing cached vocabulary %s", final_dir / VOCAB_FILE)
        return epath.Path(final_dir / VOCAB_FILE)
    paths.make_local_dir(cache_root, "--config.cache_dir")
    with paths.staging_dir(cache_root, f".vocab-{key}-") as temp_dir:
        train_wordpiece_vocab(
            corpus.read_documents(
                files,
                data.text_field,
                text_format=data.text_format,
                text_encoding=data.text_encoding,
            ),
            data.vocab_size,
            data.lowercase,
            temp_dir,
            fingerprint=fingerprint,
        )
        try:
            os.rename(temp_dir, final_dir)
        except OSError:
            # Another process finished the same vocabulary first; theirs is identical.
            if not (final_dir / VOCAB_FILE).is_file():
                raise
    vocab_path = epath.Path(final_dir / VOCAB_FILE)
    _log_trained(vocab_path, data, len(files))
    return vocab_path


def _log_trained(vocab_path: epath.Path, data: DataSpec, num_files: int) -> None:
    size = len(read_vocab(vocab_path))
    logging.info(
        "Trained a %d-token vocabulary (vocab_size=%d, lowercase=%s) on %d corpus files -> %s",
        size, data.vocab_size, data.lowercase, num_files, vocab_path,
    )  # fmt: skip
    if size > data.vocab_size:
        logging.warning(
            "The vocabulary has %d tokens, more than vocab_size=%d: the special tokens and the "
            "corpus's characters (with their ## forms) are always kept", size, data.vocab_size,
        )  # fmt: skip
    elif size < 0.9 * data.vocab_size:
        logging.warning(
            "The vocabulary has %d tokens, fewer than vocab_size=%d: the corpus holds no more "
            "(Chinese text gives one token per character: BERT's tokenizer splits every CJK "
            "character); the model is built with %d", size, data.vocab_size, size,
        )  # fmt: skip


def run_vocab(
    input: str,
    kind: str = "wordpiece",
    size: int = 30522,
    out_dir: str | os.PathLike = "vocab",
    uncased: bool = True,
    sample_bytes: int = corpus_sample.DEFAULT_SAMPLE_BYTES,
    *,
    text_field: str = "text",
    model_type: str = "unigram",
    seed: int = 0,
    text_format: str = "sentences",
    extend: str = "",
    text_encoding: str = "",
    character_coverage: float | None = None,
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
      text_field: JSON Lines field, table column or TFDS feature holding the text.
      model_type: SentencePiece "unigram" or "bpe".
      seed: SentencePiece's sampling seed.
      text_format: layout of ``.txt`` files, as the config field (SentencePiece trains on
        sentences: "paragraphs" joins hard-wrapped lines first).
      text_encoding: the text files' encoding, as the config field ("" = UTF-8).
      extend: a directory whose WordPiece vocabulary the new one keeps at its ids, adding the
        corpus's own tokens up to `size` (`vocab_extension`); "" = a vocabulary of its own.
      character_coverage: SentencePiece: the fraction of the sample's characters (by count)
        the vocabulary must hold, the rarest others becoming [UNK] (None: 0.9995).

    Returns:
      the contents of vocab_meta.json (vocab_size, special_token_ids, lowercase, kind, ...).
    """
    _check_vocab_args(kind, size, sample_bytes, model_type, extend, out_dir)
    _check_character_coverage(kind, character_coverage)
    text_encodings.check_encoding_name(text_encoding, "--text_encoding")
    texts = list(
        corpus_sample.sample_documents(input, text_field, sample_bytes, text_format, text_encoding)
    )
    if not texts:
        raise UserError(f"corpus {input!r} has no documents to train a vocabulary on")
    fingerprint = corpus_sample.sample_fingerprint(corpus.resolve_files(input), texts)
    out_dir = paths.make_local_dir(out_dir, "--out")  # once the corpus has been read
    # Trained beside, then moved in (vocab_meta.json last): a stop or a full disk leaves the
    # directory as it was; a second `vocab` into it waits for none and is refused.
    with run_lock.held(out_dir, "--out"):
        for stale in out_dir.glob(STAGING_PREFIX + "*"):  # a killed run's: none runs now
            shutil.rmtree(stale, ignore_errors=True)
        with paths.staging_dir(out_dir, STAGING_PREFIX) as staging:
            _train_into(staging, texts, kind, size, uncased, extend, model_type, seed,
                        fingerprint, character_coverage)  # fmt: skip
            meta = _finish_meta(staging / META_FILE, kind, texts)
            for name in (SENTENCEPIECE_FILE, VOCAB_FILE, META_FILE):
                if (staging / name).is_file():
                    (staging / name).replace(out_dir / name)
    logging.info("Trained a %s vocabulary of %d tokens on %d documents (%d bytes) -> %s",
                 kind, meta["vocab_size"], len(texts), meta["sample_bytes"], out_dir)  # fmt: skip
    return meta


def _finish_meta(meta_path: Path, kind: str, texts: list[str]) -> dict:
    """Adds the vocabulary's kind and sample size to vocab_meta.json; returns its contents."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.setdefault("kind", kind)
    meta["sample_bytes"] = sum(len(t.encode("utf-8")) for t in texts)
    meta["sample_documents"] = len(texts)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def _train_into(out_dir: Path, texts: list[str], kind: str, size: int, uncased: bool,
                extend: str, model_type: str, seed: int, fingerprint: str,
                character_coverage: float | None) -> None:  # fmt: skip
    """Trains `run_vocab`'s vocabulary on `texts` and writes its files to `out_dir`."""
    if extend:
        vocab_extension.extend_wordpiece_vocab(
            texts, extend, size, uncased, out_dir, fingerprint=fingerprint
        )
    elif kind == "wordpiece":
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
            character_coverage=character_coverage or DEFAULT_CHARACTER_COVERAGE,
        )


def next_steps(meta: dict, out: str, size: int, extend: str) -> list[str]:
    """What `bertjax vocab` says after writing `meta`'s vocabulary to `out` (for `size`, and
    `extend`'s base): what it wrote, and the command that trains or continues with it."""
    lines = [f"Wrote a {meta['vocab_size']}-token {meta['kind']} vocabulary to {out}"]
    if extend:
        imported = os.path.isdir(os.path.join(extend, "checkpoints"))
        model = extend if imported else "MODEL_DIR"
        return lines + [
            f"{meta['extends']['added']} tokens after the {meta['extends']['vocab_size']} of "
            f"{extend}; continue pretraining from it: bertjax train --config.init_from={model} "
            f"--config.vocab_dir={out} --config.vocab_size={meta['vocab_size']} "
            f"--config.lowercase={meta['lowercase']} ..."
            + ("" if imported else f" (MODEL_DIR: `bertjax import --from={extend}`)")
        ]
    small = meta["vocab_size"] < size  # a corpus with fewer words and pieces than --size
    why = f"fewer than --size={size}: the sampled text has no more to make; " if small else ""
    cased = "" if meta["lowercase"] else " --config.lowercase=False"
    lines.append(
        f"{why}train with it: bertjax train --config.vocab_dir={out} "
        f"--config.vocab_size={meta['vocab_size']}{cased} ..."
    )
    if meta.get("model_type") == "bpe":
        lines.append(
            "note: `bertjax export` converts SentencePiece unigram models only; a run with this "
            "BPE vocabulary trains, but its tokenizer will not export to Hugging Face "
            "(--model_type=unigram does)"
        )
    return lines


def _check_vocab_args(kind: str, size: int, sample_bytes: int, model_type: str, extend: str,
                      out_dir) -> None:  # fmt: skip
    """`run_vocab`'s arguments, before the corpus is read; UserError naming the flag."""
    paths.require_local(out_dir, "--out")
    if kind == "wordpiece" or extend:  # a sentencepiece.model beside vocab.txt is what is read
        paths.refuse_leftovers(
            out_dir,
            [SENTENCEPIECE_FILE],
            "--out",
            "would be read in place of this WordPiece vocabulary",
        )
    if kind not in KINDS:
        raise UserError(f"--kind={kind!r} is unknown; use one of {KINDS}")
    if model_type not in MODEL_TYPES:
        raise UserError(f"--model_type={model_type!r} is unknown; use one of {MODEL_TYPES}")
    if sample_bytes <= 0:
        raise UserError(f"--sample_bytes={sample_bytes} must be positive")
    if size <= len(SPECIAL_TOKENS):
        raise UserError(
            f"--size={size} leaves no room beyond the {len(SPECIAL_TOKENS)} special tokens; "
            "pass a few thousand or more (BERT: 30522)"
        )
    if extend:
        if kind != "wordpiece":
            raise UserError("--extend adds to a WordPiece vocabulary; leave --kind=wordpiece")
        base, _ = vocab_extension.base_vocabulary(extend)
        if size <= len(base):
            raise UserError(
                f"--size={size} adds nothing to the {len(base)} tokens of --extend={extend}; "
                f"pass the size after adding, e.g. --size={len(base) + 5000}"
            )


def _check_character_coverage(kind: str, coverage: float | None) -> None:
    if coverage is None:
        return
    if kind != "sentencepiece":
        raise UserError(
            "--character_coverage is SentencePiece's; WordPiece keeps every character of the "
            "sample (pass --kind=sentencepiece, or leave it out)"
        )
    if not 0.98 <= coverage <= 1:  # SentencePiece's trainer refuses less
        raise UserError(
            f"--character_coverage={coverage} must be in [0.98, 1]: the fraction of the "
            f"corpus's characters the vocabulary holds ({DEFAULT_CHARACTER_COVERAGE} by default)"
        )


def check_same_vocabulary(vocab_path) -> None:
    """Every process must tokenize with the same vocabulary (each host may have trained its own
    copy from the same corpus, deterministically); raises UserError if they differ."""
    import numpy as np
    from jax.experimental import multihost_utils  # deferred: only training needs JAX here

    digest = np.frombuffer(hashlib.sha256(epath.Path(vocab_path).read_bytes()).digest(), np.uint8)
    try:
        multihost_utils.assert_equal(digest, "vocabularies differ between processes")
    except AssertionError:
        raise UserError(
            "processes built different vocabularies (different corpus files per host?); "
            "pass the same --config.vocab_dir to every process"
        ) from None
