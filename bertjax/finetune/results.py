"""A fine-tune's results: per-seed scores summarised over seeds (median, min, max) and the
Markdown table of results.md."""

import json
import statistics
from pathlib import Path
from typing import Any

MAIN_SCORE = {"classification": "accuracy", "multilabel": "micro_f1", "regression": "pearson",
              "tagging": "f1", "qa": "f1", "multiple_choice": "accuracy"}  # fmt: skip


def summarize(
    name, init, init_step, random_init, task, per_seed: dict[int, dict], config
) -> dict[str, Any]:
    """Median, min and max over seeds of every score (those all seeds have: a seed finished
    before a score existed lacks it). `init_step`: the init's checkpoint (None: random init)."""
    common = set.intersection(*(set(result) for result in per_seed.values()))
    names = [k for k in next(iter(per_seed.values())) if k in common and k != "steps"]
    aggregate = {}
    for key in names:
        values = [per_seed[s][key] for s in per_seed]
        aggregate[key] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
    return {
        "task": name,
        "kind": task.kind,
        "eval_split": task.eval_split,
        "init": str(init),
        "init_step": init_step,
        "random_init": random_init,
        "main_score": MAIN_SCORE[task.kind],
        "num_train": len(task.train),
        "num_eval": len(task.eval),
        "num_dev": len(task.dev),
        "seeds": {str(s): r for s, r in per_seed.items()},
        "aggregate": aggregate,
        "config": json.loads(config.to_json_best_effort()),
    }


def results_table(results: list[dict]) -> list[str]:
    """Markdown: one row per result, main score as median [min, max] in percent; the init as
    its directory's name and checkpoint ("random" for random init)."""
    lines = [
        "| task | init | seeds | score | median | min | max | train s (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        score = r["main_score"]
        agg = r["aggregate"][score]
        init = "random" if r["random_init"] else Path(r["init"]).name
        if r.get("init_step") is not None:  # None for random init; older results lack it
            init += f" step {r['init_step']}"
        lines.append(
            f"| {r['task']} ({r['eval_split']}) | {init} | {len(r['seeds'])} | {score} | "
            f"{100 * agg['median']:.1f} | {100 * agg['min']:.1f} | {100 * agg['max']:.1f} | "
            f"{r['aggregate']['train_seconds']['median']:.0f} |"
        )
    return lines
