"""The command line: usage errors and bad configs are one line and exit code 2, no traceback."""

import subprocess
import sys

import pytest

from bertjax.data.corpus import SAMPLE_CORPUS


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


def test_partial_distributed_flags_are_refused():
    result = run_cli("train", "--config=configs/cpu_smoke.py", "--workdir=/tmp/x",
                     "--num_processes=2")  # fmt: skip
    assert result.returncode == 2
    assert "give all of --coordinator_address, --num_processes and --process_id" in result.stderr


def test_print_sharding_shows_how_each_parameter_is_split(tmp_path):
    result = run_cli(
        "train", "--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}",
        "--print_sharding", f"--config.corpus={SAMPLE_CORPUS.replace('*', 'inaugural')}",
        f"--config.cache_dir={tmp_path / 'cache'}", "--config.vocab_size=2000",
        "--config.num_train_steps=1", "--config.warmup_steps=0", "--config.batch_size=8",
        "--config.max_seq_length=64", "--config.dupe_factor=1", "--config.progress_bar=False",
        "--config.mesh_shape.data=1", "--config.mesh_shape.fsdp=4", "--config.mesh_shape.tensor=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mesh {'data': 1, 'fsdp': 4, 'tensor': 2}" in result.stdout
    line = next(x for x in result.stdout.splitlines() if "layer/0/intermediate/dense/kernel" in x)
    assert line.endswith("(128, 512) P('fsdp', 'tensor')")


def test_vocab_then_prepare_from_the_command_line(tmp_path):

    corpus = SAMPLE_CORPUS.replace("*", "genesis")
    vocab = run_cli("vocab", f"--input={corpus}", "--size=1000", f"--out={tmp_path / 'vocab'}")
    assert vocab.returncode == 0, vocab.stderr[-2000:]
    assert "Wrote a 1000-token wordpiece vocabulary" in vocab.stdout
    prepared = run_cli("prepare", f"--input={corpus}", f"--vocab={tmp_path / 'vocab'}",
                       f"--out={tmp_path / 'prepared'}", "--max_seq_length=64",
                       "--dupe_factor=1")  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert "Prepared " in prepared.stdout and (tmp_path / "prepared").is_dir()
    missing = run_cli("prepare", f"--input={corpus}", f"--out={tmp_path / 'x'}")
    assert missing.returncode == 2 and "prepare needs" in missing.stderr
