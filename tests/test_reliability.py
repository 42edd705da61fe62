"""Faults injected into real runs: non-finite batches, corrupt checkpoints, SIGKILL and SIGTERM.

Every run here is BERT-tiny on one small embedded-corpus file; resumed runs must reproduce the
uninterrupted run's per-step metrics bit for bit.
"""

import gzip
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow as tf

from bertjax import checkpointing, metrics, optim, paths, resume_checks, sharding, train
from bertjax import config as config_lib
from bertjax.data import pipeline
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.errors import UserError
from tests.helpers import truncate_checkpoint
from tests.test_smoke import small_smoke_config
from tests.test_train import random_batch, setup_run, tiny_config

# Fields that must match exactly between an interrupted and an uninterrupted run.
DETERMINISTIC_FIELDS = (
    "step", "loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy",
    "grad_norm", "param_norm", "learning_rate", "nonfinite_steps",
)  # fmt: skip


def read_metrics(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(line)[k] for k in DETERMINISTIC_FIELDS} for line in lines]


def test_nonfinite_batch_skips_the_update_and_counts_it():
    config = tiny_config()
    mesh, state, _, step_fn = setup_run(config)
    before = jax.device_get(state)
    bad = random_batch(8)
    bad["masked_lm_weights"] = np.full_like(bad["masked_lm_weights"], np.nan)
    state, metrics = step_fn(state, sharding.global_batch_from_local(bad, mesh), jax.random.key(0))
    after = jax.device_get(state)
    assert int(after.step) == 1
    assert int(after.nonfinite_steps) == 1 and int(after.consecutive_nonfinite) == 1
    assert float(metrics["finite_steps"]) == 0.0 and float(metrics["mlm_loss_sum"]) == 0.0
    jax.tree.map(np.testing.assert_array_equal, after.params, before.params)
    jax.tree.map(np.testing.assert_array_equal, after.opt_state, before.opt_state)
    assert float(metrics["learning_rate"]) == 0.0 and float(metrics["grad_norm"]) == 0.0
    good = sharding.global_batch_from_local(random_batch(8, seed=1), mesh)
    state, metrics = step_fn(state, good, jax.random.key(0))
    assert int(state.nonfinite_steps) == 1 and int(state.consecutive_nonfinite) == 0
    # The optimizer applied its first update at step 2, with the rate of its own count (0), and
    # the step reports that rate, not the schedule at the global step (1).
    schedule = optim.learning_rate_schedule(optim.OptimizerSpec.from_config(config))
    assert int(optim.applied_updates(state.opt_state)) == 1 and int(state.step) == 2
    assert float(metrics["learning_rate"]) == float(schedule(0)) != float(schedule(1))


def _poison_from(first_bad_step: int):
    """Wraps make_dataset so every batch from `first_bad_step` (1-based) on has NaN weights."""
    make_dataset = pipeline.make_dataset

    def poisoned(*args, start_step=0, **kwargs):
        dataset = make_dataset(*args, start_step=start_step, **kwargs)

        def poison(index, batch):
            bad = index + start_step + 1 >= first_bad_step
            weights = batch["masked_lm_weights"]
            batch["masked_lm_weights"] = tf.where(bad, tf.fill(tf.shape(weights), np.nan), weights)
            return batch

        return dataset.enumerate().map(poison)

    return poisoned


def test_stop_policy_checkpoints_last_good_state_and_names_the_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "make_dataset", _poison_from(5))
    config = small_smoke_config(
        tmp_path, nonfinite_policy="stop", max_consecutive_nonfinite=3, num_train_steps=12,
        checkpoint_every=1, keep_checkpoints=20,
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match="NaN/Inf in steps 5-7"):
        train.train_and_evaluate(config, tmp_path / "run")
    manager = checkpointing.create_checkpoint_manager(
        tmp_path / "run" / "checkpoints", save_every=1, keep=20
    )
    assert manager.latest_step() == 8  # the policy read step 7's count while step 8 ran
    stopped, last_good = (_restore_raw(manager, step) for step in (8, 4))
    assert int(stopped["nonfinite_steps"]) == 4 and int(last_good["nonfinite_steps"]) == 0
    # Steps 5-8 were skipped, so the saved parameters are those of step 4, the last good one.
    jax.tree.map(np.testing.assert_array_equal, stopped["params"], last_good["params"])


def _restore_raw(manager, step: int) -> dict:
    """A checkpoint's state as saved (numpy leaves), without a target structure."""
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return restored["state"]


def test_skip_policy_keeps_training_and_logs_the_count(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "make_dataset", _poison_from(5))
    config = small_smoke_config(tmp_path, log_every=2)
    summary = train.train_and_evaluate(config, tmp_path / "run")
    assert summary.steps == 6
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [line["step"] for line in lines] == [1, 2, 4, 6]
    assert lines[-1]["nonfinite_steps"] == 2  # steps 5 and 6
    # Steps 5-6 were both skipped: their line has no loss, accuracy, gradient norm or rate (a
    # mean over no step), where it used to log a loss of 0. Steps 3-4 were applied.
    assert not {"loss", "mlm_accuracy", "grad_norm", "learning_rate"} & set(lines[-1])
    assert lines[-1]["param_norm"] > 0
    assert lines[-2]["loss"] > 0 and lines[-2]["nonfinite_steps"] == 0
    assert "final loss" not in "\n".join(summary.lines())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted 12-step run with metrics every step and checkpoints every 3 steps."""
    tmp_path = tmp_path_factory.mktemp("reference")
    config = small_smoke_config(tmp_path, num_train_steps=12, log_every=1, keep_checkpoints=10)
    train.train_and_evaluate(config, tmp_path / "run")
    return tmp_path, config, read_metrics(tmp_path / "run")


def test_a_resumed_run_logs_the_lines_of_an_uninterrupted_one(tmp_path, caplog):
    """Metrics every 4 steps, checkpoints every 3 (and Orbax's first one, at step 1): resumed
    from step 1 (the smoke run's case) or 9 (as after a kill once that checkpoint was written),
    the run writes the uninterrupted run's lines bit for bit, although step 9 falls inside a
    logging interval (steps 9-12). Before, the resumed run logged an extra line at its first
    step and averaged its next line over fewer steps."""
    config = small_smoke_config(tmp_path, num_train_steps=12, log_every=4, keep_checkpoints=10)
    train.train_and_evaluate(config, tmp_path / "reference")
    reference = read_metrics(tmp_path / "reference")
    assert [line["step"] for line in reference] == [1, 4, 8, 12]
    for restored in (1, 9):
        workdir = tmp_path / f"resumed_{restored}"
        shutil.copytree(tmp_path / "reference", workdir)
        for checkpoint in (workdir / "checkpoints").iterdir():
            if checkpoint.name.isdigit() and int(checkpoint.name) > restored:
                shutil.rmtree(checkpoint)
        summary = train.train_and_evaluate(config, workdir)
        assert summary.start_step == restored
        assert read_metrics(workdir) == reference
    assert "changes to what the run trains" not in caplog.text  # the same config: no warning


@pytest.mark.parametrize(
    "saved, run_config, warned",
    [
        (2, {"streaming": True}, True),
        (2, {"prepared_dir": "/data/shards"}, True),
        (2, {"streaming": False, "prepared_dir": ""}, False),  # in memory: the same batches
        (1, {"streaming": True}, False),
        (None, {"streaming": True}, False),  # a checkpoint from before the count was saved
    ],
)
def test_a_stream_resumed_with_another_number_of_processes_warns(
    saved, run_config, warned, caplog, tmp_path
):
    """Process p of P streams its own files: resumed by 1 process, a 2-process streaming run
    reads other batches (the multi-host audit, 2026-12-06: silent until then)."""
    with caplog.at_level(logging.WARNING):
        resume_checks._warn_if_stream_changes(saved, run_config, 6)
    assert ("with 1 processes where the checkpoint's run had 2" in caplog.text) == warned
    metadata = checkpointing.metadata_for(small_smoke_config(tmp_path), {})
    assert metadata["processes"] == jax.process_count()  # what the warning compares


def test_log_steps_count_from_the_start_of_the_run():
    steps = [step for step in range(1, 13) if metrics.is_log_step(step, 5, 12)]
    assert steps == [1, 5, 10, 12]


@pytest.mark.parametrize("damage", ["truncate", "delete_state"])
def test_unreadable_latest_checkpoint_falls_back_to_previous(reference_run, tmp_path, damage):
    reference_tmp, config, reference = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(reference_tmp / "run", workdir)
    newest = workdir / "checkpoints" / "12"
    if damage == "truncate":
        truncate_checkpoint(newest)
    else:
        shutil.rmtree(newest / "state")
    summary = train.train_and_evaluate(config, workdir)
    assert summary.start_step == 9 and summary.steps == 12
    assert (workdir / "checkpoints" / "12.unreadable").is_dir()  # set aside, not deleted
    assert read_metrics(workdir) == reference  # steps 10-12 recomputed bit for bit


def test_a_damaged_checkpoint_is_one_line_for_reading_commands(reference_run, tmp_path):
    """export, evaluate, fill-mask, finetune and init_from read a checkpoint without resuming:
    a damaged one is a UserError naming the other steps, and nothing is moved (only training's
    resume sets a step aside). Before, Orbax's exception reached the user as a traceback."""
    reference_tmp, _, _ = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(reference_tmp / "run", workdir)
    truncate_checkpoint(workdir / "checkpoints" / "12")
    steps = checkpointing.checkpoint_steps(workdir)
    with pytest.raises(UserError, match=r"step 12 .* is damaged \(.*\); read another step"):
        checkpointing.restore_params(workdir, 12)
    assert checkpointing.checkpoint_steps(workdir) == steps  # nothing set aside
    assert checkpointing.restore_params(workdir, 9)["bert"]  # the others still read


def cli_args(config, workdir: Path) -> list[str]:
    overrides = [
        f"--config.{name}={config[name]}"
        for name in (
            "corpus", "cache_dir", "vocab_size", "max_seq_length", "max_predictions_per_seq",
            "dupe_factor", "batch_size", "num_train_steps", "warmup_steps", "log_every",
            "checkpoint_every", "keep_checkpoints", "progress_bar",
        )
    ]  # fmt: skip
    return [sys.executable, "-m", "bertjax", "train", "--config=configs/cpu_smoke.py",
            f"--workdir={workdir}", *overrides]  # fmt: skip


def start_and_signal_after(args, workdir: Path, step: int, sig: int, timeout: float = 240):
    """Starts a training process and sends `sig` once metrics.jsonl has reached `step`."""
    # Same XLA_FLAGS (this worker's devices) as this process: results match the in-process run.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               text=True)  # fmt: skip
    deadline = time.time() + timeout
    metrics_file = workdir / "metrics.jsonl"
    while time.time() < deadline and process.poll() is None:
        if metrics_file.exists():
            steps = [json.loads(line)["step"] for line in metrics_file.read_text().splitlines()
                     if line.strip()]  # fmt: skip
            if steps and steps[-1] >= step:
                process.send_signal(sig)
                break
        time.sleep(0.05)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.mark.slow  # the default suite resumes after SIGTERM and in-process (same checks, one stop)
def test_sigkill_at_three_points_then_resume_is_bit_identical(reference_run, tmp_path):
    reference_tmp, config, reference = reference_run
    config = small_smoke_config(
        tmp_path, num_train_steps=12, log_every=1, keep_checkpoints=10,
        cache_dir=config.cache_dir,
    )  # fmt: skip
    workdir = tmp_path / "run"
    args = cli_args(config, workdir)
    killed = 0
    for kill_after in (2, 5, 10):
        returncode, output = start_and_signal_after(args, workdir, kill_after, signal.SIGKILL)
        assert returncode in (-signal.SIGKILL, 0), output
        killed += returncode == -signal.SIGKILL
    assert killed >= 2  # the kills really interrupted training (a finished run exits 0)
    returncode, output = start_and_signal_after(args, workdir, 10**9, signal.SIGKILL)
    assert returncode == 0, output
    assert read_metrics(workdir) == reference


# A real run stopped by Ctrl-C: slow (its handler is tests/test_preemption.py's; the stop, save
# and resume after it are SIGTERM's, in the default suite).
@pytest.mark.parametrize("signum, stopped_by", [
    (signal.SIGTERM, "Preempted (SIGTERM)"),
    pytest.param(signal.SIGINT, "Stopped (Ctrl-C)", marks=pytest.mark.slow),
])  # fmt: skip
def test_sigterm_saves_the_current_step_and_exits_cleanly(
    reference_run, tmp_path, signum, stopped_by
):
    """SIGTERM, or Ctrl-C in a terminal (before, Ctrl-C lost the steps since the last
    checkpoint), saves the step in flight and exits 0; the resumed run is the uninterrupted one."""
    reference_tmp, config, reference = reference_run
    config = small_smoke_config(
        tmp_path, num_train_steps=12, log_every=1, keep_checkpoints=10,
        cache_dir=config.cache_dir,
    )  # fmt: skip
    workdir = tmp_path / "run"
    args = cli_args(config, workdir)
    returncode, output = start_and_signal_after(args, workdir, 4, signum)
    assert returncode == 0, output
    line = next(line for line in output.splitlines() if line.startswith(stopped_by))
    saved_step = int(line.split("at step ")[1].split(";")[0])
    assert 4 <= saved_step < 12
    assert (workdir / "checkpoints" / str(saved_step)).is_dir()
    assert f"Stopped at step {saved_step} of 12; re-run the same command" in output  # not Done.
    # Resumed in this process: `bertjax train` only calls train_and_evaluate (a second
    # process started 15 s of imports for the same resume).
    assert train.train_and_evaluate(config, workdir).start_step == saved_step
    assert read_metrics(workdir) == reference


def kept_steps(tmp_path, **overrides) -> list[int]:
    """The checkpoints a run's manager keeps when the loop offers it every step 1-12 (the last
    forced, as the loop's final save is)."""
    spec = config_lib.from_config(small_smoke_config(tmp_path, num_train_steps=12, **overrides))
    manager = checkpointing.run_checkpoint_manager(tmp_path / "run", spec)
    for step in range(1, 13):
        checkpointing.save(manager, step, {"w": np.zeros(2)}, {}, force=step == 12)
    checkpointing.close_manager(manager)
    return checkpointing.checkpoint_steps(tmp_path / "run")


def test_retention_keeps_newest_and_every_period(tmp_path):
    kept = kept_steps(tmp_path, checkpoint_every=2, keep_checkpoints=2, keep_checkpoint_period=4)
    assert kept == [4, 8, 10, 12]


def test_a_wsd_run_saves_and_keeps_the_step_its_cooldown_starts(tmp_path):
    kept = kept_steps(tmp_path, lr_schedule="wsd", checkpoint_every=100, keep_checkpoints=1)
    assert kept == [10, 12]  # cooldown: steps 11-12


def test_resuming_with_the_other_layer_layout_is_a_clear_error(reference_run, tmp_path):
    reference_tmp, config, _ = reference_run
    shutil.copytree(reference_tmp / "run", tmp_path / "run")
    config = small_smoke_config(tmp_path, num_train_steps=15, scan_layers=True,
                                cache_dir=config.cache_dir)  # fmt: skip
    with pytest.raises(UserError, match="was written with scan_layers=False"):
        train.train_and_evaluate(config, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "12").is_dir()  # nothing set aside


def test_checkpoint_paths_keep_a_bucket_uri_and_make_local_paths_absolute(monkeypatch, tmp_path):
    """A gs:// workdir (the TPU launcher requires one) must reach Orbax as a URI: pathlib would
    make it a local path ("gs:/bucket/...") and every worker would write its own checkpoints."""
    assert str(paths.as_path("gs://bucket/runs/large") / "checkpoints") == (
        "gs://bucket/runs/large/checkpoints"
    )
    monkeypatch.chdir(tmp_path)
    assert str(paths.as_path("run")) == str(tmp_path / "run")
    assert str(paths.as_path("~/run")) == os.path.expanduser("~/run")
    opened = []
    monkeypatch.setattr(
        checkpointing.ocp, "CheckpointManager", lambda directory, **_: opened.append(directory)
    )
    checkpointing.create_checkpoint_manager("gs://bucket/runs/large/checkpoints", save_every=1,
                                            keep=1)  # fmt: skip
    assert [str(d) for d in opened] == ["gs://bucket/runs/large/checkpoints"]


def test_a_refused_resume_leaves_the_runs_config_and_vocabulary(reference_run, tmp_path, caplog):
    """Before, config.json was rewritten before the checkpoint's architecture was checked (then
    `bertjax evaluate` built the refused architecture and failed), and a vocabulary of the same
    size with other tokens resumed silently while the workdir kept the old vocab.txt. A resume
    that changes what the run trains (here its length, so its learning-rate schedule) says so,
    and how the rate of the resumed step moves."""
    reference_tmp, config, _ = reference_run
    run = tmp_path / "run"
    shutil.copytree(reference_tmp / "run", run)
    saved = {name: (run / name).read_bytes() for name in ("config.json", "vocab.txt")}
    deeper = small_smoke_config(tmp_path, num_train_steps=15, num_hidden_layers=3,
                                cache_dir=config.cache_dir)  # fmt: skip
    with pytest.raises(UserError, match="has num_hidden_layers=2 but the config asks for 3"):
        train.train_and_evaluate(deeper, run)
    other = tmp_path / "other_vocab"  # the run's vocabulary with one token renamed
    other.mkdir()
    tokens = saved["vocab.txt"].decode().splitlines()
    (other / "vocab.txt").write_text("\n".join([*tokens[:-1], "qqqzzz"]) + "\n")
    renamed = small_smoke_config(tmp_path, num_train_steps=15, vocab_dir=str(other),
                                 vocab_size=len(tokens), cache_dir=config.cache_dir)  # fmt: skip
    with pytest.raises(UserError, match=r"trained with another vocabulary \(its vocab.txt\); "
                       rf"resume with that one \(--config.vocab_dir={run}\)"):  # fmt: skip
        train.train_and_evaluate(renamed, run)
    assert {name: (run / name).read_bytes() for name in saved} == saved
    assert checkpointing.checkpoint_steps(run)[-1] == 12
    # The hint works: the workdir's own vocabulary resumes the run.
    resumed = small_smoke_config(tmp_path, num_train_steps=13, vocab_dir=str(run),
                                 vocab_size=len(tokens), cache_dir=config.cache_dir)  # fmt: skip
    train.train_and_evaluate(resumed, run)
    assert checkpointing.checkpoint_steps(run)[-1] == 13
    warning = "Resuming step 12 with changes to what the run trains since that checkpoint: "
    # Not vocab_dir; the rate of step 12 was the end of the decay (0), now 2e-3 * 1 / 11.
    changed = "num_train_steps 12 -> 13 (learning rate at step 12: 0 -> 0.0001818)"
    assert f"{warning}{changed}. It goes on" in caplog.text


@pytest.mark.slow  # 96 s (three runs); the kept cooldown step is checked above, unit-level
def test_a_finished_wsd_run_goes_on_from_its_cooldown_checkpoint(tmp_path, caplog):
    """A wsd schedule keeps the peak rate until its cooldown, so the checkpoint where the
    cooldown starts (always saved and kept) can run on into a longer schedule: copied into a new
    workdir with the vocabulary and metrics, it resumes as the longer run would have run from
    the start, every logged value bit for bit."""
    wsd = dict(lr_schedule="wsd", log_every=1, checkpoint_every=100)
    longer = small_smoke_config(tmp_path, num_train_steps=16, **wsd)
    train.train_and_evaluate(longer, tmp_path / "longer")  # cooldown: steps 13-16
    short = small_smoke_config(tmp_path, num_train_steps=12, keep_checkpoints=1, **wsd)
    train.train_and_evaluate(short, tmp_path / "short")  # cooldown: steps 11-12
    assert checkpointing.checkpoint_steps(tmp_path / "short") == [10, 12]  # 10: kept
    fork = tmp_path / "fork"
    shutil.copytree(tmp_path / "short" / "checkpoints" / "10", fork / "checkpoints" / "10")
    for name in ("vocab.txt", "metrics.jsonl"):
        shutil.copy(tmp_path / "short" / name, fork / name)
    resumed = small_smoke_config(tmp_path, num_train_steps=16, vocab_dir=str(fork), **wsd)
    assert train.train_and_evaluate(resumed, fork).start_step == 10
    assert "num_train_steps 12 -> 16 (learning rate at step 10 unchanged: 0.002)" in caplog.text
    assert read_metrics(fork) == read_metrics(tmp_path / "longer")


def test_a_damaged_prepared_shard_is_one_line_and_keeps_the_steps_done(tmp_path):
    """A byte flipped in a prepared shard after 3 steps (same size: the manifest's check cannot
    see it; TFRecord's checksum does): the resumed run stops with one line naming the step, and
    the checkpoint and metrics of the 3 steps stay."""
    from bertjax.data import prepare
    from bertjax.data.tokenizer import train_wordpiece_vocab

    with gzip.open(SAMPLE_CORPUS.replace("*", "inaugural"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:8]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    train_wordpiece_vocab(texts, 500, True, tmp_path / "vocab")
    manifest = prepare.run_prepare(
        str(tmp_path / "corpus.jsonl"), tmp_path / "vocab", tmp_path / "prepared",
        max_seq_length=64, dupe_factor=1, num_shards=1, num_workers=1,
    )  # fmt: skip
    config = small_smoke_config(
        tmp_path, prepared_dir=str(tmp_path / "prepared"), corpus="", num_train_steps=3
    )
    train.train_and_evaluate(config, tmp_path / "run")
    shard = tmp_path / "prepared" / manifest["shards"][0]["file"]
    damaged = bytearray(shard.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    config.num_train_steps = 6
    with pytest.raises(UserError, match=r"^the training data is damaged \(corrupted record at \d+, "
                       r"in the batch of step 4\); .* go on from step 3 \(saved\)$"):  # fmt: skip
        train.train_and_evaluate(config, tmp_path / "run")
    manager = checkpointing.create_checkpoint_manager(
        tmp_path / "run" / "checkpoints", save_every=3, keep=3
    )
    assert manager.latest_step() == 3
    assert read_metrics(tmp_path / "run")[-1]["step"] == 3


# Runs argv[2:] with writes past argv[1] bytes failing with EFBIG (as a full disk fails with
# ENOSPC: the same path through tensorstore and Orbax) instead of killing the process; the
# limit and the ignored SIGXFSZ carry over exec (no preexec_fn: a fork of this multithreaded
# process running Python code can deadlock).
FILE_SIZE_LIMITED = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_a_full_disk_during_a_save_is_one_line_and_the_run_resumes(reference_run, tmp_path):
    """A checkpoint save that cannot write (files limited to 500 kB, the tiny model's state
    files are larger) ends the command with one line, exit 2, no traceback (before: hundreds of
    lines from Orbax's threads); the same command, with space again, resumes from the last
    complete checkpoint."""
    reference_tmp, config, _ = reference_run
    shutil.copytree(reference_tmp / "run", tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "12")  # resumed at 9, saves 12
    result = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMITED, "500000", *cli_args(config, tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"bertjax: error: storage full: File too large \(.*/run/checkpoints/12\.orbax-checkpoint-"
        r"tmp.*\); free space \(or raise the quota\) there, then re-run the same command \(a run "
        r"resumes from its last complete checkpoint\)",
        last,
    ), result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
    resumed = train.train_and_evaluate(config, tmp_path / "run")
    assert (resumed.start_step, resumed.steps) == (9, 12)


@pytest.mark.parametrize("failure", [
    ValueError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB"),
    OSError("UNAVAILABLE: Connection reset by peer"),
    MemoryError(),
])  # fmt: skip
def test_a_checkpoint_read_that_fails_for_a_passing_reason_is_left_as_it_is(
    reference_run, tmp_path, monkeypatch, failure
):
    """Out of memory or a network error while restoring says nothing about the checkpoint:
    it used to be set aside as unreadable (and the run fell back steps); now one line, nothing
    moved, and the same command resumes from it once the cause is gone."""
    reference_tmp, config, reference = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(reference_tmp / "run", workdir)
    steps = checkpointing.checkpoint_steps(workdir)
    restore = ocp.CheckpointManager.restore

    def failing(self, step, args=None, **kwargs):
        if "state" in (args.keys() if args is not None else ()):
            raise failure
        return restore(self, step, args=args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "restore", failing)
    with pytest.raises(UserError, match=r"^could not read the checkpoint at step 12 in .*; it is "
                       r"left as it is: re-run once memory or the network is back$"):  # fmt: skip
        train.train_and_evaluate(config, workdir)
    assert checkpointing.checkpoint_steps(workdir) == steps


def test_a_corpus_file_grown_in_place_since_the_checkpoint_is_said_at_resume(tmp_path, caplog):
    """The files' sizes are saved with a checkpoint (`data_files`); a resume over the same
    paths with other sizes warns, naming each file, and one over the same files does not."""
    corpus_file = tmp_path / "corpus.jsonl.gz"
    shutil.copyfile(SAMPLE_CORPUS.replace("*", "inaugural"), corpus_file)
    config = config_lib.from_config(small_smoke_config(tmp_path, corpus=str(corpus_file)))
    saved_files = resume_checks.data_files(config.data)
    directory = tmp_path / "checkpoints"
    manager = checkpointing.create_checkpoint_manager(directory, save_every=1, keep=1)
    metadata = {"config": {"corpus": str(corpus_file)}, "data_files": saved_files}
    checkpointing.save(manager, 3, {"w": np.zeros(2)}, metadata)
    checkpointing.close_manager(manager)
    size = corpus_file.stat().st_size
    with gzip.open(corpus_file, "ab") as f:  # a gzip member appended: one more document
        f.write(b'{"text": "One more address. It has two sentences."}\n')
    grown = resume_checks.data_files(config.data)
    assert grown == [["corpus.jsonl.gz", corpus_file.stat().st_size]] != saved_files
    manager = checkpointing.create_checkpoint_manager(directory, save_every=1, keep=1)
    writer = metrics.MetricsWriter(tmp_path, enabled=False)
    with caplog.at_level(logging.WARNING):
        resume_checks.resume_metrics(manager, writer, 3, metadata["config"], grown)
        said = "training data files changed since that checkpoint (the same paths, other files)"
        assert f"{said}: corpus.jsonl.gz {size} -> {grown[0][1]} bytes." in caplog.text
        caplog.clear()
        resume_checks.resume_metrics(manager, writer, 3, metadata["config"], saved_files)
    assert "files changed" not in caplog.text
    manager.close()


@pytest.mark.slow  # 55 s (three runs); the check itself is the test above
def test_a_resume_over_corpus_files_changed_in_place_warns(reference_run, tmp_path, caplog):
    """The same corpus path with other text (a file grown or replaced in place) gives other
    batches from the checkpoint on: said at resume (the config alone is the same). A given
    vocabulary (a trained one would change with the corpus, and be refused)."""
    corpus_file = tmp_path / "corpus.jsonl.gz"
    shutil.copyfile(SAMPLE_CORPUS.replace("*", "inaugural"), corpus_file)
    config = small_smoke_config(tmp_path, corpus=str(corpus_file), num_train_steps=3,
                                vocab_dir=str(reference_run[0] / "run"))  # fmt: skip
    train.train_and_evaluate(config, tmp_path / "run")
    size = corpus_file.stat().st_size
    with gzip.open(corpus_file, "ab") as f:  # a gzip member appended: one more document
        f.write(b'{"text": "One more address. It has two sentences."}\n')
    config.num_train_steps = 4
    with caplog.at_level(logging.WARNING):
        train.train_and_evaluate(config, tmp_path / "run")
    grown = corpus_file.stat().st_size
    assert (f"training data files changed since that checkpoint (the same paths, other files): "
            f"corpus.jsonl.gz {size} -> {grown} bytes.") in caplog.text  # fmt: skip
    caplog.clear()
    config.num_train_steps = 5
    train.train_and_evaluate(config, tmp_path / "run")  # saved with the grown file: no warning
    assert "files changed" not in caplog.text
