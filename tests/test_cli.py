"""The command line: usage errors and bad configs are one line and exit code 2, printed before
anything is read, written or compiled."""

import re
import subprocess
import sys

import pytest

from bertjax.cli import USAGE

# Lines TensorFlow's and XLA's native libraries print to stderr while they load (glog format, from
# .cc files); bertjax's own log lines come from .py files and are not excused.
NATIVE_LIBRARY_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \S+\s+\d+ [\w./-]+\.cc:\d+\] .*"
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bertjax", *args], capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str, *untouched) -> None:
    """Exit code 2; stderr holds one line from bertjax (then the usage text, after a bad flag or
    command) and nothing else but native libraries' load messages: no traceback, no log line
    (a vocabulary trained, a step compiled), nothing on stdout; no path in `untouched` exists."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not NATIVE_LIBRARY_LINE.fullmatch(line)]
    if lines[1:] == USAGE.splitlines():
        lines = lines[:1]
    assert len(lines) == 1 and lines[0].startswith("bertjax: "), result.stderr
    assert expected in lines[0]
    assert result.stdout == ""
    for path in untouched:
        assert not path.exists(), f"{path} was created before the error"


SMOKE = ("train", "--config=configs/cpu_smoke.py", "--workdir={tmp}/run")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("train", "--no_such_flag=1"), "no_such_flag"),
        ((*SMOKE, "--config.nope=3"), "unknown config field"),
        (("train", "--config=configs/does_not_exist.py", "--workdir={tmp}/run"), "does_not_exist"),
        (
            ("train", "--config=configs/cpu_smoke.py"),
            "train needs --config=CONFIG.py and --workdir",
        ),
        (
            (*SMOKE, "--config.num_attention_heads=3"),
            "hidden_size=128 is not divisible by num_attention_heads=3",
        ),
        ((*SMOKE, "--config.corpus=/nonexistent/*.jsonl"), "/nonexistent/*.jsonl"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, expected, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in args]
    if "--config=configs/cpu_smoke.py" in args:
        args.append(f"--config.cache_dir={tmp_path / 'cache'}")  # where a vocabulary would go
    result = run_cli(*args)
    assert_one_line_error(result, expected, tmp_path / "run", tmp_path / "cache")


def test_no_command_prints_usage():
    result = run_cli()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: bertjax train")


def test_partial_distributed_flags_are_refused(tmp_path):
    result = run_cli("train", "--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}",
                     "--num_processes=2")  # fmt: skip
    assert_one_line_error(
        result, "give all of --coordinator_address, --num_processes and --process_id",
        tmp_path / "run",
    )  # fmt: skip


def test_print_sharding_shows_how_each_parameter_is_split(tmp_path):
    from configs import base

    result = run_cli(
        "train", "--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}",
        "--print_sharding", f"--config.corpus={base.SAMPLE_CORPUS.replace('*', 'inaugural')}",
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
    from configs import base

    corpus = base.SAMPLE_CORPUS.replace("*", "genesis")
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
