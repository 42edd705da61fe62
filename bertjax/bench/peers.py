"""`bertjax bench --peers`: the Hugging Face peers, run in their own pinned virtual environment
(benchmarks/peers/env.py) on the same config, batch and random tokens as bertjax, and their lines
of the report. See docs/performance.md.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

from bertjax.bench.workload import MAX_POSITION, VOCAB_SIZE, model_dims, predictions_per_seq
from bertjax.errors import UserError

PEERS = {"hf_flax": "benchmarks.peers.hf_flax_step", "hf_torch": "benchmarks.peers.hf_torch_step"}
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_peers(model: str, seq_len: int, batch_size: int, steps: int, warmup_steps: int,
              venv: str | Path | None = None) -> list[dict]:  # fmt: skip
    """Runs each Hugging Face peer script in the peer venv (created on first use); returns their
    JSON results (seconds_per_step, compile_seconds, host_peak_rss_mib, ...) with `peer` set."""
    if not (REPO_ROOT / "benchmarks" / "peers").is_dir():
        raise UserError("--peers needs a source checkout (benchmarks/peers/); run from the repo")
    venv = Path(venv or REPO_ROOT / ".venv-peers").absolute()
    command = [sys.executable, "-m", "benchmarks.peers.env", f"--venv={venv}"]
    env = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    if env.returncode:
        raise UserError(f"creating the peer venv failed; run `{shlex.join(command)}` to see why")
    python = env.stdout.strip().splitlines()[-1]
    flags = [f"--{name}={value}" for name, value in model_dims(model).items()]
    flags += [f"--vocab_size={VOCAB_SIZE}", f"--max_position_embeddings={MAX_POSITION}"]
    flags += [f"--seq_len={seq_len}", f"--batch_size={batch_size}", f"--steps={steps}"]
    flags += [f"--warmup_steps={warmup_steps}", f"--predictions={predictions_per_seq(seq_len)}"]
    results = []
    for name, module in PEERS.items():
        command = [python, "-m", module, *flags]
        print(f"running peer {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            detail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"peer {name} failed ({detail}); run `{shlex.join(command)}`")
        results.append({"peer": name, **json.loads(lines[-1])})
    return results


def peer_summary(peer: dict, tokens_per_step: int, flops_per_token: float, peak: float,
                 bertjax_tokens_per_second: float) -> dict:  # fmt: skip
    """Tokens/s (batch x seq_len, as for bertjax), MFU with the peer's FLOPs per token, and the
    ratio bertjax / peer."""
    tokens_per_second = tokens_per_step / peer["seconds_per_step"]
    return {
        **peer,
        "tokens_per_second": tokens_per_second,
        "mfu": tokens_per_second * flops_per_token / peak,
        "ratio": bertjax_tokens_per_second / tokens_per_second,
    }


def report_lines(r: dict) -> list[str]:
    """The peers' table and their machine-readable `peer=...` lines."""
    lines = [
        "",
        "peers: same config, batch and random tokens, fp32, dropout on, AdamW; tokens/s counts "
        "batch x seq_len as for bertjax;",
        f"  their MFU uses f_pred = 1 (HF projects every position onto the vocabulary): "
        f"{r['peer_flops_per_token']:.4g} FLOPs/token; ratio = bertjax tokens/s / peer's",
    ]
    for p in r["peers"]:
        if "compile_seconds" in p:
            setup = f"compile {p['compile_seconds']:.2f} s, XLA {p['xla_total_mib']:.1f} MiB/device"
        else:
            setup = f"first step {p['first_step_seconds']:.2f} s (eager)"
        lines.append(
            f"  {p['peer']:<9} {setup}, step {1e3 * p['seconds_per_step']:.2f} ms, host peak RSS "
            f"{p['host_peak_rss_mib']:.0f} MiB, {p['runtime']}"
        )
    return lines + [
        f"peer={p['peer']} tokens_per_second={p['tokens_per_second']:.2f} mfu={p['mfu']:.6f} "
        f"ratio={p['ratio']:.4f}"
        for p in r["peers"]
    ]
