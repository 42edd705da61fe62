"""A fine-tuning seed stopped mid-epoch (SIGTERM, Ctrl-C) resumes from its checkpoint and ends
exactly where the uninterrupted seed does; an unreadable checkpoint restarts the seed."""

import contextlib
import io
import json
import shutil

import pytest

from bertjax import preemption
from bertjax.errors import UserError
from bertjax.finetune import predict, recipe, seed_checkpoint, trainer
from tests.test_finetune import config_for, synthetic_sentiment, tiny_model_dir, write_jsonl

STOP_AT = 10  # mid-epoch 2 of 3 (8 batches an epoch)


def _stop_at(monkeypatch, step: int) -> None:
    """Makes the seed's preemption watcher report a stop after `step` (as SIGTERM would)."""
    monkeypatch.setattr(preemption.PreemptionWatcher, "should_stop", lambda _, done: done == step)


def _epochs(workdir) -> list[dict]:
    lines = (workdir / "seed_0" / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _scores(results: dict) -> dict:
    return {k: v for k, v in results["seeds"]["0"].items() if k != "train_seconds"}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A 3-epoch "best"-epoch classification fine-tune whose dev labels are flipped (so the kept
    epoch is an early one, kept apart from the state), and its uninterrupted run."""
    tmp = tmp_path_factory.mktemp("resume")
    train, test = synthetic_sentiment(128, seed=0), synthetic_sentiment(64, seed=1)
    flip = {"pos": "neg", "neg": "pos"}
    dev = [{**r, "label": flip[r["label"]]} for r in synthetic_sentiment(32, seed=2)]
    init = str(tiny_model_dir(tmp, [r["text"] for r in train] * 5))
    config = config_for(
        train_file=write_jsonl(tmp / "train.jsonl", train),
        eval_file=write_jsonl(tmp / "test.jsonl", test),
        dev_file=write_jsonl(tmp / "dev.jsonl", dev),
        kind="classification", learning_rate=1e-3, num_epochs=3, select_epoch="best",
        checkpoint_every=3,
    )  # fmt: skip
    whole = trainer.finetune("jsonl", init, str(tmp / "whole"), config)
    return tmp, init, config, whole


@pytest.fixture(scope="module")
def stopped(task):
    """The same fine-tune stopped at STOP_AT, and what it printed: each test resumes a copy."""
    tmp, init, config, _ = task
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(printed):
        _stop_at(monkeypatch, STOP_AT)
        assert trainer.finetune("jsonl", init, str(tmp / "stopped"), config) is None
    return tmp / "stopped", printed.getvalue()


def _copy_of(stopped, tmp_path):
    shutil.copytree(stopped[0], tmp_path / "stopped")
    return tmp_path / "stopped"


def test_a_stopped_seed_resumes_where_it_stopped_and_ends_as_if_never_stopped(
    task, stopped, tmp_path
):
    """Stopped at step 10 (epoch 2), the seed has saved its state, its kept epoch and where it
    was; re-run, it trains the rest of epoch 2 (its batches in the same order, the done ones
    skipped) and epoch 3: every epoch's metrics, the kept scores and the saved model's
    predictions equal the uninterrupted run's exactly, and the checkpoint is gone once the seed
    has finished."""
    tmp, init, config, whole = task
    workdir = _copy_of(stopped, tmp_path)
    assert f"saved seed 0 at step {STOP_AT} (epoch 2); re-run the same command" in stopped[1]
    assert (workdir / "seed_0" / seed_checkpoint.CHECKPOINT_DIR / str(STOP_AT)).is_dir()
    assert not (workdir / "seed_0" / "result.json").exists()
    assert len(_epochs(workdir)) == 1
    resumed = trainer.finetune("jsonl", init, str(workdir), config)
    assert _epochs(workdir) == _epochs(tmp / "whole")
    assert _scores(resumed) == _scores(whole)
    assert whole["seeds"]["0"]["epoch"] < 3  # the kept epoch was restored, not the last one
    labelled = {}
    for run, run_dir in (("whole", tmp / "whole"), ("stopped", workdir)):  # the kept epoch's
        labelled[run] = tmp_path / f"{run}.jsonl"
        model = str(run_dir / "seed_0" / "model")
        predict.predict_file(model, str(tmp / "test.jsonl"), str(labelled[run]))
    assert labelled["whole"].read_text() == labelled["stopped"].read_text()
    assert not (workdir / "seed_0" / seed_checkpoint.CHECKPOINT_DIR).exists()


def test_an_unreadable_seed_checkpoint_is_set_aside_and_the_seed_starts_again(
    task, stopped, tmp_path, caplog
):
    tmp, init, config, whole = task
    workdir = _copy_of(stopped, tmp_path)
    saved = workdir / "seed_0" / seed_checkpoint.CHECKPOINT_DIR / str(STOP_AT)
    for item in ("state", "position"):
        for path in (saved / item).rglob("*"):
            if path.is_file():
                path.write_bytes(b"truncated")
    resumed = trainer.finetune("jsonl", init, str(workdir), config)
    assert "unreadable" in caplog.text and "the seed starts again" in caplog.text
    assert (workdir / "seed_0" / "checkpoint.unreadable").is_dir()
    assert _epochs(workdir) == _epochs(tmp / "whole")
    assert _scores(resumed) == _scores(whole)


def test_checkpoint_every_must_be_whole_steps():
    with pytest.raises(UserError, match="checkpoint_every=-1 must be a whole number of steps"):
        recipe.validate(config_for(checkpoint_every=-1))


def test_damaged_fine_tune_files_are_one_line_or_set_right(task, stopped, tmp_path, caplog):
    """A metrics line cut short (a kill or a full disk mid-write) is dropped on resume, a cut
    result.json trains its seed again, and a damaged finetune_settings.json is one line (what
    the seeds were trained with is unknown); before, each was a JSONDecodeError traceback."""
    tmp, init, config, whole = task
    workdir = _copy_of(stopped, tmp_path)
    with (workdir / "seed_0" / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "train_lo')
    settings = workdir / "finetune_settings.json"
    kept = settings.read_text()
    settings.write_text(kept[: len(kept) // 2])
    with pytest.raises(UserError, match=r"finetune_settings.json is damaged \(.*\), so what its "
                       r"finished seeds were trained with is unknown; remove it"):  # fmt: skip
        trainer.finetune("jsonl", init, str(workdir), config)
    settings.write_text(kept)
    resumed = trainer.finetune("jsonl", init, str(workdir), config)
    assert _epochs(workdir) == _epochs(tmp / "whole")
    assert _scores(resumed) == _scores(whole)
    result = workdir / "seed_0" / "result.json"
    result.write_text(result.read_text()[:10])
    again = trainer.finetune("jsonl", init, str(workdir), config)
    assert "result.json is unreadable" in caplog.text and "seed 0 is trained again" in caplog.text
    assert _scores(again) == _scores(whole) and json.loads(result.read_text())
