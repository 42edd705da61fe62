"""The device script's rehearsal (`benchmarks/gpu_check.sh --cpu`): the same stages, limits and
summary as on the GPU, at tiny sizes, with every pass criterion met."""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from benchmarks import gpu_check

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "benchmarks/gpu_check.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, as there
    env.update(PYTHON=sys.executable, GPU_CHECK_CPU_SCALE="8")
    return subprocess.run(["bash", SCRIPT, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip


@pytest.mark.slow  # ~3 min idle: builds the carry (wheels from the registry) and runs all stages
def test_rehearsal_runs_every_stage_and_passes_its_checks(tmp_path):
    carry, out = tmp_path / "carry", tmp_path / "out"
    built = run_script("--build-carry", str(carry), "--cpu")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = {p.name.split("-")[0] for p in (carry / "wheels").glob("*.whl")}
    # what the device may lack (TensorFlow-free config) or hold in an older version
    assert wheels == {"absl_py", "ml_collections", "flax", "optax", "orbax_checkpoint"}, wheels
    checked = run_script(str(out), "--carry", str(carry), "--cpu")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    # What comes back from the device: three files, no checkpoint, no compilation cache.
    assert sorted(p.name for p in out.iterdir()) == ["results.tgz", "stages.log", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    stages = (out / "stages.log").read_text()
    assert "carried wheels used: none" in stages  # this environment has every pinned package
    assert stages.count("rc=0") == 8, stages  # none failed or skipped
    assert summary["attention_passed"] and summary["train_passed"], stages
    assert set(summary["stages_present"]) >= {"environment", "attention", "train",
        "bench-tiny-64", "bench-mini-128", "bench-tiny-64-fill", "bench-mini-128-fill",
        "bench-tiny-64-rotary"}  # fmt: skip
    positions = {
        b["seq_len"]: b["positions"] for b in summary["bench"] if b["positions"] != "absolute"
    }
    assert positions == {64: "rotary"}, summary["bench"]
    assert {b["attention_kernel"] for b in summary["bench"]} == {"xla"}
    with tarfile.open(out / "results.tgz") as archive:
        names = set(archive.getnames())
        assert not [n for n in names if "checkpoints" in n or "jax_cache" in n], names
        train = json.loads(archive.extractfile("./train.json").read())
        assert archive.extractfile("./train-metrics.jsonl").read().count(b"\n") >= 4
        attention = json.loads(archive.extractfile("./attention.json").read())
        bench = json.loads(archive.extractfile("./bench-tiny-64.json").read())
    assert train["loss_last"] < train["loss_first_logged"] - 0.5
    assert train["replay_started_at"] == 20 and train["replay_param_max_abs_difference"] == 0.0
    assert attention["complete"] and attention["passed_without_bias"]
    assert any("dbias_error_candidate" in case for case in attention["cases"])
    assert bench["trace_kernels"] and bench["profile_lines"]


def test_carried_wheels_are_used_only_where_the_machine_lacks_or_has_older(tmp_path):
    wheels = tmp_path / "carry" / "wheels"
    wheels.mkdir(parents=True)
    for name, version in (("optax", "0.0.1"), ("optax_newer", "1.0"), ("not_installed", "1.0")):
        with zipfile.ZipFile(wheels / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{name}/__init__.py", "")
    # optax is installed in a version newer than 0.0.1: kept; the others are not installed.
    used = gpu_check.carried_wheels(tmp_path / "carry", tmp_path / "site")
    assert used == ["not_installed==1.0", "optax_newer==1.0"]
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == ["not_installed", "optax_newer"]
