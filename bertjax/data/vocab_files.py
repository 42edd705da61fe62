"""The files a vocabulary lives in, read and written without TensorFlow: `bertjax export` and
`import`, the checkpoint's copy of the vocabulary and `--config.init_from` need only these, and
importing the tokenizers' modules (`tokenizer`, `sentencepiece_vocab`) loads TensorFlow (~7 s of
a 15 s export on the 2-core dev machine, `python -X importtime`)."""

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from etils import epath

VOCAB_FILE = "vocab.txt"  # a token per line, line = id (WordPiece; SentencePiece writes one too)
META_FILE = "vocab_meta.json"  # how it was made: kind, casing, size, corpus sample
SENTENCEPIECE_FILE = "sentencepiece.model"  # a SentencePiece vocabulary's model


def read_vocab(vocab_path: str | os.PathLike) -> list[str]:
    """Tokens of a ``vocab.txt`` (local or a URI), index = id (trailing newline and CR
    stripped, nothing else; lines end as in a text-mode file: \\n, \\r\\n or \\r)."""
    text = epath.Path(vocab_path).read_bytes().decode("utf-8")
    return [line.rstrip("\n").rstrip("\r") for line in io.StringIO(text, newline=None)]


def write_vocab(tokens: Sequence[str], meta: dict, out_dir: str | os.PathLike) -> Path:
    """Writes ``vocab.txt`` (a token per line, line = id) and ``vocab_meta.json`` to `out_dir`
    (created); returns the path of ``vocab.txt``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path = out_dir / VOCAB_FILE
    vocab_path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return vocab_path
