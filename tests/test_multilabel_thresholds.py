"""benchmarks/multilabel_thresholds.py, the script behind docs/finetune.md's threshold table: it
chooses on the dev predictions only, per label by that label's F1, and scores the choice on test."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import multilabel_thresholds as thresholds

# Label "rare": true texts at 0.3, the others at 0.2 (F1 1 for thresholds in [0.20, 0.30));
# label "common": true at 0.8, the others at 0.6 (F1 1 in [0.60, 0.80)).
DEV = [
    ({"rare": 0.3, "common": 0.8}, ["rare", "common"]),
    ({"rare": 0.2, "common": 0.6}, []),
    ({"rare": 0.2, "common": 0.8}, ["common"]),
    ({"rare": 0.3, "common": 0.6}, ["rare"]),
]
# On test the dev-chosen thresholds (0.20, 0.60) are right for "rare" and wrong for "common".
TEST = [({"rare": 0.25, "common": 0.55}, ["rare", "common"]), ({"rare": 0.1, "common": 0.5}, [])]


def write(path, rows, names=None) -> str:
    lines = [{"text": "t", "features": true, "probabilities": probabilities}
             for probabilities, true in rows]  # fmt: skip
    if names:
        for line in lines:
            line["probabilities"] = {n: line["probabilities"].get(n, 0.5) for n in names}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_per_label_thresholds_are_chosen_on_dev_and_scored_on_test(tmp_path, monkeypatch, capsys):
    dev = Path(write(tmp_path / "dev.jsonl", DEV))
    names, probabilities, true = thresholds.read_predictions(dev, "features")
    assert names == ["rare", "common"]
    assert true.tolist() == [[1, 1], [0, 0], [0, 1], [1, 0]]
    np.testing.assert_array_equal(thresholds.best_per_label(probabilities, true), [0.20, 0.60])
    assert thresholds.label_f1(np.array([True, True, False]), np.array([1.0, 0.0, 1.0])) == 0.5
    monkeypatch.setattr(sys, "argv", ["x", f"--dev={dev}",
                                      f"--test={write(tmp_path / 'test.jsonl', TEST)}",
                                      "--label_field=features"])  # fmt: skip
    thresholds.main()
    out = capsys.readouterr().out
    assert "  rare         0.20  test F1 1.000 (at 0.50: 0.000)" in out
    assert "  common       0.60  test F1 0.000 (at 0.50: 1.000)" in out
    # test's "rare" right, "common" missed: micro 2*1/(2*1+1) with one miss.
    assert "per-label thresholds best on dev: test micro F1 0.667 macro F1 0.500" in out


def test_dev_and_test_of_different_models_are_refused(tmp_path, monkeypatch):
    other = write(tmp_path / "other.jsonl", TEST, names=["rare", "common", "third"])
    monkeypatch.setattr(sys, "argv", ["x", f"--dev={write(tmp_path / 'dev.jsonl', DEV)}",
                                      f"--test={other}", "--label_field=features"])  # fmt: skip
    with pytest.raises(SystemExit, match="--dev's labels .* and --test's .* differ"):
        thresholds.main()
