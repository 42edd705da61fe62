"""The smoke config end to end in a temporary workdir: metrics, TensorBoard, checkpoints, resume."""

import json
import logging
from pathlib import Path

import pytest

from bertjax import checkpointing, metrics, train
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.errors import UserError
from tests.helpers import load_config

REQUIRED_METRICS = {
    "step",
    "loss",
    "mlm_loss",
    "mlm_accuracy",
    "nsp_loss",
    "nsp_accuracy",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "mfu",
}


def small_smoke_config(tmp_path: Path, **overrides):
    config = load_config("cpu_smoke")
    config.update(
        dict(
            corpus=SAMPLE_CORPUS.replace("*", "inaugural"),
            cache_dir=str(tmp_path / "cache"),
            vocab_size=2000,
            max_seq_length=64,
            max_predictions_per_seq=10,
            dupe_factor=1,
            batch_size=8,
            num_train_steps=6,
            warmup_steps=2,
            log_every=3,
            checkpoint_every=3,
            progress_bar=False,
        )
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("smoke")
    workdir = tmp_path / "workdir"
    summary = train.train_and_evaluate(small_smoke_config(tmp_path), workdir)
    return tmp_path, workdir, summary


def test_smoke_writes_metrics_tensorboard_and_checkpoints(finished_run):
    _, workdir, summary = finished_run
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 3, 6]
    for record in records:
        assert REQUIRED_METRICS <= set(record)
        assert 0 <= record["mlm_accuracy"] <= 1 and 0 <= record["nsp_accuracy"] <= 1
        assert record["tokens_per_second"] > 0 and 0 < record["mfu"] < 1
    assert records[0]["loss"] > 6.0  # about ln(2000) + ln(2) before training
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
        "3",
        "6",
    ]
    assert (workdir / "vocab.txt").is_file() and (workdir / "config.json").is_file()
    assert summary.steps == 6 and summary.final_metrics["loss"] == records[-1]["loss"]


def test_rerun_with_same_workdir_resumes_instead_of_restarting(finished_run, caplog, monkeypatch):
    tmp_path, workdir, _ = finished_run
    run_config = (workdir / "config.json").read_text()
    closed = []  # the checkpoint manager and metrics writer close on every way out (they did
    # not for a finished run, a refused resume or an error: Python callers kept them open)
    close_manager, close_writer = checkpointing.close_manager, metrics.MetricsWriter.close
    monkeypatch.setattr(
        checkpointing, "close_manager", lambda m: closed.append(m) or close_manager(m)
    )
    monkeypatch.setattr(
        metrics.MetricsWriter, "close", lambda w: closed.append(w) or close_writer(w)
    )
    with caplog.at_level(logging.WARNING, logger="absl"):
        again = train.train_and_evaluate(small_smoke_config(tmp_path, learning_rate=9e-9), workdir)
    assert again.start_step == 6 and again.steps == 6  # nothing left to do
    assert [type(c).__name__ for c in closed] == ["MetricsWriter", "CheckpointManager"]
    with pytest.raises(UserError, match="has hidden_size=128 but the config asks for 32"):
        train.train_and_evaluate(small_smoke_config(tmp_path, hidden_size=32), workdir)
    assert [type(c).__name__ for c in closed[2:]] == ["CheckpointManager"]
    # ... so nothing changed is applied: config.json (what continue_from and evaluate read) stays
    assert (workdir / "config.json").read_text() == run_config
    assert "Nothing trained, so these changes to the run's settings are not applied" in caplog.text
    assert "learning_rate 0.002 -> 9e-09" in caplog.text
    longer = train.train_and_evaluate(small_smoke_config(tmp_path, num_train_steps=9), workdir)
    assert longer.start_step == 6 and longer.steps == 9
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    # Lines at 1 and multiples of log_every (3) counted from the run's start, and the last step:
    # no extra line at the resumed run's first step (7), as in one uninterrupted run.
    assert [r["step"] for r in records] == [1, 3, 6, 9]


def test_a_metrics_line_cut_short_is_dropped_and_the_rewrite_is_whole(tmp_path):
    """A kill or a full disk mid-write leaves a half line in metrics.jsonl: every later resume
    failed on it (JSONDecodeError). It is dropped with the lines after the restored step; the
    file is rewritten beside itself and renamed (a failed rewrite had cut it to 25 of 41)."""
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 3, 6, 9)]
    path.write_text("\n".join(lines) + "\n" + '{"step": 12, "lo')
    assert metrics.last_logged_metrics(path) == {"step": 9, "loss": 1 / 9}
    metrics.drop_metrics_after(path, 6)
    assert path.read_text() == "\n".join(lines[:3]) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    path.write_text("\n".join(lines))  # cut just before the last newline: the next line appended
    metrics.drop_metrics_after(path, 9)  # would have joined it
    assert path.read_text() == "\n".join(lines) + "\n"
