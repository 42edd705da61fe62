"""WordPiece: training a vocabulary, and the tokenizer that reads one (on `lookups`, as
`sentencepiece_vocab.SentencePieceTokenizer`). `vocab` trains, caches and loads either kind.

Training uses the Hugging Face ``tokenizers`` WordPiece trainer. Tokenization is TensorFlow ops
(regex normalisation, then ``tensorflow_text.WordpieceTokenizer``), so the same op runs eagerly and
inside tf.data graphs, and gives the ids Hugging Face's ``BertTokenizerFast`` gives for the same
``vocab.txt``. Any BERT ``vocab.txt`` (one token per line, id = line number) works, e.g.
bert-base-uncased.
"""

import collections
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from absl import logging
from etils import epath

from bertjax.data import basic_split, lookups, uncased_marks
from bertjax.data.lookups import SPECIAL_TOKEN_PATTERN, SPECIAL_TOKENS, UNK, VocabularyLookups
from bertjax.data.vocab_files import read_vocab, write_vocab
from bertjax.data.word_segmenter import CJK_PATTERN, CJK_RANGES, KANA_RANGES
from bertjax.errors import UserError

# Bump when training settings change, so cached vocabularies from older code are not reused.
# 2: the alphabet keeps every frequent character (1: the 1,000 most frequent), which changes
# the vocabulary of corpora with more than 1,000 distinct characters; 3: no "##" forms of CJK
# ideographs (the tokenizer never produces them).
VOCAB_FORMAT_VERSION = 3
# Characters that become single-character tokens (the trainer's "alphabet"; a word holding a
# character outside it is [UNK]): at least the LIMIT_ALPHABET most frequent (the trainer's
# default: all of them for English text), and every character seen MIN_CHARACTER_COUNT times and
# at least once per 1 / MIN_CHARACTER_SHARE characters of the sample, up to half the
# vocabulary. Chinese text needs thousands (docs/data.md, "Chinese"): ../shared/data/zh has
# 7,799 distinct characters, 1,000 of them leave ~10% of held-out characters [UNK]. The share
# keeps a big English sample's stray ideographs and emoji from crowding out its wordpieces.
LIMIT_ALPHABET = 1000
MIN_CHARACTER_COUNT = 3
MIN_CHARACTER_SHARE = 5e-7  # one in 2 million: 500 occurrences in a 1 GB sample


# Hugging Face's BertNormalizer and BertPreTokenizer, as RE2 patterns (tf.strings.regex_replace).
# tensorflow-text's own BertTokenizer differs from them: it applies NFKC case folding ("³" -> "3"),
# keeps control characters (so "a\x91b" splits in two instead of becoming "ab") and splits on
# ASCII whitespace only. These patterns make the ids identical to BertTokenizerFast's.
# Removed: control (Cc but tab, newline, CR), format (Cf) and private-use (Co) characters, U+FFFD.
_REMOVED_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\p{Cf}\p{Co}\x{fffd}]"
# Unicode White_Space, less what _REMOVED_CHARS takes first (VT, FF, NEL): mapped to a space.
_WHITESPACE_CHARS = (
    r"[\t\n\r\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
# CJK ideographs become words of their own (`word_segmenter.CJK_RANGES`).
_CJK_CHARS = "[" + "".join(rf"\x{{{low:x}}}-\x{{{high:x}}}" for low, high in CJK_RANGES) + "]"
# ASCII punctuation (which includes symbols such as $ + < = > ^ ` | ~) and Unicode P*.
_PUNCTUATION_CHARS = r"[!-/:-@\[-\x60{-~\p{P}]"
# Words whose first token `encode_with_char_starts` places in the text (for `word_segmenter`):
# one CJK ideograph, or kana only (`word_segmenter.KANA_RANGES`).
_KANA_CLASS = "".join(rf"\x{{{low:x}}}-\x{{{high:x}}}" for low, high in KANA_RANGES)
_PLACED_WORD = f"{_CJK_CHARS}|[{_KANA_CLASS}]+"
KANA_RUN = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in KANA_RANGES) + "]+")
# Hugging Face's WordPiece turns a longer word into [UNK] (counted in characters, not bytes).
MAX_CHARS_PER_WORD = 100


def character_counts(texts: Iterable[str], lowercase: bool) -> collections.Counter[str]:
    """How often each character occurs inside the words of `texts`, normalised as the
    trainer normalises them (every character but the spaces between words)."""
    from tokenizers.normalizers import BertNormalizer

    normalizer = BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(normalizer.normalize_str(text))
    del counts[" "]
    return counts


def alphabet(counts: collections.Counter[str], vocab_size: int) -> list[str]:
    """The characters that get tokens of their own, most frequent first (ties by character):
    the LIMIT_ALPHABET most frequent, and every one seen at least MIN_CHARACTER_COUNT times and
    MIN_CHARACTER_SHARE of all characters, up to vocab_size // 2 of them."""
    ranked = sorted(counts, key=lambda char: (-counts[char], char))
    min_count = max(MIN_CHARACTER_COUNT, MIN_CHARACTER_SHARE * counts.total())
    frequent = sum(1 for char in ranked if counts[char] >= min_count)
    return ranked[: max(LIMIT_ALPHABET, min(frequent, vocab_size // 2))]


def _continuation_tokens(characters: Iterable[str]) -> list[str]:
    """Sorted ``##c`` for the characters c of `characters` that can occur inside a word.

    The Hugging Face trainer creates these tokens in hash-map order, which makes the trained
    vocabulary differ from run to run (huggingface/tokenizers#1794). Passing them in up front
    fixes their ids, and with them the whole vocabulary: every host of a multi-host run, and
    every rerun, gets the same token ids.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    # A character the normaliser pads with spaces (CJK ideographs) or the pre-tokenizer splits
    # off (whitespace, punctuation) never continues a word: "##中" could never be produced (a
    # Chinese vocabulary would hold thousands of such dead entries). Asking both keeps us in
    # step with their rules.
    normalizer = BertNormalizer(handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre_tokenizer = BertPreTokenizer()

    def continues_words(char: str) -> bool:
        return len(pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(f"a{char}a"))) == 1

    return ["##" + char for char in sorted(filter(continues_words, characters))]


def train_wordpiece_vocab(
    texts: Iterable[str],
    vocab_size: int,
    lowercase: bool,
    out_dir: str | os.PathLike,
    *,
    fingerprint: str = "",
    casing_from: str = "",
) -> Path:
    """Trains a BERT WordPiece vocabulary on `texts` and writes it to `out_dir`.

    Deterministic: the same texts and settings give the same vocabulary on every machine.
    `texts` is read twice; an iterator is first materialised as a list.
    Writes ``vocab.txt`` (one token per line; [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0..4) and
    ``vocab_meta.json`` (sizes, casing, special ids, the corpus `fingerprint`).
    Returns the path of ``vocab.txt``. `casing_from`: `uncased_marks.stripped_marks_warning`'s.
    """
    # Imported here: only vocabulary training needs the Hugging Face library.
    from tokenizers import BertWordPieceTokenizer

    if vocab_size <= len(SPECIAL_TOKENS):
        raise UserError(
            f"vocab_size={vocab_size} leaves no room beyond the {len(SPECIAL_TOKENS)} special "
            "tokens; set --config.vocab_size to a few thousand or more"
        )
    texts = texts if isinstance(texts, Sequence) else list(texts)
    counts = character_counts(texts, lowercase)
    if lowercase and (warning := uncased_marks.stripped_marks_warning(texts, counts, casing_from)):
        logging.warning("%s", warning)
    characters = alphabet(counts, vocab_size)
    continuation_tokens = _continuation_tokens(characters)
    trainer = BertWordPieceTokenizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    # The alphabet given whole (initial_alphabet, and a limit of its size): the trainer's own
    # cut at limit_alphabet breaks ties between equally frequent characters at random.
    trainer.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        limit_alphabet=len(characters),
        initial_alphabet=characters,
        special_tokens=[*SPECIAL_TOKENS, *continuation_tokens],
        show_progress=False,
    )
    token_to_id = trainer.get_vocab()
    vocab = sorted(token_to_id, key=token_to_id.__getitem__)
    if len(vocab) <= len(SPECIAL_TOKENS) + len(continuation_tokens):
        raise UserError("the corpus has no text to train a vocabulary on; check --config.corpus")
    meta = {
        "vocab_size": len(vocab),
        "requested_vocab_size": vocab_size,
        "lowercase": lowercase,
        "special_token_ids": {token: token_to_id[token] for token in SPECIAL_TOKENS},
        "corpus_fingerprint": fingerprint,
        "format_version": VOCAB_FORMAT_VERSION,
        "alphabet_size": len(characters),
    }
    return write_vocab(vocab, meta, out_dir)


class WordPieceTokenizer(VocabularyLookups):
    """BERT tokenization (basic split + WordPiece) over a ``vocab.txt``, via tensorflow-text.

    Special token ids are looked up by name, never assumed to sit at fixed positions.
    """

    kind = "wordpiece"  # as `bertjax vocab --kind`

    def __init__(self, vocab_path: str | os.PathLike, lowercase: bool):
        self.vocab_path = epath.Path(vocab_path)
        self.lowercase = lowercase
        if not self.vocab_path.is_file():
            raise UserError(
                f"vocabulary {str(self.vocab_path)!r} does not exist; "
                "set --config.vocab_dir to a directory holding vocab.txt"
            )
        self._vocab = read_vocab(self.vocab_path)
        # A token listed twice is its last line's id, as google-research/bert's `load_vocab` and
        # Hugging Face's BertTokenizer read it.
        self._token_to_id = {token: token_id for token_id, token in enumerate(self._vocab)}
        missing = [token for token in SPECIAL_TOKENS if token not in self._token_to_id]
        if missing:
            raise UserError(
                f"vocabulary {str(self.vocab_path)!r} lacks special tokens {missing}; "
                f"use a BERT vocab.txt that holds all of {list(SPECIAL_TOKENS)}"
            )
        self._special_ids = tuple(
            token_id
            for token_id, token in enumerate(self._vocab)
            if SPECIAL_TOKEN_PATTERN.fullmatch(token) and self._token_to_id[token] == token_id
        )
        self._special_id_set = frozenset(self._special_ids)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(list(self._token_to_id), tf.string),
                values=tf.constant(list(self._token_to_id.values()), tf.int64),
            ),
            default_value=self._token_to_id[UNK],
        )
        # Bytes bound only; the character bound is applied in `tokenize_tf` (4 bytes a char).
        self._wordpiece = tf_text.WordpieceTokenizer(
            table,
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
            token_out_type=tf.int32,
            unknown_token=UNK,
        )

    def _words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] tf.string -> [batch, (words)]: normalised, split, over-long words as [UNK]."""
        words = split_words_tf(normalize_tf(texts, self.lowercase))
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        return words.with_flat_values(tf.where(too_long, UNK, words.flat_values))

    def tokenize_tf(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] tf.string -> [batch, (tokens)] int32 wordpiece ids; usable in tf.data graphs."""
        return self._wordpiece.tokenize(self._words(texts)).merge_dims(-2, -1)

    def encode_with_char_starts(
        self, texts: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of each text, and for each token that starts a word of one CJK ideograph or
        of kana only (a whole word in BERT's split, `_PLACED_WORD`) the index in its text of the
        word's first character, -1 for every other token."""
        if not texts:
            return [], []
        words = self._words(lookups.text_tensor(texts))
        pieces = self._wordpiece.tokenize(words)  # [batch, (words), (pieces)]
        word_is_placed = tf.strings.regex_full_match(words.flat_values, _PLACED_WORD).numpy()
        pieces_per_word = pieces.values.row_lengths().numpy()
        token_is_placed = np.zeros(pieces_per_word.sum(), bool)
        token_is_placed[(np.cumsum(pieces_per_word) - pieces_per_word)[word_is_placed]] = True
        ids = pieces.merge_dims(-2, -1)
        flat, splits = ids.flat_values.numpy().tolist(), ids.row_splits.numpy().tolist()
        all_ids, all_starts = [], []
        for text, begin, end in zip(texts, splits[:-1], splits[1:], strict=True):
            starts = [-1] * (end - begin)
            placed_tokens = np.flatnonzero(token_is_placed[begin:end]).tolist()
            positions = placed_word_starts(text)
            if len(positions) == len(placed_tokens):  # always, unless normalisation surprises us
                for token, position in zip(placed_tokens, positions, strict=True):
                    starts[token] = position
            all_ids.append(flat[begin:end])
            all_starts.append(starts)
        return all_ids, all_starts

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined wordpieces with ``##`` continuations glued on; special tokens dropped."""
        words: list[str] = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id in self._special_id_set:
                continue
            token = self._vocab[token_id]
            if token.startswith("##") and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)


def placed_word_starts(text: str) -> list[int]:
    """Where in `text` each word of one CJK ideograph or of kana only begins, in order: every
    ideograph, and every run of kana with a word boundary (`basic_split.splits_words`, or the
    text's end) on both sides and at most MAX_CHARS_PER_WORD long (a longer word is [UNK])."""
    positions = [m.start() for m in CJK_PATTERN.finditer(text)]
    for run in KANA_RUN.finditer(text):
        begin, end = run.span()
        if (
            end - begin <= MAX_CHARS_PER_WORD
            and (begin == 0 or basic_split.splits_words(text[begin - 1]))
            and (end == len(text) or basic_split.splits_words(text[end]))
        ):
            positions.append(begin)
    return sorted(positions)


def normalize_tf(texts: tf.Tensor, lowercase: bool) -> tf.Tensor:
    """BERT text normalisation of a tf.string tensor (any shape), as Hugging Face's BertNormalizer.

    Drops control/format characters, maps whitespace to spaces, puts spaces around CJK
    ideographs; with `lowercase`, also strips accents (NFD, drop Mn) and then lowercases.
    """
    texts = tf.strings.regex_replace(texts, _REMOVED_CHARS, "")
    texts = tf.strings.regex_replace(texts, _WHITESPACE_CHARS, " ")
    texts = tf.strings.regex_replace(texts, _CJK_CHARS, r" \0 ")
    if lowercase:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        # tf.strings.lower writes a word-final capital sigma as "ς"; Hugging Face maps each
        # character on its own, always to "σ".
        texts = tf.strings.regex_replace(texts, "\u03a3", "\u03c3")
        texts = tf.strings.lower(texts, encoding="utf-8")
    return texts


def split_words_tf(texts: tf.Tensor) -> tf.RaggedTensor:
    """[batch] normalised tf.string -> [batch, (words)]: split on spaces, punctuation alone."""
    spaced = tf.strings.regex_replace(texts, _PUNCTUATION_CHARS, r" \0 ")
    return tf.strings.split(spaced)
