"""Which multilabel threshold to predict with: one for all labels, or one per label, chosen on a
dev split's predictions and scored on a test split's, from two `bertjax predict` outputs of a
multilabel model (each line has the true labels in LABEL_FIELD and "probabilities").

  bertjax predict --model=FT/seed_0/model --input=dev.jsonl --out=/tmp/dev_pred.jsonl
  bertjax predict --model=FT/seed_0/model --input=test.jsonl --out=/tmp/test_pred.jsonl
  python -m benchmarks.multilabel_thresholds --dev=/tmp/dev_pred.jsonl \
      --test=/tmp/test_pred.jsonl --label_field=features

prints, for each threshold of the grid (0.10-0.90 by 0.05), dev micro F1 and test micro F1,
macro F1 and exact match; then the threshold best on dev for micro F1, and the per-label
thresholds best on dev for each label's F1, scored on test. A chosen threshold is used with
`bertjax predict --multilabel_threshold=P` (or `--config.multilabel_threshold=P` when
fine-tuning).
"""

import argparse
from pathlib import Path

import numpy as np

from bertjax.finetune.records import json_records
from bertjax.finetune.scores import multilabel_scores

GRID = np.round(np.arange(0.10, 0.901, 0.05), 2)


def read_predictions(path: Path, label_field: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(label names, probabilities [texts, labels], true labels as 0/1 [texts, labels])."""
    records = list(json_records(path, str(path)))
    names = list(records[0]["probabilities"])
    probabilities = np.array([[r["probabilities"][n] for n in names] for r in records])
    true = np.array([[float(n in r[label_field]) for n in names] for r in records])
    return names, probabilities, true


def label_f1(predicted: np.ndarray, true: np.ndarray) -> float:
    """F1 of one label's yes/no decisions over the texts (its micro F1 alone)."""
    return multilabel_scores(predicted[:, None], true[:, None])["micro_f1"]


def best_per_label(probabilities: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Each label's threshold of GRID with the best F1 for that label (the lowest on ties)."""
    return np.array([
        GRID[np.argmax([label_f1(probabilities[:, j] > t, true[:, j]) for t in GRID])]
        for j in range(true.shape[1])
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", required=True, help="bertjax predict's output on a dev split")
    parser.add_argument("--test", required=True, help="bertjax predict's output on a test split")
    parser.add_argument("--label_field", required=True, help="the records' field of true labels")
    args = parser.parse_args()
    names, dev_p, dev_y = read_predictions(Path(args.dev), args.label_field)
    test_names, test_p, test_y = read_predictions(Path(args.test), args.label_field)
    if test_names != names:
        raise SystemExit(f"--dev's labels {names} and --test's {test_names} differ")

    def on_test(threshold) -> str:
        s = multilabel_scores(test_p > threshold, test_y)
        return (
            f"test micro F1 {s['micro_f1']:.3f} macro F1 {s['macro_f1']:.3f} "
            f"exact match {s['exact_match']:.3f}"
        )

    dev_micro = [multilabel_scores(dev_p > t, dev_y)["micro_f1"] for t in GRID]
    for t, micro in zip(GRID, dev_micro, strict=True):
        print(f"threshold {t:.2f}: dev micro F1 {micro:.3f}, {on_test(t)}")
    print(f"best on dev for micro F1: {GRID[np.argmax(dev_micro)]:.2f}")
    per_label = best_per_label(dev_p, dev_y)
    for j, (name, t) in enumerate(zip(names, per_label, strict=True)):
        f1_at = label_f1(test_p[:, j] > t, test_y[:, j])
        f1_half = label_f1(test_p[:, j] > 0.5, test_y[:, j])
        print(f"  {name:12s} {t:.2f}  test F1 {f1_at:.3f} (at 0.50: {f1_half:.3f})")
    print(f"per-label thresholds best on dev: {on_test(per_label)}")


if __name__ == "__main__":
    main()
