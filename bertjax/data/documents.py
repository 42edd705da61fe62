"""Document texts -> sentences -> token ids: the tokenized form instances are built from."""

from collections.abc import Iterable

from bertjax.data import sentences, word_segmenter

ENCODE_BATCH_SIZE = 1024  # sentences per tokenizer call: amortises the op dispatch


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
    list per text (empty documents included). With a word `segmenter` ("rjieba"), tokens it
    puts inside a Chinese word carry `word_segmenter.INSIDE_WORD` in their id, which instance
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
