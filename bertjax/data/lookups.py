"""Token/id lookups of a vocabulary, shared by the two tokenizers
(`tokenizer.WordPieceTokenizer`, `sentencepiece_vocab.SentencePieceTokenizer`), and the special
tokens they look up by name."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
# Ids 0..4 in the vocabularies we train; other vocabularies are looked up by token.
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
# A [BRACKETED] vocabulary entry: [PAD], [CLS], [unused0], ...
SPECIAL_TOKEN_PATTERN = re.compile(r"\[[^\[\]\s]+\]")
# Lone UTF-16 surrogates: a JSON "\ud83d" (an emoji cut in half) decodes to one, which UTF-8, and
# so TensorFlow, cannot hold.
LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def cased_tokens(vocab: Sequence[str], limit: int = 3) -> list[str]:
    """Up to `limit` tokens of `vocab` with upper-case letters, [SPECIAL] tokens aside: none in
    an uncased vocabulary (BERT's uncased, or one of a script without case)."""
    found = (t for t in vocab if t != t.lower() and not SPECIAL_TOKEN_PATTERN.fullmatch(t))
    return list(itertools.islice(found, limit))


def encodable(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD, which the tokenizers delete as google-research/
    bert deletes both (the same length: character offsets still hold)."""
    return LONE_SURROGATES.sub("\ufffd", text)


def text_tensor(texts: Sequence[str]) -> tf.Tensor:
    """[batch] tf.string of `texts`, lone surrogates made encodable (before, a ValueError)."""
    import tensorflow as tf  # deferred: `bertjax export` and `import` read the names above

    return tf.constant([encodable(text) for text in texts], tf.string)


class VocabularyLookups:
    """Token/id lookups shared by the tokenizers. Subclasses set `_vocab` (tokens, index = id),
    `_token_to_id` and `_special_ids` (ascending ids of tokens never masked or sampled)."""

    _vocab: list[str]
    _token_to_id: dict[str, int]
    _special_ids: tuple[int, ...]

    @property
    def vocab(self) -> list[str]:
        """All tokens, index = id (do not modify)."""
        return self._vocab

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def pad_id(self) -> int:
        return self._token_to_id[PAD]

    @property
    def unk_id(self) -> int:
        return self._token_to_id[UNK]

    @property
    def cls_id(self) -> int:
        return self._token_to_id[CLS]

    @property
    def sep_id(self) -> int:
        return self._token_to_id[SEP]

    @property
    def mask_id(self) -> int:
        return self._token_to_id[MASK]

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ascending ids of the special tokens ([PAD], [CLS], [unused0], control pieces, ...)."""
        return self._special_ids

    def token_to_id(self, token: str) -> int:
        """Id of `token`, or of [UNK] when the vocabulary lacks it."""
        return self._token_to_id.get(token, self.unk_id)

    def tokenize_tf(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] tf.string -> [batch, (tokens)] int32 ids; usable in tf.data graphs."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, in one batched call (no [CLS]/[SEP] added)."""
        if not texts:
            return []
        ids = self.tokenize_tf(text_tensor(texts))
        flat = ids.flat_values.numpy().tolist()
        splits = ids.row_splits.numpy().tolist()
        return [flat[begin:end] for begin, end in zip(splits[:-1], splits[1:], strict=True)]
