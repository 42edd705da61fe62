"""Held-out MLM accuracy against idle wall-clock time for pretraining recipes on a small CPU.

Every recipe is `configs/cpu_budget.py` plus a few overrides (RECIPES), trained on the same
corpus with the same held-out documents and fixed BERT masks (bertjax.evaluation). Each gets the
same time budget: its idle step rate is measured first (`--probe`: a short real run per recipe,
steps/s over its second half, written to OUT/probe.json), and its run is then
`budget_minutes * 60 * steps/s` steps long, with the learning rate decaying to zero at the end of
that budget. Runs resume when re-invoked. Curves are plotted against `step / (steps/s)`, the idle
time the run needs for that step, so a study run on a shared machine still compares the recipes
at equal idle time (the wall time it really took is kept in each run's metrics.jsonl).

  python -m benchmarks.recipe_study --probe --corpus='../shared/data/pretrain/*.jsonl'
  python -m benchmarks.recipe_study --budget_minutes=10 --corpus='../shared/data/pretrain/*.jsonl'
  python -m benchmarks.recipe_study --report --out=docs/results/recipes
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

CONFIG = "configs/cpu_budget.py"
# The plateau recipes (what bertjax did before), then one lever at a time on the chosen recipe.
# Each recipe names its positions and LayerNorm placement, whatever CONFIG's are.
BERT = dict(layer_norm_placement="post", position_embedding_type="absolute",
            position_embedding_init="normal")  # fmt: skip
RELATIVE = dict(layer_norm_placement="pre", position_embedding_type="relative_key",
                position_embedding_init="local")  # fmt: skip
ROTARY = dict(position_embedding_type="rotary", position_embedding_init="normal")
RECIPES = {
    "bert_nsp_tiny": dict(BERT, model="tiny", packing=False, hidden_dropout_prob=0.1,
                          attention_probs_dropout_prob=0.1, dupe_factor=2, batch_size=32),
    "bert_packed_tiny": dict(BERT, model="tiny"),
    "pre_ln_tiny": dict(BERT, model="tiny", layer_norm_placement="pre",
                        position_embedding_init="sinusoidal"),
    "relative_post_tiny": dict(RELATIVE, model="tiny", layer_norm_placement="post"),
    "relative_pre_tiny": dict(RELATIVE, model="tiny"),
    "rotary_post_tiny": dict(ROTARY, model="tiny", layer_norm_placement="post"),
    "rotary_pre_tiny": dict(ROTARY, model="tiny", layer_norm_placement="pre"),
    "relative_pre_mini": dict(RELATIVE),
    "relative_pre_mini_mask40": dict(RELATIVE, masked_lm_prob=0.4, max_predictions_per_seq=52),
    "relative_pre_mini_mask_only": dict(RELATIVE, mask_token_prob=1.0, random_token_prob=0.0),
    "relative_pre_mini_seq64": dict(RELATIVE, max_seq_length=64, max_predictions_per_seq=10,
                                    batch_size=128),
    "relative_pre_mini_vocab8k": dict(RELATIVE, vocab_size=8000),
    "relative_pre_mini_lr5e-3": dict(RELATIVE, learning_rate=5e-3),
}  # fmt: skip
PROBE_STEPS = 40
SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4)}


def overrides(name: str, corpus: str, steps: int, log_every: int) -> list[str]:
    """`--config.x=y` flags of recipe `name` for a run of `steps` steps."""
    fields = dict(RECIPES[name])
    size = fields.pop("model", "mini")
    layers, hidden, heads = SIZES[size]
    fields.update(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                  intermediate_size=4 * hidden, corpus=corpus, num_train_steps=steps,
                  warmup_steps=max(1, steps // 20), log_every=log_every, progress_bar=False,
                  checkpoint_every=max(log_every, steps // 4), keep_checkpoints=1)  # fmt: skip
    fields.setdefault("eval_every", max(log_every, steps // 8))
    return [f"--config.{key}={value}" for key, value in fields.items()]


def train(name: str, workdir: Path, flags: list[str]) -> None:
    command = [sys.executable, "-m", "bertjax", "train", f"--config={CONFIG}",
               f"--workdir={workdir}", *flags]  # fmt: skip
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def read_metrics(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def probe(names: list[str], corpus: str, root: Path) -> dict[str, float]:
    """Steps/s of each recipe over steps PROBE_STEPS/2..PROBE_STEPS of a short real run."""
    rates = {}
    for name in names:
        workdir = root / "probe" / name
        flags = overrides(name, corpus, PROBE_STEPS, PROBE_STEPS // 4)
        train(name, workdir, [*flags, "--config.eval_every=0"])
        lines = [r for r in read_metrics(workdir) if "loss" in r and r["step"] > PROBE_STEPS // 2]
        rates[name] = len(lines) / sum(1 / r["steps_per_second"] for r in lines)
        print(f"{name}: {rates[name]:.3f} steps/s", flush=True)
    return rates


def curves(root: Path, rates: dict[str, float]) -> dict[str, list[tuple[float, float, int]]]:
    """Per recipe: (idle minutes, held-out MLM accuracy, step) at each evaluation."""
    result = {}
    for name, rate in rates.items():
        evals = [r for r in read_metrics(root / "runs" / name) if "eval_mlm_accuracy" in r]
        result[name] = [(r["step"] / rate / 60, r["eval_mlm_accuracy"], r["step"]) for r in evals]
    return result


def report(root: Path, out: Path, rates: dict[str, float], budget: float) -> None:
    """Markdown table (printed) and OUT/recipes.png of accuracy against idle minutes."""
    out.mkdir(parents=True, exist_ok=True)
    data = curves(root, rates)
    fig, ax = plt.subplots(figsize=(8, 5))
    print("| recipe | s/step (idle) | steps | tokens | held-out MLM acc at the budget |")
    print("|---|---|---|---|---|")
    for name, points in data.items():
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=name)
        fields = dict(RECIPES[name])
        tokens = points[-1][2] * fields.get("batch_size", 64) * fields.get("max_seq_length", 128)
        print(f"| {name} | {1 / rates[name]:.3f} | {points[-1][2]} | {tokens / 1e6:.1f} M | "
              f"{points[-1][1]:.3f} |")  # fmt: skip
    ax.set_xlabel("idle wall-clock minutes (2-core CPU)")
    ax.set_ylabel("held-out MLM accuracy (15% BERT masks)")
    ax.set_title(f"Recipes at a {budget:g}-minute budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recipes.png", dpi=120)
    (out / "recipes.json").write_text(json.dumps({"rates": rates, "curves": data}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="../shared/data/pretrain/*.jsonl")
    parser.add_argument("--root", default="workdirs/recipes", type=Path)
    parser.add_argument("--out", default="docs/results/recipes", type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--budget_minutes", type=float, default=10.0)
    parser.add_argument("--probe", action="store_true", help="measure idle steps/s only")
    parser.add_argument("--report", action="store_true", help="tables and plot only")
    args = parser.parse_args()
    names = args.recipes.split(",")
    probe_file = args.root / "probe.json"
    if args.probe:
        rates = json.loads(probe_file.read_text()) if probe_file.exists() else {}
        rates.update(probe(names, args.corpus, args.root))
        probe_file.write_text(json.dumps(rates, indent=1))
        return
    rates = {name: rate for name, rate in json.loads(probe_file.read_text()).items()
             if name in names}  # fmt: skip
    if not args.report:
        for name in names:
            steps = int(args.budget_minutes * 60 * rates[name])
            train(name, args.root / "runs" / name, overrides(name, args.corpus, steps, 25))
    report(args.root, args.out, rates, args.budget_minutes)


if __name__ == "__main__":
    main()
