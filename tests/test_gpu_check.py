"""The device script's rehearsal (`benchmarks/gpu_check.sh --cpu`): the same stages, limits and
summary as on the GPU, at tiny sizes, with every pass criterion met."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "benchmarks/gpu_check.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, as there
    env.update(PYTHON=sys.executable, GPU_CHECK_CPU_SCALE="8")
    return subprocess.run(["bash", SCRIPT, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip


@pytest.mark.slow  # ~2 min idle: builds the carry (wheels from the registry) and runs all stages
def test_rehearsal_runs_every_stage_and_passes_its_checks(tmp_path):
    carry, out = tmp_path / "carry", tmp_path / "out"
    built = run_script("--build-carry", str(carry), "--cpu")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = {p.name.split("-")[0] for p in (carry / "wheels").glob("*.whl")}
    assert wheels == {"absl_py", "ml_collections"}, wheels  # what the device lacks, nothing more
    checked = run_script(str(out), "--carry", str(carry), "--cpu")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = (out / "stages.log").read_text()
    assert stages.count("rc=0") == 7, stages  # none failed or skipped
    assert summary["attention_passed"] and summary["train_passed"], stages
    assert set(summary["stages_present"]) >= {"environment", "attention", "train",
        "bench-tiny-64", "bench-mini-128", "bench-tiny-64-fill", "bench-mini-128-fill"}  # fmt: skip
    train = json.loads((out / "train.json").read_text())
    assert train["loss_last"] < train["loss_first_logged"] - 0.5
    assert train["replay_started_at"] == 20 and train["replay_param_max_abs_difference"] == 0.0
