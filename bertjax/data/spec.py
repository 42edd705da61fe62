"""`DataSpec`: where the training text comes from and how it becomes instances (config fields).

Which instance source a run reads follows from it: ``prepared_dir`` (shards of `bertjax
prepare`), ``streaming`` (raw text read per process), else the corpus built in memory.
"""

import dataclasses

from bertjax.data import corpus, text_encodings, word_segmenter
from bertjax.specs import ConfigSpec, require

MIN_STREAM_CHUNK_DOCUMENTS = 2  # NSP pairs need two documents
# The shortest row of each layout: [CLS] A [SEP] B [SEP] (sentence pairs), [CLS] tokens [SEP]
# (packed MLM rows).
MIN_PAIR_LENGTH = 5
MIN_PACKED_LENGTH = 3


def require_row_length(max_seq_length: int, packing: bool) -> None:
    """UserError unless a row of `max_seq_length` tokens holds the layout's special tokens
    and one token per segment."""
    minimum = MIN_PACKED_LENGTH if packing else MIN_PAIR_LENGTH
    row = "[CLS] tokens [SEP]" if packing else "[CLS] A [SEP] B [SEP]"
    require(
        max_seq_length >= minimum,
        f"max_seq_length={max_seq_length} cannot hold {row}; set --config.max_seq_length to "
        f"at least {minimum} (BERT uses 128 or 512)",
    )


def min_documents(packing: bool) -> int:
    """Documents a set of rows needs: packed rows 1, NSP pairs 2 (a random B comes from
    another document)."""
    return 1 if packing else 2


@dataclasses.dataclass(frozen=True)
class DataSpec(ConfigSpec):
    """Corpus, vocabulary, instance and held-out settings of a run."""

    # comma-separated files/globs: JSON Lines, text, CSV/TSV (each maybe .gz/.zst/.xz/.bz2),
    # Parquet, Arrow; or tfds:NAME
    corpus: str = corpus.SAMPLE_CORPUS
    text_field: str = "text"  # JSON field, table column (CSV, Parquet) or TFDS feature
    text_format: str = "sentences"  # .txt: "sentences", "lines" (google format) or "paragraphs"
    # the text files' encoding, a Python codec: gb18030 (Chinese GBK, GB2312), big5, shift_jis,
    # cp1252, ...; "" = UTF-8 (UTF-16/32 by their byte-order mark), other files skipped
    text_encoding: str = ""
    vocab_dir: str = ""  # directory with vocab.txt; "" = train one from the corpus (cached)
    vocab_size: int = 30522  # target size when a vocabulary is trained
    lowercase: bool = True  # uncased vocabulary and tokenization
    cache_dir: str = ""  # where trained vocabularies are cached; "" = ~/.cache/bertjax
    max_seq_length: int = 128  # tokens per example, [CLS] and [SEP]s included
    short_seq_prob: float = 0.1  # probability of a shorter random target length
    dupe_factor: int = 5  # passes over the corpus, each with a fresh pairing of sentences
    seed: int = 0  # seeds data order, masks, pairing, parameter init and dropout
    packing: bool = False  # MLM only: documents packed into full rows, no NSP (model must mask)
    # "rjieba" (Chinese) or "fugashi" (Japanese): words found by a segmenter travel with the
    # tokens (feature word_starts), so whole_word/span masking masks them whole; "" = the
    # vocabulary's word starts
    word_segmenter: str = ""
    prepared_dir: str = ""  # output of `bertjax prepare`: stream its shards instead of corpus
    # True: each process reads only its own files of `corpus`, tokenizes, pairs and masks on the
    # fly; no in-memory build, no prepare step; for corpora too big for memory
    streaming: bool = False
    stream_chunk_documents: int = 2048  # streaming: documents tokenized and paired together
    # Documents of `corpus` held out from training (chosen by a hash of their text), or
    # separate files in `eval_corpus` (then nothing is held out of `corpus`).
    eval_holdout_fraction: float = 0.0
    eval_corpus: str = ""
    eval_seed: int = 12345  # fixes the evaluation masks and sentence pairs

    def __post_init__(self):
        require(
            self.text_format in corpus.TEXT_FORMATS,
            f"text_format={self.text_format!r} is unknown; use one of {corpus.TEXT_FORMATS}",
        )
        text_encodings.check_encoding_name(self.text_encoding, "--config.text_encoding")
        require(
            self.vocab_size > 5 or bool(self.vocab_dir),
            f"vocab_size={self.vocab_size} is too small",
        )
        require_row_length(self.max_seq_length, self.packing)
        require(
            0 <= self.short_seq_prob <= 1, f"short_seq_prob={self.short_seq_prob} must be in [0, 1]"
        )
        require(self.dupe_factor >= 1, f"dupe_factor={self.dupe_factor} must be >= 1")
        word_segmenter.check_segmenter(self.word_segmenter)
        fraction = self.eval_holdout_fraction
        require(0 <= fraction < 1, f"eval_holdout_fraction={fraction} must be in [0, 1), e.g. 0.01")
        if self.streaming:
            require(
                not self.prepared_dir,
                "streaming=True and prepared_dir are two data sources; set one of them "
                "(--config.streaming=False to train from prepared shards)",
            )
            chunk = self.stream_chunk_documents
            require(
                chunk >= MIN_STREAM_CHUNK_DOCUMENTS,
                f"stream_chunk_documents={chunk} must be >= 2 (NSP pairs need two)",
            )

    @property
    def has_eval_data(self) -> bool:
        """Whether held-out documents exist: a separate eval corpus or a held-out fraction."""
        return bool(self.eval_corpus) or self.eval_holdout_fraction > 0
