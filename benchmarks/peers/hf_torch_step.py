"""Peer: Hugging Face PyTorch `BertForPreTraining` (torch 2.13 CPU, attn_implementation="sdpa",
eager) with torch.optim.AdamW; prints one JSON line.

Same config, batch, optimizer settings and dropout (train mode) as `bertjax bench`, which starts
it in the peer venv from the repo root:

  .venv-peers/bin/python -m benchmarks.peers.hf_torch_step --hidden_size=256 \
      --num_hidden_layers=4 --num_attention_heads=4 --intermediate_size=1024 \
      --seq_len=128 --batch_size=32 --predictions=20
"""

import argparse
import os
import time

import torch
import transformers

from benchmarks import peers
from bertjax.bench.workload import host_peak_rss_mib


def create_model(args: argparse.Namespace) -> transformers.BertForPreTraining:
    """Randomly initialised BertForPreTraining (float32, SDPA attention) in train mode."""
    torch.manual_seed(0)
    config = transformers.BertConfig(**peers.config_kwargs(args), attn_implementation="sdpa")
    return transformers.BertForPreTraining(config).train()


def create_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """bertjax's AdamW settings; weight decay on matrices only (clipping is in `train_step`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": peers.WEIGHT_DECAY},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=peers.LEARNING_RATE, betas=peers.ADAM_BETAS, eps=peers.ADAM_EPS
    )


def to_torch(batch: dict) -> dict[str, torch.Tensor]:
    """numpy inputs -> int64 tensors (what embeddings and the loss's labels expect)."""
    return {name: torch.from_numpy(value).long() for name, value in batch.items()}


def train_step(
    model: transformers.BertForPreTraining,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
) -> torch.Tensor:
    """One AdamW update on Hugging Face's MLM + NSP loss; returns the loss (detached)."""
    optimizer.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), peers.MAX_GRAD_NORM)
    optimizer.step()
    return loss.detach()


def measure(args: argparse.Namespace) -> dict:
    """Seconds per step after warm-up, the first step's seconds (eager: nothing compiles), peak
    RSS."""
    # Every core, as XLA's CPU backend uses (OMP_NUM_THREADS overrides).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    model = create_model(args)
    optimizer = create_optimizer(model)
    batch = to_torch(peers.make_batch(args))
    start = time.perf_counter()
    train_step(model, optimizer, batch)
    first_step_seconds = time.perf_counter() - start
    losses = []
    seconds_per_step = peers.time_steps(
        lambda: losses.append(train_step(model, optimizer, batch)), args.steps, args.warmup_steps
    )
    return {
        "seconds_per_step": seconds_per_step,
        "first_step_seconds": first_step_seconds,
        "loss": float(losses[-1]),
        "host_peak_rss_mib": host_peak_rss_mib(),
        "runtime": f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {model.config._attn_implementation} attention",
    }


def main(argv: list[str] | None = None) -> None:
    args = peers.peer_parser(__doc__.splitlines()[0]).parse_args(argv)
    peers.print_result(measure(args))


if __name__ == "__main__":
    main()
