"""Two JAX processes on localhost (gloo collectives, 4 CPU devices each) train and evaluate the
same thing as one process with 8 devices, and checkpoints move between the two layouts in both
directions."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bertjax import train
from bertjax.data.corpus import SAMPLE_CORPUS
from tests.helpers import truncate_checkpoint
from tests.test_smoke import small_smoke_config

COMPARED = ("loss", "mlm_loss", "nsp_loss", "grad_norm", "param_norm")
EVAL_COMPARED = ("eval_loss", "eval_mlm_loss", "eval_mlm_accuracy", "eval_nsp_accuracy",
                 "eval_mlm_distinct_predictions", "eval_mlm_distinct_labels",
                 "eval_unigram_mlm_loss", "eval_unigram_mlm_accuracy")  # fmt: skip
REPO = Path(__file__).resolve().parent.parent


def multiprocess_config(tmp_dir: Path, **overrides):
    """The smoke config both layouts run: a metrics line every step, held-out evaluation at
    steps 3 and 6."""
    return small_smoke_config(
        tmp_dir, log_every=1, eval_every=3, eval_holdout_fraction=0.2, eval_examples=16,
        eval_batch_size=8, **overrides,
    )  # fmt: skip


def metrics_by_step(workdir: Path) -> dict[int, dict]:
    """The training and evaluation lines of each step, merged."""
    merged = {}
    for record in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines()):
        merged.setdefault(record["step"], {}).update(record)
    return merged


def assert_same_metrics(got: dict, want: dict, steps) -> None:
    for step in steps:
        for name in COMPARED:
            np.testing.assert_allclose(got[step][name], want[step][name], rtol=1e-5, err_msg=name)


def start_two_processes(
    workdir: Path | str, tmp_dir: Path, steps: int = 6, dcn_data: int = 1, vocab_dir: str = "",
    overrides: dict | None = None,
) -> list[subprocess.Popen]:  # fmt: skip
    """The two processes of a run (multiprocess_worker): "{process}" in `workdir` and
    `vocab_dir` is each one's index; `overrides`: {process index: {config field: value}}."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    worker = [sys.executable, "-m", "tests.multiprocess_worker", str(port), "2"]
    return [
        subprocess.Popen(
            [
                *worker,
                str(i),
                str(workdir),
                str(tmp_dir),
                str(steps),
                str(dcn_data),
                vocab_dir,
                json.dumps({str(k): v for k, v in (overrides or {}).items()}),
            ],  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def run_two_processes(workdir: Path, tmp_dir: Path, dcn_data: int = 1) -> list[str]:
    processes = start_two_processes(workdir, tmp_dir, dcn_data=dcn_data)
    outputs = [p.communicate(timeout=400)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiprocess")
    config = multiprocess_config(tmp)
    train.train_and_evaluate(config, tmp / "single")
    outputs = run_two_processes(tmp / "multi", tmp)
    return tmp, config, outputs


def test_two_processes_equal_one_process(runs):
    tmp, _, outputs = runs
    assert all("finished at step 6" in output for output in outputs)
    assert_same_metrics(metrics_by_step(tmp / "multi"), metrics_by_step(tmp / "single"),
                        range(1, 7))  # fmt: skip


def test_two_processes_evaluate_the_whole_held_out_set_like_one_process(runs):
    """Each process feeds its slice of the fixed held-out batches; the metrics, distinct
    predictions and the unigram baseline are those of the whole set, as on one process."""
    tmp, _, _ = runs
    multi, single = metrics_by_step(tmp / "multi"), metrics_by_step(tmp / "single")
    for step in (3, 6):
        for name in EVAL_COMPARED:
            np.testing.assert_allclose(multi[step][name], single[step][name], rtol=1e-5,
                                       err_msg=f"{name} at step {step}")  # fmt: skip


def test_only_process_zero_writes_shared_files(runs):
    tmp, _, _ = runs
    files = sorted(p.name for p in (tmp / "multi").iterdir())
    assert files == ["checkpoints", "config.json", "metrics.jsonl", "run.lock", "tensorboard",
                     "token_counts.npy", "vocab.txt"]  # fmt: skip
    lock = (tmp / "multi" / "run.lock").read_text()  # process 0 took it, process 1 did not block
    assert lock.startswith("pid ") and lock.count("\n") == 1
    assert len(list((tmp / "multi" / "tensorboard").iterdir())) == 1  # one events file
    records = [json.loads(line) for line in (tmp / "multi" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # once, not twice
    assert [r["step"] for r in records if "eval_loss" in r] == [3, 6]


@pytest.mark.multi_device
def test_two_process_checkpoint_resumes_in_one_process_on_another_mesh(runs, tmp_path):
    tmp, config, _ = runs
    shutil.copytree(tmp / "multi", tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "6")
    config.mesh_shape = {"data": 1, "fsdp": 8, "tensor": 1}
    summary = train.train_and_evaluate(config, tmp_path / "run")
    assert summary.start_step == 3
    assert_same_metrics(metrics_by_step(tmp_path / "run"), metrics_by_step(tmp / "single"),
                        range(4, 7))  # fmt: skip


@pytest.mark.slow  # 60 s; the default suite resumes across topologies the other way round
def test_one_process_checkpoint_resumes_in_two_processes(runs, tmp_path):
    """... past an unreadable latest checkpoint: both processes set it aside (process 0
    renames it once) and resume from the one before."""
    tmp, _, _ = runs
    shutil.copytree(tmp / "single", tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    truncate_checkpoint(checkpoints / "6")
    outputs = run_two_processes(tmp_path / "run", tmp)
    assert all("checkpoint at step 6 is unreadable" in output for output in outputs)
    assert "Resuming from checkpoint at step 3" in outputs[0]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["3", "6", "6.unreadable"]
    assert_same_metrics(metrics_by_step(tmp_path / "run"), metrics_by_step(tmp / "single"),
                        range(4, 7))  # fmt: skip


@pytest.mark.slow  # 84 s; the default suite stops one process by SIGTERM (test_reliability)
def test_sigterm_to_one_process_stops_both_at_the_same_step(runs, tmp_path):
    tmp, _, _ = runs
    workdir = tmp_path / "run"
    processes = start_two_processes(workdir, tmp, steps=200)
    metrics_file = workdir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (
        metrics_file.exists() and len(metrics_file.read_text().splitlines()) >= 3
    ):
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGTERM)  # only process 1 is told, as on a real pod
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[1][-2000:]
    steps = {int(o.split("saved a checkpoint at step ")[1].split(";")[0])
             for o in outputs if "Preempted" in o}  # fmt: skip
    assert len(steps) == 1 and all("Preempted" in o for o in outputs)
    (step,) = steps
    assert 3 <= step < 200 and (workdir / "checkpoints" / str(step)).is_dir()


def test_processes_with_different_vocabularies_stop_before_the_data_build(runs, tmp_path):
    """Each host may train its own copy of the vocabulary; copies that differ (here two tokens
    swapped on process 1) stop both processes with the error, before the corpus is read."""
    tmp, _, _ = runs
    tokens = (tmp / "single" / "vocab.txt").read_text().splitlines()
    swapped = [*tokens[:5], tokens[6], tokens[5], *tokens[7:]]
    for process, vocab in enumerate([tokens, swapped]):
        (tmp_path / f"vocab{process}").mkdir()
        (tmp_path / f"vocab{process}" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    processes = start_two_processes(
        tmp_path / "run", tmp, vocab_dir=str(tmp_path / "vocab{process}")
    )
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert all(p.returncode != 0 for p in processes), outputs[0][-2000:]
    for output in outputs:
        assert "processes built different vocabularies" in output, output[-2000:]
        assert "Pretraining data:" not in output  # the data build's summary line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({1: {"learning_rate": 0.01}}, "process 1 was given another config than process 0"),
        ({1: {"corpus": "GENESIS"}}, "process 1 sees other corpus files than process 0"),
    ],
)
def test_processes_given_different_configs_or_files_stop_before_anything_is_written(
    runs, tmp_path, overrides, message
):
    """A stale checkout or a partial corpus copy on one host: until 2026-12-06 both processes
    trained, each updating its own copy of the parameters (with its own learning rate)."""
    tmp, _, _ = runs
    genesis = SAMPLE_CORPUS.replace("*", "genesis")
    overrides = {p: {k: genesis if v == "GENESIS" else v for k, v in o.items()}
                 for p, o in overrides.items()}  # fmt: skip
    processes = start_two_processes(tmp_path / "run", tmp, overrides=overrides)
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert all(p.returncode != 0 for p in processes), outputs[0][-2000:]
    for output in outputs:
        assert message in output, output[-2000:]
    run = tmp_path / "run"  # made, empty, by validate's check of the workdir, if at all
    assert not (run.exists() and list(run.iterdir()))


def test_a_workdir_the_processes_do_not_share_is_one_line(runs, tmp_path):
    """Each process given a directory of its own (as a workdir on each host's local disk):
    until 2026-12-06 the first checkpoint save waited forever for the other's files."""
    tmp, _, _ = runs
    processes = start_two_processes(str(tmp_path / "run{process}"), tmp)
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert all(p.returncode != 0 for p in processes), outputs[0][-2000:]
    for output in outputs:
        assert "is not shared: process 1 cannot see the files process 0 writes" in output
    assert not (tmp_path / "run0" / "checkpoints").exists()


@pytest.mark.slow  # two processes against one run in the default suite
def test_hybrid_mesh_with_processes_as_dcn_slices_equals_one_process(runs, tmp_path):
    """dcn_mesh_shape={'data': 2}: each process is a slice (granule) holding 4 devices (ICI);
    the data axis spans both over the slow network. Same numbers as 8 devices in one process."""
    tmp, _, _ = runs
    run_two_processes(tmp_path / "run", tmp, dcn_data=2)
    assert_same_metrics(metrics_by_step(tmp_path / "run"), metrics_by_step(tmp / "single"),
                        range(1, 7))  # fmt: skip
