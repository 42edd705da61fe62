"""`bertjax fill-mask`: a checkpoint's top-k answers for text with [MASK] tokens, the quick look
that tells whether a model learned words or only token frequencies."""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from bertjax import checkpointing, paths
from bertjax.convert import model_dir
from bertjax.data import lookups, vocab, vocab_files
from bertjax.errors import UserError

MASK_TEXT = lookups.MASK


@dataclasses.dataclass(frozen=True)
class Answer:
    token: str
    probability: float


def encode_with_masks(tok, text: str) -> list[int]:
    """[CLS] text [SEP] as ids, each literal "[MASK]" in `text` becoming the [MASK] id (the
    tokenizer itself would split it into "[", "mask", "]")."""
    pieces = text.split(MASK_TEXT)
    if len(pieces) < 2:
        raise UserError(f"{text!r} holds no {MASK_TEXT}; write {MASK_TEXT} where a word is missing")
    ids = [tok.cls_id]
    for index, piece_ids in enumerate(tok.encode(pieces)):
        if index:
            ids.append(tok.mask_id)
        ids.extend(piece_ids)
    return [*ids, tok.sep_id]


def fill_mask(
    workdir: str | os.PathLike, texts: list[str], *, step: int | None = None, top_k: int = 5
) -> list[list[list[Answer]]]:
    """For each text, for each [MASK] in it (left to right), the `top_k` most probable tokens
    of `workdir`'s checkpoint (default: the latest; local or gs://) with their probabilities.
    `texts`: a list of texts (a str alone is refused: its characters were read as texts)."""
    if top_k < 1:
        raise UserError(f"top_k={top_k} must be >= 1")
    if isinstance(texts, str) or not texts:
        raise UserError(f"texts={texts!r} must be a non-empty list of texts; pass [text]")
    workdir = paths.as_path(workdir)
    step, metadata = checkpointing.open_workdir(workdir, step)
    vocab_path = workdir / vocab_files.VOCAB_FILE
    if not vocab_path.is_file():
        raise UserError(f"{workdir} has no {vocab_files.VOCAB_FILE}; pass a training workdir")
    model_dir.warn_if_untrained(workdir, metadata, ("cls.predictions.",), "its answers")
    tok = vocab.load_tokenizer(vocab_path, model_dir.lowercase(metadata))
    rows = [encode_with_masks(tok, text) for text in texts]
    limit = model_dir.model_config(metadata).max_position_embeddings
    if max(map(len, rows)) > limit:
        raise UserError(f"a text is longer than the model's {limit} positions; shorten it")
    length = max(map(len, rows))
    ids = np.zeros((len(rows), length), np.int32)
    mask = np.zeros_like(ids)
    for row, row_ids in enumerate(rows):
        ids[row, : len(row_ids)] = row_ids
        mask[row, : len(row_ids)] = 1
    model = model_dir.load_model(workdir, step)
    logits = model.mlm_logits_all(ids, np.zeros_like(ids), mask)
    probabilities = np.asarray(jax.nn.softmax(logits, axis=-1))
    answers = []
    for row, row_ids in enumerate(rows):
        per_mask = []
        for position in np.flatnonzero(np.asarray(row_ids) == tok.mask_id):
            ranked = probabilities[row, position]
            best = np.argsort(-ranked)[:top_k]
            per_mask.append([Answer(tok.vocab[i], float(ranked[i])) for i in best])
        answers.append(per_mask)
    return answers


def format_answers(texts: list[str], answers: list[list[list[Answer]]]) -> list[str]:
    """One block per text: the text, then one line per [MASK] with its ranked answers."""
    lines = []
    for text, per_mask in zip(texts, answers, strict=True):
        lines.append(text)
        for index, ranked in enumerate(per_mask):
            shown = "  ".join(f"{a.token} ({a.probability:.3f})" for a in ranked)
            lines.append(f"  [MASK] {index + 1}: {shown}")
    return lines
