"""benchmarks/results_report: an earlier proof's proof.json stands in for its gone workdir."""

import json
from pathlib import Path

import pytest

from benchmarks import results_report

ROOT = Path(__file__).resolve().parents[1]


def test_a_summary_gives_back_the_seeds_median_and_range_of_each_init():
    summary = {
        "trec": {
            "main_score": "accuracy",
            "pretrained_learning_rate": 1e-4,
            "pretrained_seeds": {"0": 86.4, "1": 85.4, "2": 86.8},
            "random_learning_rate": 3e-4,
            "random_seeds": {"0": 73.8, "1": 75.0, "2": 72.0},
        },
        "mr": {"main_score": "accuracy"},  # no seeds recorded: nothing drawn
    }
    results = results_report.summary_results(summary, {"trec": "test", "mr": "test"})

    assert set(results) == {("trec", "baseline"), ("trec", "random")}
    baseline = results[("trec", "baseline")]
    assert baseline["aggregate"]["accuracy"] == pytest.approx(
        {"median": 0.864, "min": 0.854, "max": 0.868}
    )
    assert (baseline["learning_rate"], baseline["eval_split"]) == (1e-4, "test")
    assert results[("trec", "random")]["aggregate"]["accuracy"]["median"] == pytest.approx(0.738)
    assert list(results[("trec", "random")]["seeds"]) == ["0", "1", "2"]


def test_the_tables_cells_from_the_proof_json_in_the_repository():
    """The committed proof.json renders as the proof's fine-tuning table does (docs/results.md)."""
    summary = json.loads((ROOT / "docs/results/proof.json").read_text())
    results = results_report.summary_results(summary, {"trec": "test"})
    results[("trec", "pretrained")] = results.pop(("trec", "baseline"))

    row = results_report.finetuning_table(results)[2]

    pretrained, random = summary["trec"]["pretrained_median"], summary["trec"]["random_median"]
    assert f"| {pretrained:.1f} [" in row and f"| {random:.1f} [" in row
    assert f"| {pretrained - random:+.1f} |" in row
