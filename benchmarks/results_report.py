"""Tables and plots of the downstream proof (benchmarks/downstream_proof.sh) for docs/results.md.

  python -m benchmarks.results_report --proof_dir=workdirs/proof --out=docs/results

Reads PROOF_DIR/pretrain/metrics.jsonl (training and held-out lines), the fine-tuning
results PROOF_DIR/finetune/*/results.json and PROOF_DIR/wall_times.txt; writes
OUT/pretraining.png (loss and MLM accuracy against steps), OUT/finetuning.png (main score per
task: pretrained vs random init vs MiniLM, median with min-max bars) and prints the Markdown
tables. --baseline_dir adds an earlier proof run (its pretrained fine-tunes and held-out curve)
beside this one, labelled --baseline_label; --baseline_summary, where that run's workdir is gone,
adds its proof.json instead (pretrained and random-init seeds, the last held-out accuracy).
--pretrain_minutes (the pretraining's idle wall time, measured as docs/results.md says) also
writes OUT/proof.json: pretrain_minutes, the last held-out MLM accuracy, the first step at which
it reached 0.30, and per task the pretrained and random-init medians of the main score.
"""

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

INITS = ("pretrained", "baseline", "random", "minilm")
COLOURS = {"pretrained": "tab:blue", "baseline": "tab:orange", "random": "tab:gray",
           "minilm": "tab:green"}  # fmt: skip
LABELS = {"random": "BERT-mini random init", "minilm": "all-MiniLM-L6-v2 (imported)"}


def model_name(config: dict) -> str:
    """What PROOF_DIR pretrained, for labels: its objective decides."""
    return "ELECTRA-mini discriminator" if config.get("objective") == "electra" else "BERT-mini"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_pretraining(pretrain_dir: Path) -> list[dict]:
    """metrics.jsonl of a pretraining workdir; for a run without eval_every, the held-out points
    of `bertjax evaluate --all_steps` (eval_all_steps.jsonl) are added as eval_* lines."""
    records = read_jsonl(pretrain_dir / "metrics.jsonl")
    eval_file = pretrain_dir / "eval_all_steps.jsonl"
    if not any("eval_mlm_loss" in r for r in records) and eval_file.exists():
        records += [{f"eval_{k}": v for k, v in r.items()} | {"step": r["step"]}
                    for r in read_jsonl(eval_file)]  # fmt: skip
    return records


def plot_pretraining(
    records: list[dict], out: Path, baseline=None, baseline_label="", step_label="step"
) -> None:
    """Loss and accuracy of the masked LM (an ELECTRA run's generator), and for ELECTRA a third
    panel: held-out replaced-token detection against the accuracy of flagging nothing."""
    train = [r for r in records if "loss" in r]
    held_out = [r for r in records if "eval_mlm_loss" in r]
    rtd = [r for r in held_out if "eval_rtd_accuracy" in r]
    mlm = "generator MLM" if rtd else "MLM"
    fig, axes = plt.subplots(1, 2 + bool(rtd), figsize=(5 * (2 + bool(rtd)), 4))
    loss_ax, acc_ax = axes[:2]
    steps = [r["step"] for r in train]
    loss_ax.plot(steps, [r["mlm_loss"] for r in train], label=f"{mlm} loss (train)")
    acc_ax.plot(steps, [r["mlm_accuracy"] for r in train], label=f"{mlm} accuracy (train)")
    if held_out:
        eval_steps = [r["step"] for r in held_out]
        loss_ax.plot(eval_steps, [r["eval_mlm_loss"] for r in held_out], "o-",
                     label=f"{mlm} loss (held out, fixed masks)")  # fmt: skip
        acc_ax.plot(eval_steps, [r["eval_mlm_accuracy"] for r in held_out], "o-",
                    label=f"{mlm} accuracy (held out, fixed masks)")  # fmt: skip
        if "eval_unigram_mlm_loss" in held_out[-1]:  # token frequencies alone, same positions
            unigram = held_out[-1]
            loss_ax.axhline(unigram["eval_unigram_mlm_loss"], color="tab:gray", ls=":",
                            label="unigram baseline (held out)")  # fmt: skip
            acc_ax.axhline(unigram["eval_unigram_mlm_accuracy"], color="tab:gray", ls=":",
                           label="unigram baseline (held out)")  # fmt: skip
    for ax, key in ((loss_ax, "eval_mlm_loss"), (acc_ax, "eval_mlm_accuracy")):
        old = [r for r in baseline or [] if key in r]  # a --baseline_summary has no loss
        if old:
            ax.plot([r["step"] for r in old], [r[key] for r in old], "s--", color="tab:red",
                    label=f"held out, {baseline_label}")  # fmt: skip
    titles = [f"{mlm} loss", f"{mlm} accuracy"]
    if rtd:
        rtd_steps = [r["step"] for r in rtd]
        for name in ("accuracy", "precision", "recall"):
            axes[2].plot(rtd_steps, [r[f"eval_rtd_{name}"] for r in rtd], "o-",
                         label=f"{name} (held out)")  # fmt: skip
        axes[2].plot(rtd_steps, [1 - r["eval_replaced_fraction"] for r in rtd], ":",
                     color="tab:gray", label="accuracy flagging nothing")  # fmt: skip
        auc = [r for r in rtd if "eval_rtd_auc" in r]  # evaluations since rtd_auc existed
        axes[2].plot([r["step"] for r in auc], [r["eval_rtd_auc"] for r in auc], "o-",
                     label="ROC AUC (held out; 0.5 = chance)")  # fmt: skip
        titles.append("replaced-token detection")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel(step_label)
        ax.set_title(f"pretraining: {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def finetune_results(proof_dir: Path, subdirs: str = "finetune") -> dict[tuple[str, str], dict]:
    """(task, init) -> results.json of PROOF_DIR/<subdir>/<task>-<init>/ (finished runs), with
    the run's learning rate; of comma-separated `subdirs`, a later one's runs replace earlier."""
    results = {}
    for subdir in subdirs.split(","):
        for path in sorted((proof_dir / subdir).glob("*/results.json")):
            task, init = path.parent.name.rsplit("-", 1)
            settings = json.loads((path.parent / "finetune_settings.json").read_text())
            results[(task, init)] = json.loads(path.read_text()) | {
                "learning_rate": settings["config"]["learning_rate"]
            }
    return results


def summary_results(summary: dict, splits: dict[str, str]) -> dict[tuple[str, str], dict]:
    """(task, "baseline" / "random") -> fine-tuning results in `finetune_results`' shape, from
    the proof.json (`proof_summary`) of an earlier proof whose workdir is gone: its seeds'
    scores of pretrained and random init, for the tasks in `splits` (task -> eval split)."""
    results = {}
    for task, split in splits.items():
        entry = summary.get(task, {})
        for init, key in (("pretrained", "baseline"), ("random", "random")):
            if f"{init}_seeds" not in entry:
                continue
            scores = [v / 100 for v in entry[f"{init}_seeds"].values()]
            results[(task, key)] = {
                "main_score": entry["main_score"],
                "eval_split": split,
                "learning_rate": entry[f"{init}_learning_rate"],
                "seeds": dict.fromkeys(entry[f"{init}_seeds"]),
                "aggregate": {entry["main_score"]: {
                    "median": statistics.median(scores), "min": min(scores), "max": max(scores)
                }},
            }  # fmt: skip
    return results


def plot_finetuning(
    results: dict, out: Path, baseline_label: str = "", name: str = "BERT-mini"
) -> None:
    tasks = sorted({task for task, _ in results})
    inits = [init for init in INITS if any(k[1] == init for k in results)]
    fig, ax = plt.subplots(figsize=(2.4 * len(tasks) + 2, 4))
    width = 0.8 / len(inits)
    for offset, init in enumerate(inits):
        xs, medians, low, high = [], [], [], []
        for i, task in enumerate(tasks):
            if (task, init) not in results:
                continue
            r = results[(task, init)]
            agg = r["aggregate"][r["main_score"]]
            xs.append(i + (offset - (len(inits) - 1) / 2) * width)
            medians.append(100 * agg["median"])
            low.append(100 * (agg["median"] - agg["min"]))
            high.append(100 * (agg["max"] - agg["median"]))
        if xs:
            label = LABELS.get(init, f"{name} pretrained")
            if init == "baseline":
                label = f"pretrained, {baseline_label}"
            ax.bar(xs, medians, width, yerr=[low, high], capsize=3, color=COLOURS[init],
                   label=label)  # fmt: skip
    labels = []
    for task in tasks:
        r = next(results[k] for k in results if k[0] == task)
        rates = {k[1]: results[k]["learning_rate"] for k in sorted(results) if k[0] == task}
        rate = (  # each init's own rate where they differ (chosen on dev per init)
            " / ".join(f"{x:g} {init}" for init, x in rates.items())
            if len(set(rates.values())) > 1
            else f"{next(iter(rates.values())):g}"
        )
        labels.append(f"{task}\n({r['main_score']}, {r['eval_split']})\nlr {rate}")
    ax.set_xticks(range(len(tasks)), labels)
    ax.set_ylabel("score, % (median of seeds; bars: min-max)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower center", ncol=2, fontsize=8)
    ax.set_title("Fine-tuning: pretrained vs random initialisation (same recipe and rate grid)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pretraining_table(records: list[dict]) -> list[str]:
    """One row per held-out evaluation; the NSP column only for runs with NSP, replaced-token
    detection for ELECTRA (MLM columns: its generator), the unigram baseline, distinct
    predictions and the token states' collapse statistics where the evaluation reported them."""
    held_out = [r for r in records if "eval_mlm_loss" in r]
    nsp = any(r.get("eval_nsp_accuracy") for r in held_out)
    rtd = any("eval_rtd_accuracy" in r for r in held_out)
    unigram = any("eval_unigram_mlm_loss" in r for r in held_out)
    rank = any("eval_token_effective_rank" in r for r in held_out)
    header = ["step", "train MLM loss", "train MLM acc", "held-out MLM loss", "held-out MLM acc"]
    header += ["held-out NSP acc"] * nsp
    header += ["held-out RTD acc / precision / recall", "RTD AUC", "replaced"] * rtd
    header += ["unigram loss / acc (same positions)", "distinct tokens predicted"] * unigram
    header += ["token states: effective rank / cosine"] * rank
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    train = {r["step"]: r for r in records if "loss" in r}
    for r in held_out:
        t = train.get(r["step"], {})
        cells = [str(r["step"]), f"{t.get('mlm_loss', float('nan')):.3f}",
                 f"{t.get('mlm_accuracy', float('nan')):.3f}", f"{r['eval_mlm_loss']:.3f}",
                 f"{r['eval_mlm_accuracy']:.3f}"]  # fmt: skip
        if nsp:
            cells.append(f"{r['eval_nsp_accuracy']:.3f}")
        if rtd:
            detection = (r[f"eval_rtd_{name}"] for name in ("accuracy", "precision", "recall"))
            cells += [" / ".join(f"{v:.3f}" for v in detection),
                      f"{r.get('eval_rtd_auc', float('nan')):.3f}",
                      f"{r['eval_replaced_fraction']:.3f}"]  # fmt: skip
        if unigram:
            cells += [f"{r['eval_unigram_mlm_loss']:.3f} / {r['eval_unigram_mlm_accuracy']:.3f}",
                      f"{r['eval_mlm_distinct_predictions']:.0f}"]  # fmt: skip
        if rank:
            cells.append(f"{r.get('eval_token_effective_rank', float('nan')):.1f} / "
                         f"{r.get('eval_token_cosine', float('nan')):.3f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def proof_summary(records: list[dict], results: dict, pretrain_minutes: float) -> dict:
    """The numbers docs/results/proof.json keeps (issue: the downstream proof)."""
    held_out = [r for r in records if "eval_mlm_accuracy" in r]
    first = next((r["step"] for r in held_out if r["eval_mlm_accuracy"] >= 0.30), None)
    last_step = max(r["step"] for r in records)
    summary = {
        "pretrain_minutes": round(pretrain_minutes, 1),
        "pretrain_steps": last_step,
        "heldout_mlm_accuracy": round(held_out[-1]["eval_mlm_accuracy"], 4),
        "heldout_unigram_accuracy": round(held_out[-1].get("eval_unigram_mlm_accuracy", 0.0), 4),
        "first_step_at_0.30": first,
    }
    for task in sorted({task for task, _ in results}):
        entry = {}
        for init in ("pretrained", "random"):
            if (task, init) in results:
                r = results[(task, init)]
                entry["main_score"] = r["main_score"]
                entry[f"{init}_learning_rate"] = r["learning_rate"]
                entry[f"{init}_median"] = round(100 * r["aggregate"][r["main_score"]]["median"], 2)
                entry[f"{init}_seeds"] = {
                    seed: round(100 * scores[r["main_score"]], 2)
                    for seed, scores in r["seeds"].items()
                }
        summary[task] = entry
    return summary


def finetuning_table(results: dict, baseline_label: str = "", name: str = "BERT-mini") -> list[str]:
    baseline = any(init == "baseline" for _, init in results)
    lines = [
        f"| task (eval split) | score | pretrained {name} | random init | gain (median) "
        + (f"| pretrained, {baseline_label} " if baseline else "")
        + "| all-MiniLM-L6-v2 |",
        "|---|---|---|---|---|" + ("---|" if baseline else "") + "---|",
    ]

    def cell(key) -> str:
        if key not in results:
            return "not run"
        r = results[key]
        agg = r["aggregate"][r["main_score"]]
        seeds = ",".join(r["seeds"])
        return (
            f"{100 * agg['median']:.1f} [{100 * agg['min']:.1f}, {100 * agg['max']:.1f}] "
            f"(seeds {seeds})"
        )

    for task in sorted({task for task, _ in results}):
        some = next(results[k] for k in results if k[0] == task)
        gain = ""
        if (task, "pretrained") in results and (task, "random") in results:
            score = some["main_score"]
            a = results[(task, "pretrained")]["aggregate"][score]["median"]
            b = results[(task, "random")]["aggregate"][score]["median"]
            gain = f"{100 * (a - b):+.1f}"
        lines.append(
            f"| {task} ({some['eval_split']}) | {some['main_score']} | "
            f"{cell((task, 'pretrained'))} | {cell((task, 'random'))} | {gain} | "
            + (f"{cell((task, 'baseline'))} | " if baseline else "")
            + f"{cell((task, 'minilm'))} |"
        )
    return lines


def wall_times(path: Path) -> dict[str, list[int]]:
    """Seconds per stage from wall_times.txt; a resumed stage has one line per invocation that
    finished (an interrupted one records nothing, so a resumed stage's total is a lower bound)."""
    stages: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        name, seconds = line.split()
        stages.setdefault(name, []).append(int(seconds))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proof_dir", default="workdirs/proof")
    parser.add_argument("--out", default="docs/results")
    earlier = parser.add_mutually_exclusive_group()  # an earlier proof, one way or the other
    earlier.add_argument("--baseline_dir", help="an earlier proof run to show beside this one")
    earlier.add_argument(
        "--baseline_summary",
        help="instead of --baseline_dir: an earlier proof's proof.json, whose pretrained and "
        "random-init seeds are drawn beside this run's",
    )
    parser.add_argument("--baseline_label", default="first run")
    parser.add_argument("--finetune_dirs", default="finetune",
                        help="fine-tune folders of PROOF_DIR, comma-separated")  # fmt: skip
    parser.add_argument("--pretrain_minutes", type=float,
                        help="idle pretraining minutes: also write OUT/proof.json")  # fmt: skip
    args = parser.parse_args()
    proof_dir, out = Path(args.proof_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = read_pretraining(proof_dir / "pretrain")
    results = finetune_results(proof_dir, args.finetune_dirs)
    baseline = None
    if args.baseline_dir:
        baseline = read_pretraining(Path(args.baseline_dir) / "pretrain")
        for (task, init), r in finetune_results(Path(args.baseline_dir)).items():
            if init == "pretrained":
                results[(task, "baseline")] = r
    if args.baseline_summary:
        summary = json.loads(Path(args.baseline_summary).read_text())
        splits = {task: r["eval_split"] for (task, _), r in results.items()}
        results = summary_results(summary, splits) | results  # this run's own runs win
        # The earlier run's curve is gone with its workdir: its last held-out point stands in.
        baseline = [{"step": summary["pretrain_steps"],
                     "eval_mlm_accuracy": summary["heldout_mlm_accuracy"]}]  # fmt: skip
    config = json.loads((proof_dir / "pretrain" / "config.json").read_text())
    step_label = f"step (batch {config['batch_size']} x {config['max_seq_length']} tokens)"
    plot_pretraining(records, out / "pretraining.png", baseline, args.baseline_label, step_label)
    if args.pretrain_minutes:
        summary = proof_summary(records, results, args.pretrain_minutes)
        (out / "proof.json").write_text(json.dumps(summary, indent=1) + "\n")
    if results:
        plot_finetuning(results, out / "finetuning.png", args.baseline_label, model_name(config))
    print("\n".join(pretraining_table(records)))
    print()
    print("\n".join(finetuning_table(results, args.baseline_label, model_name(config))))
    times = proof_dir / "wall_times.txt"
    if times.exists():
        print()
        print("| stage | wall time |")
        print("|---|---|")
        for name, segments in wall_times(times).items():
            total = sum(segments)
            resumed = f" ({len(segments)} finished invocations)" if len(segments) > 1 else ""
            print(f"| {name} | {total // 60} min {total % 60} s{resumed} |")
    print(f"\nplots: {out / 'pretraining.png'}, {out / 'finetuning.png'}")


if __name__ == "__main__":
    main()
