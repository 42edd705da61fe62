"""The command line: usage errors and bad configs are one line and exit code 2, no traceback."""

import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bertjax", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("train", "--no_such_flag=1"), "no_such_flag"),
        (
            ("train", "--config=configs/cpu_smoke.py", "--workdir=/tmp/x", "--config.nope=3"),
            "unknown config field",
        ),
        (("train", "--config=configs/does_not_exist.py", "--workdir=/tmp/x"), "does_not_exist"),
        (
            ("train", "--config=configs/cpu_smoke.py"),
            "train needs --config=CONFIG.py and --workdir",
        ),
        (
            (
                "train",
                "--config=configs/cpu_smoke.py",
                "--workdir=/tmp/x",
                "--config.num_attention_heads=3",
            ),
            "hidden_size=128 is not divisible by num_attention_heads=3",
        ),
        (
            (
                "train",
                "--config=configs/cpu_smoke.py",
                "--workdir=/tmp/x",
                "--config.corpus=/nonexistent/*.jsonl",
            ),
            "/nonexistent/*.jsonl",
        ),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_usage():
    result = run_cli()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: bertjax train")
