"""Document texts -> sentences -> token ids: the tokenized form instances are built from."""

from collections.abc import Iterable

from bertjax.data import sentences, word_segmenter
from bertjax.data.tokenizer import MAX_CHARS_PER_WORD

ENCODE_BATCH_SIZE = 1024  # sentences per tokenizer call: amortises the op dispatch
# Building data warns from this share of [UNK] tokens on. A corpus with the vocabulary trained
# on it has little (the embedded English and Chinese corpora: 0.000% and 0.177%, the Chinese
# characters seen fewer than 3 times); Thai clauses of 6 sentences without spaces (words past
# tokenizer.MAX_CHARS_PER_WORD): 9%; Greek or Thai text with an English vocabulary: most.
UNKNOWN_WARNING_SHARE = 0.01


def count_tokens(documents: list[list[list[int]]], unk_id: int) -> tuple[int, int]:
    """(tokens, [UNK] tokens) of tokenized documents."""
    tokens = sum(len(s) for doc in documents for s in doc)
    return tokens, sum(s.count(unk_id) for doc in documents for s in doc)


def unknown_tokens_warning(
    num_tokens: int, num_unknown: int, kind: str, tokens: str = "the corpus's tokens"
) -> str | None:
    """A one-line warning when [UNK] is UNKNOWN_WARNING_SHARE or more of the tokens, else None;
    its causes are those of the vocabulary `kind` ("wordpiece" or "sentencepiece"); `tokens`
    names what was counted."""
    share = num_unknown / max(num_tokens, 1)
    if share < UNKNOWN_WARNING_SHARE:
        return None
    if kind == "sentencepiece":  # no word limit; --extend is WordPiece only
        return (
            f"{share:.1%} of {tokens} are [UNK]: the SentencePiece vocabulary lacks "
            "its characters (one trained on other text? train one on this corpus: "
            "`bertjax vocab --kind=sentencepiece`)"
        )
    return (
        f"{share:.1%} of {tokens} are [UNK]: the vocabulary lacks its characters (one "
        "trained on other text? train one on this corpus, or add its tokens to a model's: "
        "`bertjax vocab --extend=MODEL_DIR`) or its words run past "
        f"{MAX_CHARS_PER_WORD} characters (text without spaces between words, as Thai: "
        "SentencePiece has no such limit, `bertjax vocab --kind=sentencepiece`)"
    )


def tokenize_documents(
    texts: Iterable[str],
    tokenizer,
    *,
    sentence_lengths: list[list[int]] | None = None,
    segmenter: str = "",
) -> tuple[list[list[list[int]]], int]:
    """Splits each text into sentences and tokenizes them in batches across documents.

    `tokenizer` is a `tokenizer.WordPieceTokenizer` or `sentencepiece_vocab.SentencePieceTokenizer`
    (anything with ``encode(list of str) -> list of id lists``). Returns (documents -> non-empty
    sentences -> ids, without empty documents; number of sentences before tokenization).
    `sentence_lengths`, if given, receives the character lengths of each text's sentences, one
    list per text (empty documents included). With a word `segmenter` ("rjieba", "fugashi"), tokens
    it puts inside a word carry `word_segmenter.INSIDE_WORD` in their id, which instance
    creation (`pretraining_examples`, `packing`) turns into the ``word_starts`` feature.
    """
    doc_sentences = [sentences.split_sentences(text) for text in texts]
    if sentence_lengths is not None:
        sentence_lengths.extend([len(s) for s in doc] for doc in doc_sentences)
    flat = [sentence for doc in doc_sentences for sentence in doc]
    ids: list[list[int]] = []
    for begin in range(0, len(flat), ENCODE_BATCH_SIZE):
        batch = flat[begin : begin + ENCODE_BATCH_SIZE]
        ids.extend(word_segmenter.encode(tokenizer, batch, segmenter))
    documents = []
    cursor = 0
    for doc in doc_sentences:
        tokenized = [s for s in ids[cursor : cursor + len(doc)] if s]
        cursor += len(doc)
        if tokenized:
            documents.append(tokenized)
    return documents, len(flat)
