"""Hugging Face peers of `bertjax bench --peers`: what both peer scripts share.

Each peer script runs in the peer virtual environment (env.py), builds the same model config,
batch (bertjax.bench.workload.random_token_batch) and optimizer settings as bertjax, times its
train step and prints one JSON line. Only numpy, the standard library and bertjax.bench.workload
(which imports no more at module level) are imported here.
"""

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from bertjax.bench.workload import random_token_batch

IGNORE_INDEX = -100  # Hugging Face's MLM loss skips labels equal to this
# bertjax's AdamW settings (configs/base.py); the learning rate is held constant.
LEARNING_RATE = 1e-4
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-6
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0


def peer_parser(description: str) -> argparse.ArgumentParser:
    """The flags `bertjax bench` passes to every peer script."""
    parser = argparse.ArgumentParser(description=description)
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--max_position_embeddings", type=int, default=512)
    parser.add_argument("--seq_len", type=int, required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--predictions", type=int, required=True, help="masked positions per row")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup_steps", type=int, default=2)
    return parser


def config_kwargs(args: argparse.Namespace) -> dict:
    """transformers.BertConfig keyword arguments (dropout 0.1 and exact GELU are its defaults)."""
    names = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    names += ("intermediate_size", "max_position_embeddings")
    return {name: getattr(args, name) for name in names}


def hf_inputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """bertjax features -> `BertForPreTraining` inputs [B, L] (next_sentence_label [B]).

    labels hold the masked-LM target ids at the masked positions and IGNORE_INDEX elsewhere, so
    Hugging Face's loss covers the same positions as bertjax's masked_lm_weights.
    """
    positions, weights = batch["masked_lm_positions"], batch["masked_lm_weights"]
    labels = np.full(batch["input_ids"].shape, IGNORE_INDEX, np.int32)
    rows = np.arange(labels.shape[0])[:, None]
    labels[rows, positions] = np.where(weights > 0, batch["masked_lm_ids"], IGNORE_INDEX)
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["input_mask"],
        "token_type_ids": batch["segment_ids"],
        "labels": labels,
        "next_sentence_label": batch["next_sentence_labels"],
    }


def make_batch(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The benchmark batch of bertjax (same seed, same ids), as Hugging Face inputs."""
    return hf_inputs(
        random_token_batch(args.batch_size, args.seq_len, args.predictions, args.vocab_size)
    )


def time_steps(run_step: Callable[[], None], steps: int, warmup_steps: int) -> float:
    """Mean seconds per step of `run_step` (which must wait for its own result) after warm-up."""
    for _ in range(warmup_steps):
        run_step()
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return (time.perf_counter() - start) / steps


def print_result(result: dict) -> None:
    """The one JSON line `bertjax bench` reads (the last line starting with '{')."""
    print(json.dumps(result), flush=True)
