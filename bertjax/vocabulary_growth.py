"""A run that starts from another model (`--config.init_from=DIR`) with DIR's vocabulary, or
with one that extends it (`bertjax vocab --extend=DIR`: DIR's tokens at their ids, new ones
after them).

DIR's embedding rows belong to its tokens' ids, so any other vocabulary, even of the same size,
would pair them with other tokens: `init_vocabulary` refuses it. An extended vocabulary keeps
those rows and grows every vocabulary axis of the parameters (word embeddings, the masked-LM
bias) by rows that start at the mean of DIR's (`grow_vocabulary_axes`), as Hugging Face's
``resize_token_embeddings`` does without its noise: the new tokens' rows part as soon as they
are seen, in their own contexts.
"""

import numpy as np
from etils import epath

from bertjax.data.vocab_files import SENTENCEPIECE_FILE, VOCAB_FILE, read_vocab
from bertjax.errors import UserError


def init_vocabulary(init_from: str, vocab_dir: str) -> int | None:
    """None when the run's vocabulary (`vocab_dir`) is `init_from`'s; `init_from`'s size when it
    extends it; UserError (what to set) when it is another one. A DIR without a vocab.txt (an
    old workdir) is not compared: the architecture check still compares the sizes."""
    saved, given = epath.Path(init_from), epath.Path(vocab_dir)
    fix = f"set --config.vocab_dir={init_from} (the vocabulary its embeddings were trained with)"
    models = [path / SENTENCEPIECE_FILE for path in (saved, given)]
    if any(model.is_file() for model in models):  # SentencePiece: the same model file or none
        if (
            not all(model.is_file() for model in models)
            or len({m.read_bytes() for m in models}) > 1
        ):
            raise UserError(f"--config.init_from={init_from} has another vocabulary; {fix}")
    fix += f", or one from `bertjax vocab --extend={init_from}`"
    if not (saved / VOCAB_FILE).is_file():
        return None
    base, tokens = read_vocab(saved / VOCAB_FILE), read_vocab(given / VOCAB_FILE)
    if tokens == base:
        return None
    if len(tokens) > len(base) and tokens[: len(base)] == base:
        return len(base)
    pairs = enumerate(zip(base, tokens, strict=False))
    differ = next((i for i, (a, b) in pairs if a != b), min(len(base), len(tokens)))
    raise UserError(
        f"--config.init_from={init_from} has another vocabulary ({len(base)} tokens; "
        f"{vocab_dir}'s {len(tokens)} part from them at id {differ}); {fix}"
    )


def grow_vocabulary_axes(saved: np.ndarray, shape: tuple[int, ...], old_size: int) -> np.ndarray:
    """`saved` grown to `shape` along its axes of length `old_size` that `shape` makes longer,
    by rows equal to the mean of its rows along that axis."""
    if saved.shape == tuple(shape):
        return saved
    grow = [i for i, (a, b) in enumerate(zip(saved.shape, shape, strict=True)) if a != b]
    if any(saved.shape[i] != old_size or shape[i] < old_size for i in grow):
        raise ValueError(f"cannot grow {saved.shape} to {shape} along a vocabulary of {old_size}")
    for axis in grow:
        mean = saved.mean(axis=axis, keepdims=True, dtype=np.float64).astype(saved.dtype)
        extra = np.repeat(mean, shape[axis] - old_size, axis=axis)
        saved = np.concatenate([saved, extra], axis=axis)
    return saved
