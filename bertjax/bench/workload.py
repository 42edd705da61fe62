"""What every benchmark measures on: BERT's vocabulary and positions, the package's model sizes,
the random-token batch, and the host's peak memory.

Only the standard library and numpy at module level: the Hugging Face peer scripts import this
module in their own virtual environment (benchmarks/peers/), without JAX, TensorFlow or
ml_collections.
"""

import math
import resource
from pathlib import Path

import numpy as np

VOCAB_SIZE = 30522  # BERT's uncased WordPiece vocabulary
MAX_POSITION = 512


def model_sizes() -> tuple[str, ...]:
    """Names of the package's model sizes (tiny ... large), smallest first."""
    # bertjax.config.MODEL_SIZES, from the module that defines it: bertjax.config imports JAX
    # and TensorFlow, and `bertjax bench --help` lists the sizes.
    from bertjax.models.sizes import MODEL_SIZES

    return tuple(MODEL_SIZES)


def model_dims(model: str) -> dict[str, int]:
    """num_hidden_layers, hidden_size, num_attention_heads, intermediate_size of a model size."""
    from bertjax.config import defaults, set_model_size  # deferred: imports JAX and TF

    config = set_model_size(defaults(), model)
    names = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
    return {name: int(config[name]) for name in names}


def predictions_per_seq(seq_len: int) -> int:
    """Masked positions per row: 15% of the length rounded up (20 at 128, 77 at 512; BERT's
    phase 2 data had 80)."""
    return math.ceil(0.15 * seq_len)


def random_token_batch(batch_size: int, seq_len: int, predictions: int, vocab: int) -> dict:
    """Full-length rows of random ids with `predictions` sorted masked positions each.

    Shared by benchmarks/parallel_overhead.py and the peer scripts, which build their Hugging
    Face inputs from it.
    """
    rng = np.random.default_rng(0)
    positions = np.sort(
        np.stack([rng.choice(np.arange(1, seq_len), predictions, replace=False)
                  for _ in range(batch_size)]), axis=1
    ).astype(np.int32)  # fmt: skip
    return {
        "input_ids": rng.integers(5, vocab, size=(batch_size, seq_len)).astype(np.int32),
        "input_mask": np.ones((batch_size, seq_len), np.int32),
        "segment_ids": (np.arange(seq_len)[None, :] >= seq_len // 2)
        .repeat(batch_size, 0)
        .astype(np.int32),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(5, vocab, size=(batch_size, predictions)).astype(np.int32),
        "masked_lm_weights": np.ones((batch_size, predictions), np.float32),
        "next_sentence_labels": rng.integers(0, 2, size=batch_size).astype(np.int32),
    }


def host_peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB: Linux's VmHWM, which starts afresh at exec
    (ru_maxrss would include the forking parent's memory); ru_maxrss (KiB) elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
