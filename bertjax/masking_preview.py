"""What a run's model is asked to predict: the first instances of its first training batch, read
and masked exactly as training reads and masks them (`bertjax show-masking --config=...`), so a
user sees whole-word or span masking on their own text (a Chinese word segmenter's words, a
SentencePiece vocabulary's pieces) before spending a run on it.

Each instance is one line of its tokens, every predicted position written as
``[INPUT:ORIGINAL]`` (what the model sees there : what it must predict; INPUT is [MASK], a random
token or the original kept), then a line of counts.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
from absl import logging

from bertjax.config import validate
from bertjax.errors import UserError

PACKED_NSP_NOTE = "packed rows (no next-sentence pair)"


@dataclasses.dataclass(frozen=True)
class ShownInstance:
    tokens: str  # the row, predicted positions as [INPUT:ORIGINAL]
    counts: str  # how many positions are predicted, and how each was replaced


def show_masking(config: ml_collections.ConfigDict, num_instances: int) -> list[ShownInstance]:
    """The first `num_instances` instances of the run's first training batch (at most its batch
    size), as training builds and masks them (its vocabulary, corpus, masking and seed)."""
    from bertjax.data import pipeline  # deferred: tf.data

    if num_instances < 1:
        raise UserError(f"--num_instances={num_instances} must be >= 1")
    spec = validate(config)
    data = pipeline.build_pretraining_data(spec.data)
    dataset = pipeline.make_dataset(
        data.source, spec.masking, data.tokenizer,
        global_batch_size=spec.loop.batch_size, seed=spec.data.seed,
    )  # fmt: skip
    batch = next(dataset.as_numpy_iterator())
    count = min(num_instances, len(batch["input_ids"]))
    if count < num_instances:
        logging.warning("The first batch holds %d instances (batch_size): showing them all", count)
    return [shown_instance(batch, row, data.tokenizer) for row in range(count)]


def shown_instance(batch: dict[str, np.ndarray], row: int, tokenizer) -> ShownInstance:
    """Row `row` of a masked batch (`pipeline.make_dataset`'s) as text and counts."""
    length = int(batch["input_mask"][row].sum())
    ids = batch["input_ids"][row, :length]
    weights = batch["masked_lm_weights"][row] > 0
    positions = batch["masked_lm_positions"][row][weights]
    originals = dict(
        zip(positions.tolist(), batch["masked_lm_ids"][row][weights].tolist(), strict=True)
    )
    vocab = tokenizer.vocab
    words, kinds = [], {"[MASK]": 0, "random": 0, "kept": 0}
    for position, token_id in enumerate(ids.tolist()):
        if position not in originals:
            words.append(vocab[token_id])
            continue
        original = originals[position]
        kind = ("[MASK]" if token_id == tokenizer.mask_id
                else "kept" if token_id == original else "random")  # fmt: skip
        kinds[kind] += 1
        words.append(f"[{vocab[token_id]}:{vocab[original]}]")
    shares = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    pair = _pair_note(batch, row)
    counts = f"{len(originals)} of {length} tokens predicted ({shares}); {pair}"
    return ShownInstance(" ".join(words), counts)


def _pair_note(batch: dict[str, np.ndarray], row: int) -> str:
    if "next_sentence_weights" in batch and not batch["next_sentence_weights"][row]:
        return PACKED_NSP_NOTE
    return ("segment B follows segment A" if batch["next_sentence_labels"][row] == 0
            else "segment B is a random segment")  # fmt: skip


ELECTRA_NOTE = (
    "ELECTRA: this is the generator's input and task; the discriminator (the model kept) sees the "
    "generator's samples at these positions and tells at every position whether it was replaced."
)


def format_shown(instances: list[ShownInstance], objective: str = "bert") -> list[str]:
    """Lines to print: each instance's tokens and counts, a blank line between instances; for
    an ELECTRA run, what its discriminator sees instead."""
    lines = ["Predicted positions are [INPUT:ORIGINAL]: what the model sees : what it predicts."]
    lines += [ELECTRA_NOTE] if objective == "electra" else []
    for number, instance in enumerate(instances, 1):
        lines += ["", f"instance {number}: {instance.counts}", instance.tokens]
    return lines
