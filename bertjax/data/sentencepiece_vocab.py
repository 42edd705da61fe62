"""SentencePiece vocabularies (unigram or BPE) and a tokenizer with `WordPieceTokenizer`'s surface.

Training uses the ``sentencepiece`` library trainer; tokenization uses
``tensorflow_text.SentencepieceTokenizer`` over the same model bytes, so it runs eagerly and
inside tf.data graphs. The special tokens get the ids our WordPiece vocabularies give them:
[PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4. [CLS]/[SEP]/[MASK] are *control* symbols, so
text that spells "[MASK]" is never encoded as the mask token. Casing is part of the model:
uncased models normalise with NFKC + case folding (``nmt_nfkc_cf``), cased ones with NFKC.
"""

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from etils import epath

from bertjax.data import lookups
from bertjax.data.lookups import (
    CLS,
    MASK,
    PAD,
    SEP,
    SPECIAL_TOKEN_PATTERN,
    SPECIAL_TOKENS,
    UNK,
    VocabularyLookups,
)
from bertjax.data.tokenizer import CJK_PATTERN, KANA_RUN
from bertjax.data.vocab_files import META_FILE, SENTENCEPIECE_FILE, VOCAB_FILE
from bertjax.errors import UserError

MODEL_TYPES = ("unigram", "bpe")
# The fraction of the sample's characters (by count) a vocabulary holds; SentencePiece's default
# for languages with large character sets (the rarest 0.05% become [UNK]).
DEFAULT_CHARACTER_COVERAGE = 0.9995
WORD_START = "\u2581"  # "▁": SentencePiece's mark for a piece that starts a word
# Sentences longer than this many bytes are skipped by the trainer (its default is 4192).
_MAX_SENTENCE_BYTES = 16384


def _size_fix(error: str, character_coverage: float) -> str:
    """What to change for SentencePiece's error `error`: its characters must fit (Chinese text
    has thousands: "Vocabulary size is smaller than required_chars. 3000 vs 3905"; the hint
    said "try a smaller --size"). A size too large for the corpus is no error
    (hard_vocab_limit=False)."""
    if needed := re.search(r"required_chars\.\s*\d+\s*vs\s*(\d+)", error):
        return (
            f"the corpus's characters and the special tokens are {needed[1]} pieces the "
            f"vocabulary must hold; use a --size above {needed[1]}, with room for the pieces "
            f"made of them, or a --character_coverage below {character_coverage} (the rarest "
            "characters then become [UNK])"
        )
    return "try another --size"


def train_sentencepiece_vocab(
    sentences: Iterable[str],
    vocab_size: int,
    lowercase: bool,
    out_dir: str | os.PathLike,
    *,
    model_type: str = "unigram",
    seed: int = 0,
    num_threads: int | None = None,
    fingerprint: str = "",
    character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
) -> Path:
    """Trains a SentencePiece model on `sentences` (one string each) and writes it to `out_dir`.

    Writes ``sentencepiece.model``, ``vocab.txt`` (the pieces, index = id, so tools that want
    a vocab.txt find one) and ``vocab_meta.json`` (kind, sizes, casing, special ids).
    `vocab_size` is a soft limit: a small corpus may give fewer pieces. Returns the
    ``vocab.txt`` path.
    """
    import sentencepiece as spm  # only training needs the trainer

    if model_type not in MODEL_TYPES:
        raise UserError(f"model_type={model_type!r} is unknown; use one of {MODEL_TYPES}")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise UserError(f"vocab_size={vocab_size} leaves no room beyond the special tokens")
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise UserError("the corpus sample has no text to train a vocabulary on; check --input")
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece=PAD,
            unk_piece=UNK,
            control_symbols=[CLS, SEP, MASK],
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            character_coverage=character_coverage,
            max_sentence_length=_MAX_SENTENCE_BYTES,
            hard_vocab_limit=False,
            num_threads=num_threads or os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as e:
        fix = _size_fix(str(e), character_coverage)
        raise UserError(f"SentencePiece training failed ({e}); {fix}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SENTENCEPIECE_FILE).write_bytes(model.getvalue())
    tokenizer = SentencePieceTokenizer(out_dir / SENTENCEPIECE_FILE, lowercase)
    (out_dir / VOCAB_FILE).write_text(
        "".join(piece + "\n" for piece in tokenizer.vocab), encoding="utf-8"
    )
    meta = {
        "kind": "sentencepiece",
        "model_type": model_type,
        "vocab_size": tokenizer.vocab_size,
        "requested_vocab_size": vocab_size,
        "character_coverage": character_coverage,
        "lowercase": lowercase,
        "special_token_ids": {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS},
        "corpus_fingerprint": fingerprint,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out_dir / VOCAB_FILE


class SentencePieceTokenizer(VocabularyLookups):
    """SentencePiece tokenization via tensorflow-text, with WordPieceTokenizer's methods.

    Args:
      model_path: a ``sentencepiece.model`` that holds [PAD] [UNK] [CLS] [SEP] [MASK].
      lowercase: recorded for callers; the casing itself lives in the model's normaliser.
    """

    kind = "sentencepiece"  # as `bertjax vocab --kind`

    def __init__(self, model_path: str | os.PathLike, lowercase: bool):
        import sentencepiece as spm

        self.model_path = epath.Path(model_path)
        self.vocab_path = self.model_path.parent / VOCAB_FILE
        self.lowercase = lowercase
        if not self.model_path.is_file():
            raise UserError(
                f"SentencePiece model {str(self.model_path)!r} does not exist; "
                "create one with `bertjax vocab --kind=sentencepiece`"
            )
        proto = self.model_path.read_bytes()
        self._processor = spm.SentencePieceProcessor(model_proto=proto)
        self._vocab = [self._processor.id_to_piece(i) for i in range(len(self._processor))]
        self._token_to_id = {piece: i for i, piece in enumerate(self._vocab)}
        missing = [token for token in SPECIAL_TOKENS if token not in self._token_to_id]
        if missing:
            raise UserError(
                f"SentencePiece model {str(self.model_path)!r} lacks special tokens {missing}; "
                "train it with `bertjax vocab --kind=sentencepiece`"
            )
        self._special_ids = tuple(
            i
            for i, piece in enumerate(self._vocab)
            if SPECIAL_TOKEN_PATTERN.fullmatch(piece)
            or self._processor.is_control(i)
            or self._processor.is_unknown(i)
        )
        self._special_id_set = frozenset(self._special_ids)
        self._tf_tokenizer = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)

    def word_start_table(self) -> np.ndarray:
        """[V] bool: pieces that start a word, for whole-word and span masking: "▁..." (after a
        space), and pieces that begin with a CJK ideograph or kana. Unspaced Chinese and Japanese
        have no "▁" inside a sentence; like BERT's WordPiece, which makes each ideograph (and
        each run of kana) a word, each such piece is then a word (`word_segmenter` joins the
        pieces of one segmenter word)."""
        return np.array(
            [
                piece.startswith(WORD_START)
                or bool(CJK_PATTERN.match(piece) or KANA_RUN.match(piece))
                for piece in self._vocab
            ],
            bool,
        )

    def tokenize_tf(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] tf.string -> [batch, (pieces)] int32 ids; usable in tf.data graphs."""
        return self._tf_tokenizer.tokenize(texts)

    def encode_with_char_starts(
        self, texts: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Piece ids of each text, and for each piece the index in its text of the character it
        starts at (a piece that stands for a space starts at that space)."""
        if not texts:
            return [], []
        texts = [lookups.encodable(text) for text in texts]
        ids, starts, _ = self._tf_tokenizer.tokenize_with_offsets(lookups.text_tensor(texts))
        flat_ids = ids.flat_values.numpy()
        flat_starts = starts.flat_values.numpy()
        splits = ids.row_splits.numpy()
        all_ids, all_starts = [], []
        for text, begin, end in zip(texts, splits[:-1], splits[1:], strict=True):
            # Byte offset -> character index: the last character starting at or before it.
            char_bytes = np.fromiter((len(c.encode("utf-8")) for c in text), np.int64, len(text))
            first_byte = np.cumsum(char_bytes) - char_bytes
            index = np.searchsorted(first_byte, flat_starts[begin:end], side="right") - 1
            all_ids.append(flat_ids[begin:end].tolist())
            all_starts.append(np.maximum(index, 0).tolist())
        return all_ids, all_starts

    def decode(self, ids: Iterable[int]) -> str:
        """The (normalised) text of `ids`; special tokens dropped."""
        kept = [int(i) for i in ids if int(i) not in self._special_id_set]
        return self._processor.decode(kept)
