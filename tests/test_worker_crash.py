"""A dead pytest-xdist worker is reported with the signal that killed it (tests/worker_crash.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.worker_crash import exit_description

REPO = Path(__file__).resolve().parents[1]

DYING_TESTS = """
import os, signal

def test_killed():
    os.kill(os.getpid(), signal.SIGKILL)

def test_segfault():
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_a_dead_worker_is_reported_with_its_signal_and_the_memory_left(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text("from tests.worker_crash import pytest_testnodedown\n")
    (tmp_path / "test_dying.py").write_text(DYING_TESTS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    lines = re.findall(r"\[gw\d\] worker died: (.*); memory available now: (.*)", result.stdout)
    assert sorted(cause for cause, _ in lines) == ["signal SIGKILL", "signal SIGSEGV"], (
        result.stdout
    )
    assert all(re.fullmatch(r"\d+\.\d GiB", memory) for _, memory in lines), lines
    assert "2 failed" in result.stdout


def test_exit_descriptions():
    assert exit_description(-9) == "signal SIGKILL"
    assert exit_description(1) == "exit code 1"
    assert exit_description(None) == "exit status unknown"
    assert exit_description(-200) == "signal 200"
