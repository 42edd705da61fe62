"""The command line: each command's own flags and --help; usage errors are the command's usage and
one line, exit code 2, no traceback; TensorFlow/XLA start-up notices only with --debug; which
commands re-execute with huge pages; no benchmark code imported by the library."""

import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bertjax import cli, command_flags, distributed, startup
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.errors import UserError

# Every flag each command takes (all it took before the commands had flags of their own, and
# prepare's --word_segmenter, --text_format, --short_seq_prob, --num_shards and
# --eval_holdout_fraction, vocab's --text_format and --extend, predict's --multilabel_threshold,
# finetune's --step, predict's --column_names, and vocab's, prepare's and predict's
# --text_encoding since).
OLD_FLAGS = {
    "train": ["--config=configs/cpu_smoke.py", "--workdir=w", "--print_sharding", "--distributed",
              "--coordinator_address=h:1", "--num_processes=2", "--process_id=0"],
    "export": ["--workdir=w", "--out=o", "--step=3"],
    "show-masking": ["--config=configs/cpu_smoke.py", "--num_instances=2"],
    "import": ["--from=f", "--out=o"],
    "vocab": ["--input=i", "--out=o", "--kind=sentencepiece", "--size=100", "--nouncased",
              "--model_type=bpe", "--sample_bytes=10", "--text_field=t", "--seed=1",
              "--text_format=paragraphs", "--extend=e", "--text_encoding=gb18030",
              "--character_coverage=0.99"],
    "prepare": ["--input=i", "--vocab=v", "--out=o", "--max_seq_length=64", "--dupe_factor=1",
                "--packing", "--text_field=t", "--seed=1", "--word_segmenter=rjieba",
                "--text_format=paragraphs", "--short_seq_prob=0.2", "--num_shards=2",
                "--eval_holdout_fraction=0.01", "--text_encoding=gb18030"],
    "evaluate": ["--workdir=w", "--data=d", "--step=3", "--noall_steps", "--out=o",
                 "--text_field=t", "--text_format=paragraphs", "--text_encoding=gb18030"],
    "finetune": ["--task=mr", "--init=i", "--workdir=w", "--step=3", "--random_init",
                 "--config=configs/finetune.py", "--config.num_epochs=1"],
    "fill-mask": ["--workdir=w", "--step=3", "--top_k=2", "a [MASK] b"],
    "predict": ["--model=m", "--input=i", "--out=o", "--batch_size=8", "--text_fields=a,b",
                "--tokens_field=t", "--multilabel_threshold=0.4", "--column_names=a,b",
                "--text_encoding=gb18030", "--choices_field=c",
                "--null_score_diff_threshold=-1.5"],
    "embed": ["--model=m", "--input=i", "--out=o.npy", "--text_fields=a,b", "--pooling=cls",
              "--normalize=yes", "--max_seq_length=64", "--batch_size=8", "--step=3",
              "--column_names=a,b", "--text_encoding=gb18030"],
    "bench": ["--model=tiny", "--seq_len=32", "--batch_size=4", "--steps=1", "--warmup_steps=0",
              "--precision=fp32", "--devices=1", "--attention=xla", "--attention_dropout=0",
              "--remat=full", "--positions=rotary", "--peers", "--peers_venv=v",
              "--input_pipeline", "--checkpoint", "--checkpoint_dir=c", "--profile_dir=p"],
}  # fmt: skip


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bertjax", *args], capture_output=True, text=True, timeout=timeout
    )


# Lines TensorFlow's and XLA's native libraries print to stderr while they load (glog format, from
# .cc files); bertjax's own log lines come from .py files and are not excused.
NATIVE_LIBRARY_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \S+\s+\d+ [\w./-]+\.cc:\d+\] .*"
)


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str, *untouched) -> None:
    """Exit code 2; stderr holds one line from bertjax (after a command's usage text, for bad
    usage) and nothing else but native libraries' load messages: no traceback, no log line
    (a vocabulary trained, a step compiled), nothing on stdout; no path in `untouched` exists."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if not (NATIVE_LIBRARY_LINE.fullmatch(line) or startup.is_noise(line))]  # fmt: skip
    usages = {cli.usage(), *(cli.usage(name) for name in cli.COMMANDS)}
    if "\n".join(lines[:-1]) in usages:
        lines = lines[-1:]
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


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--workdir=w", "--config.num_train_steps=3"],
            "--config.num_train_steps sets a field of a --config file, and none is given; train "
            "needs --config=CONFIG.py and --workdir=DIR",
        ),
        (
            ["--config.num_train_steps=3", "--config=configs/tiny.py", "--workdir=w"],
            "before a value for --config was specified; put --config=FILE before its",
        ),
    ],
)
def test_config_overrides_without_their_config_say_what_is_missing(args, expected, capsys):
    """Until 2026-12-06 the first said "unknown flag --config.num_train_steps"."""
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(["bertjax", "train", *args])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_model_size_given_on_the_command_line_sets_the_sizes(capsys):
    """It was a label: recorded in config.json and ignored (a tiny run called itself base)."""
    tiny = ["bertjax", "train", "--config=configs/tiny.py", "--workdir=w"]
    _, fv, _ = cli.parse([*tiny, "--config.model_size=base"])
    assert (fv.config.num_hidden_layers, fv.config.hidden_size) == (12, 768)
    assert fv.config.intermediate_size == 3072
    _, fv, _ = cli.parse([*tiny, "--config.model_size=base", "--config.num_hidden_layers=6"])
    assert (fv.config.num_hidden_layers, fv.config.hidden_size) == (6, 768)  # given beside it
    _, fv, _ = cli.parse([*tiny, "--config.model_size=electra_small"])
    assert fv.config.objective == "electra" and fv.config.hidden_size == 256
    assert fv.config.packing  # what set_electra_size sets, unless given beside it:
    _, fv, _ = cli.parse([*tiny, "--config.model_size=electra_small", "--config.packing=False"])
    assert fv.config.objective == "electra" and not fv.config.packing
    with pytest.raises(SystemExit):
        cli.parse([*tiny, "--config.model_size=huge"])
    assert "--config.model_size='huge' is unknown; choose one of tiny," in capsys.readouterr().err


def test_a_field_a_config_file_misspells_is_one_line_and_nothing_is_written(tmp_path):
    """A config file's own fields are checked as --config.FIELD overrides are: a misspelt one
    no longer trains with the field's default (num_train_steps: 900,000), for pretraining and
    fine-tuning configs alike."""
    pretraining = tmp_path / "my_pretraining.py"
    pretraining.write_text(
        "from bertjax.config import defaults\n\n\ndef get_config():\n    config = defaults()\n"
        "    config.num_train_step = 10\n    return config\n"
    )
    result = run_cli("train", f"--config={pretraining}", f"--workdir={tmp_path / 'run'}")
    assert_one_line_error(
        result, "the config has a field bertjax does not know, 'num_train_step' (did you mean "
        "num_train_steps?); fix or remove it in the --config file", tmp_path / "run",
    )  # fmt: skip
    finetuning = tmp_path / "my_finetuning.py"
    recipe = (Path(__file__).parents[1] / "configs" / "finetune.py").read_text()
    finetuning.write_text(
        recipe.replace("    return config", "    config.learning_rat = 1e-4\n    return config")
    )
    result = run_cli("finetune", "--task=mr", f"--init={tmp_path / 'init'}",
                     f"--workdir={tmp_path / 'ft'}", f"--config={finetuning}")  # fmt: skip
    assert_one_line_error(
        result, "the fine-tuning config has a field bertjax does not know, 'learning_rat' (did "
        "you mean learning_rate?)", tmp_path / "ft",
    )  # fmt: skip


def test_no_command_prints_usage():
    result = run_cli()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: bertjax train")


def test_a_process_seeing_other_devices_than_its_launcher_gave_is_refused():
    """launch/gpu_slurm.sh sets BERTJAX_LOCAL_DEVICES: a process per node that sees one GPU of
    eight (JAX's SLURM default) must stop, not train on an eighth of the node."""
    distributed.check_local_devices(8, "8")
    distributed.check_local_devices(1, None)  # not launched by the script: nothing to check
    with pytest.raises(UserError, match=r"sees 1 local device\(s\) but its launcher gave it 8"):
        distributed.check_local_devices(1, "8")
    with pytest.raises(UserError, match="must be a device count"):
        distributed.check_local_devices(1, "eight")


def test_partial_distributed_flags_are_refused(tmp_path):
    result = run_cli("train", "--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}",
                     "--num_processes=2")  # fmt: skip
    assert_one_line_error(
        result, "give all of --coordinator_address, --num_processes and --process_id",
        tmp_path / "run",
    )  # fmt: skip


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """`bertjax train` for 5 steps (metrics every 2) with stdout and stderr going to pipes, as
    in a SLURM or CI log, on an FSDP x tensor mesh with --print_sharding."""
    tmp_path = tmp_path_factory.mktemp("short_run")
    result = run_cli(
        "train", "--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}",
        "--print_sharding", f"--config.corpus={SAMPLE_CORPUS.replace('*', 'inaugural')}",
        f"--config.cache_dir={tmp_path / 'cache'}", "--config.vocab_size=2000",
        "--config.num_train_steps=5", "--config.log_every=2", "--config.warmup_steps=0",
        "--config.batch_size=8", "--config.max_seq_length=64", "--config.dupe_factor=1",
        "--config.mesh_shape.data=1", "--config.mesh_shape.fsdp=4", "--config.mesh_shape.tensor=2",
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.multi_device
def test_print_sharding_shows_how_each_parameter_is_split(short_run):
    assert "mesh {'data': 1, 'fsdp': 4, 'tensor': 2}" in short_run.stdout
    assert "\nDone.\n" in short_run.stdout  # a finished run (a stopped one: "Stopped at ...")
    kernel = "layer/0/intermediate/dense/kernel"
    line = next(x for x in short_run.stdout.splitlines() if kernel in x)
    assert line.endswith("(128, 512) P('fsdp', 'tensor')")


@pytest.mark.multi_device
def test_a_log_gets_a_progress_line_per_logged_step_and_no_startup_notices(short_run):
    assert "\r" not in short_run.stderr  # no progress bar redrawn in place
    progress = [line for line in short_run.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["1/5", "2/5", "4/5", "5/5"]
    assert all(" loss " in line and " mlm_acc " in line and " tok/s " in line for line in progress)
    assert all(" eta " in line for line in progress[1:])
    assert not [line for line in short_run.stderr.splitlines() if startup.is_noise(line)]


def test_vocab_then_prepare_from_the_command_line(tmp_path):

    corpus = SAMPLE_CORPUS.replace("*", "genesis")
    vocab = run_cli("vocab", f"--input={corpus}", "--size=1000", f"--out={tmp_path / 'vocab'}")
    assert vocab.returncode == 0, vocab.stderr[-2000:]
    assert "Wrote a 1000-token wordpiece vocabulary" in vocab.stdout
    assert "--config.vocab_size=1000 ..." in vocab.stdout  # the size to train with
    prepared = run_cli("prepare", f"--input={corpus}", f"--vocab={tmp_path / 'vocab'}",
                       f"--out={tmp_path / 'prepared'}", "--max_seq_length=64",
                       "--dupe_factor=1")  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert "Prepared " in prepared.stdout and (tmp_path / "prepared").is_dir()
    missing = run_cli("prepare", f"--input={corpus}", f"--out={tmp_path / 'x'}")
    assert missing.returncode == 2 and "prepare needs" in missing.stderr


def flag_names(command_line: list[str]) -> set[str]:
    """Names of the flags in `command_line` (--nouncased -> uncased), config fields left out."""
    flag_args = [arg[2:] for arg in command_line if arg.startswith("--")]
    names = {arg.split("=")[0] if "=" in arg else arg.removeprefix("no") for arg in flag_args}
    return {name for name in names if "." not in name}


@pytest.mark.parametrize("name", sorted(OLD_FLAGS))
def test_every_command_keeps_its_flags_and_parses_only_its_own(name, capsys):
    command, fv, arguments = cli.parse(["bertjax", name, *OLD_FLAGS[name], "--debug"])
    assert command == name and fv.debug
    assert arguments == (["a [MASK] b"] if name == "fill-mask" else [])
    foreign = set().union(*map(flag_names, OLD_FLAGS.values())) - flag_names(OLD_FLAGS[name])
    assert foreign
    for flag in sorted(foreign):
        with pytest.raises(SystemExit) as exit_info:
            cli.parse(["bertjax", name, *OLD_FLAGS[name], f"--{flag}=1"])
        assert exit_info.value.code == 2
        assert re.search(rf"error: unknown flag --{flag}[ ;]", capsys.readouterr().err)


def test_predict_passes_its_flags_on(monkeypatch, capsys):
    from bertjax import commands
    from bertjax.finetune import predict

    seen = {}

    def fake_predict_file(*args, **kwargs):
        seen.update(args=args, **kwargs)
        return predict.Predictions({"kind": "multilabel", "name": "jsonl"}, 1, "o")

    monkeypatch.setattr(predict, "predict_file", fake_predict_file)
    command, fv, arguments = cli.parse(["bertjax", "predict", *OLD_FLAGS["predict"]])
    commands.COMMANDS[command].run(fv, arguments)
    assert seen == {"args": ("m", "i", "o"), "batch_size": 8, "text_fields": "a,b",
                    "tokens_field": "t", "multilabel_threshold": 0.4,
                    "column_names": "a,b", "text_encoding": "gb18030",
                    "choices_field": "c", "null_score_diff_threshold": -1.5}  # fmt: skip
    assert "1 texts labelled by a jsonl model -> o" in capsys.readouterr().out
    _, fv, _ = cli.parse(["bertjax", "predict", "--model=m", "--input=i", "--out=o"])
    assert fv.multilabel_threshold is None  # the model's own threshold


def test_vocab_says_how_to_train_and_export_what_it_wrote(monkeypatch, capsys):
    """A cased vocabulary's "train with it" line sets --config.lowercase=False (without it,
    training refuses the vocabulary); a SentencePiece BPE one is told before pretraining that
    export will not convert its tokenizer. --character_coverage reaches run_vocab."""
    from bertjax import commands
    from bertjax.data import vocab

    seen = {}

    def fake_run_vocab(*args, **kwargs):
        seen.update(kwargs)
        return {"vocab_size": 90, "model_type": kwargs["model_type"], "lowercase": args[4],
                "kind": args[1]}  # fmt: skip

    monkeypatch.setattr(vocab, "run_vocab", fake_run_vocab)
    flags = ["--input=i", "--out=o", "--kind=sentencepiece", "--size=100"]
    for extra in (["--nouncased", "--model_type=bpe", "--character_coverage=0.99"], []):
        command, fv, arguments = cli.parse(["bertjax", "vocab", *flags, *extra])
        commands.COMMANDS[command].run(fv, arguments)
        out = capsys.readouterr().out
        cased, bpe = "--nouncased" in extra, "--model_type=bpe" in extra
        assert ("--config.vocab_size=90 --config.lowercase=False ..." in out) == cased
        assert ("its tokenizer will not export to Hugging Face" in out) == bpe
        assert seen["character_coverage"] == (0.99 if extra else None)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_lists_only_the_commands_flags(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(["bertjax", name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(cli.usage(name) + "\n")
    listed = {line.split()[0].replace("--[no]", "").removeprefix("--")
              for line in out.splitlines() if line.startswith("  --")}  # fmt: skip
    assert listed == flag_names(OLD_FLAGS[name]) | {"debug"}


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_a_bad_flag_is_the_commands_usage_and_one_line(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(["bertjax", name, "--no_such_flag=1"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    *usage, error = captured.err.strip().splitlines()
    assert "\n".join(usage) == cli.usage(name) and captured.out == ""
    assert error == (
        f"bertjax: error: unknown flag --no_such_flag; `bertjax {name} --help` lists its flags"
    )


def test_usage_errors_name_what_is_missing_or_wrong(capsys):
    cases = [
        (["export", "--workdir=w"], "export needs --workdir=DIR (a training, imported or"),
        (["export", "--workdir=w", "--out=o", "extra"], "unexpected argument 'extra'"),
        (["evaluate", "--workdir=w", "--step=1", "--all_steps"], "pass --step=N or --all_steps"),
        (["evaluate", "--workdir=w", "--text_field=content"],
         "--text_field says how to read --data=FILES; pass them, or leave it out"),
        (["fill-mask", "--workdir=w"], 'fill-mask needs --workdir=DIR and one or more "texts'),
        (["vocab", "--input=i", "--out=o", "--size=many"], "flag --size=many: invalid literal"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--wrkdir=x"],
         "unknown flag --wrkdir (did you mean --workdir?)"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--num_processes=2"],
         "give all of --coordinator_address, --num_processes and --process_id"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--coordinator_address=h",
          "--num_processes=1", "--process_id=0"], "--coordinator_address=h must be HOST:PORT"),
        (["bench", "--model=tiny", "--seq_len=64", "--batch_size=4", f"--profile_dir={__file__}"],
         "test_cli.py is a file; name a directory"),
        (["finetune", "--task=mr", "--init=i", "--workdir=w", "--config.nope=1"],
         "unknown config field 'nope'; see the --config file for the fields"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--config.lerning_rate=1"],
         "unknown config field 'lerning_rate' (did you mean --config.learning_rate?); see"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--config.mesh_shape.dta=2"],
         "unknown config field 'mesh_shape.dta' (did you mean --config.mesh_shape.data?)"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--config.mesh_shape=(2,1)"],
         "is not a dict; set its fields one by one: --config.mesh_shape.NAME=VALUE"),
        (["train", "--config=configs/cpu_smoke.py", "--workdir=w", "--config.batch_size=8",
          "--config.learning_rate=1e-4", "--config.batch_size=16"],
         "--config.batch_size is given 2 times ('8', '16'); give it once"),
        (["vocab", "--input=i", "--out=o", "--out=p"], "--out is given 2 times ('o', 'p')"),
    ]  # fmt: skip
    for args, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            cli.parse(["bertjax", *args])
        assert exit_info.value.code == 2
        *usage, error = capsys.readouterr().err.strip().splitlines()
        assert "\n".join(usage) == cli.usage(args[0])
        assert error.startswith("bertjax: error: ") and expected in error, (args, error)


def test_fill_mask_takes_its_texts_after_the_flags():
    _, fv, texts = cli.parse(["bertjax", "fill-mask", "--workdir=w", "--top_k=3", "The [MASK].",
                              "A [MASK] b", "--step=7"])  # fmt: skip
    assert texts == ["The [MASK].", "A [MASK] b"] and fv.top_k == 3 and fv.step == 7
    _, fv, texts = cli.parse(["bertjax", "fill-mask", "--workdir=w", "--", "--not-a-flag [MASK]"])
    assert texts == ["--not-a-flag [MASK]"]


def test_finetune_loads_its_recipe_unless_told_otherwise():
    _, fv, _ = cli.parse(["bertjax", "finetune", "--task=mr", "--init=i", "--workdir=w",
                          "--config.num_epochs=7"])  # fmt: skip
    assert fv.config.num_epochs == 7 and "seeds" in fv.config
    _, fv, _ = cli.parse(["bertjax", "finetune", "--task=mr", "--init=i", "--workdir=w",
                          "--config=configs/cpu_smoke.py"])  # fmt: skip
    assert fv.config.num_train_steps == 1000


LINUX = {"system": "Linux", "glibc": (2, 36), "thp_mode": "madvise", "accelerator": False}


def test_only_host_heavy_commands_reexecute_with_huge_pages():
    wanted = {name for name in cli.COMMANDS if cli.reexecutes_with_huge_pages(name, {}, **LINUX)}
    assert wanted == {"train", "finetune", "bench"}
    on_gpu = {**LINUX, "accelerator": True}
    assert not any(cli.reexecutes_with_huge_pages(name, {}, **on_gpu) for name in cli.COMMANDS)
    opted_out = {"BERTJAX_MALLOC": "system"}
    assert not cli.reexecutes_with_huge_pages("train", opted_out, **LINUX)


def test_a_usage_error_exits_before_reexecuting(monkeypatch):
    # Were console_main to re-execute before parsing, the stub would fail the test.
    from bertjax import host_memory

    monkeypatch.setattr(host_memory, "should_reexec", lambda *a, **k: True)
    monkeypatch.setattr(host_memory, "reexec_with_huge_pages", lambda args: pytest.fail("exec"))
    monkeypatch.setattr(sys, "argv", ["bertjax", "train", "--workdir=w"])
    with pytest.raises(SystemExit) as exit_info:
        cli.console_main()
    assert exit_info.value.code == 2


def test_startup_notices_are_recognised_and_other_lines_kept():
    notices = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796126653.402878   18372 port.cc:153] oneDNN custom operations are on. You "
        "may see slightly different numerical results due to floating-point round-off errors",
        "I0000 00:00:1796126653.404193   18372 cudart_stub.cc:31] Could not find cuda drivers on "
        "your machine, GPU will not be used.",
        "E0000 00:00:1796126653.404193   18372 cuda_executor.cc:1309] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "I1201 12:04:16.437226 139722779306880 xla_bridge.py:849] Unable to initialize backend "
        "'tpu': INTERNAL: Failed to open libtpu.so: libtpu.so: cannot open shared object file",
    ]
    kept = [
        "bertjax: error: corpus pattern '/nonexistent/*.jsonl' matched no files",
        "E0000 00:00:1796126653.404193   18372 some_op.cc:12] Out of memory allocating 4 GiB",
        "W1201 12:04:16.437226 139722779306880 xla_bridge.py:900] CUDA backend failed to "
        "initialize: Found CUDA version 12010, but JAX was built against version 12020",
    ]
    assert all(startup.is_noise(line) for line in notices)
    assert not any(startup.is_noise(line) for line in kept)


def test_filtered_stderr_drops_notices_written_below_python(capfd):
    notice = b"I0000 00:00:1.0   1 port.cc:153] oneDNN custom operations are on. You may see\n"
    with startup.filtered_stderr():
        os.write(2, notice + b"a real problem\n")  # as C++ writes: to the descriptor
        print("a Python line", file=sys.stderr)
    # (pytest holds Python's sys.stderr apart from descriptor 2: the order of the two may differ)
    assert sorted(capfd.readouterr().err.splitlines()) == ["a Python line", "a real problem"]
    with startup.filtered_stderr(enabled=False):
        os.write(2, notice)
    assert capfd.readouterr().err == notice.decode()


def test_every_command_hides_the_gpus_from_tensorflow(monkeypatch):
    """tf.data runs on the host: a CUDA TensorFlow must not reserve GPU memory beside JAX. The
    change is asked for before TensorFlow's runtime starts; after, its refusal is not an error."""
    tf = pytest.importorskip("tensorflow")
    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda *args: calls.append(args))
    startup.import_quietly(quiet=True)
    assert calls == [([], "GPU")]

    def refuse(*args):
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "set_visible_devices", refuse)
    startup.import_quietly(quiet=True)


# An error found after start-up (a corpus pattern that matches nothing is refused before it).
BAD_VOCAB = ("train", "--config=configs/cpu_smoke.py", "--workdir=/tmp/x",
             "--config.vocab_dir=/nonexistent")  # fmt: skip


def test_an_error_is_the_only_line_by_default_and_debug_shows_the_startup_logs():
    # Environment as a user has it: no TF_CPP_MIN_LOG_LEVEL (conftest sets it for the tests).
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")
    }
    quiet = subprocess.run([sys.executable, "-m", "bertjax", *BAD_VOCAB], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        "bertjax: error: vocab_dir='/nonexistent' has no vocab.txt; point it at a directory "
        "with one or leave it empty to train a vocabulary"
    ]
    loud = subprocess.run([sys.executable, "-m", "bertjax", *BAD_VOCAB, "--debug"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert loud.returncode == 2 and "Traceback" in loud.stderr
    if not any(startup.is_noise(line) for line in loud.stderr.splitlines()):
        pytest.skip("TensorFlow and JAX print no start-up notices on this machine")


def test_a_config_files_own_errors_come_before_tensorflow_loads_or_jax_starts(tmp_path):
    """A misspelt or out-of-range field of a pretraining or fine-tuning config, or a local corpus
    pattern that matches nothing, is refused before TensorFlow is imported and before any JAX
    backend starts (in 4-8 s instead of ~16 s), and nothing is written."""
    code = (
        "import sys\n"
        "from bertjax import cli\n"
        "try:\n"
        "    cli.main(sys.argv)\n"
        "except SystemExit as e:\n"
        "    from jax._src import xla_bridge\n"
        "    print(e.code, 'tensorflow' in sys.modules, bool(xla_bridge._backends))\n"
    )
    train = ("--config=configs/cpu_smoke.py", f"--workdir={tmp_path / 'run'}")
    cases = [
        ("train", (*train, "--config.num_attention_heads=3"), "hidden_size=128 is not divisible"),
        ("train", (*train, f"--config.corpus={tmp_path}/*.jsonl"),
         f"corpus pattern '{tmp_path}/*.jsonl' matched no files"),
        ("train", (*train, f"--config.eval_corpus={tmp_path}/held_out.txt"),
         f"corpus pattern '{tmp_path}/held_out.txt' matched no files; pass existing files or globs "
         "with --config.eval_corpus=..."),
        ("finetune", ("--task=mr", f"--init={tmp_path / 'init'}", f"--workdir={tmp_path / 'ft'}",
                      "--config.layerwise_lr_decay=0"), "layerwise_lr_decay=0.0 must be in (0, 1]"),
    ]  # fmt: skip
    for name, args, expected in cases:
        result = subprocess.run([sys.executable, "-c", code, name, *args], capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert result.stdout.split() == ["2", "False", "False"], result.stderr
        assert f"bertjax: error: {expected}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_library_never_imports_benchmark_code():
    modules = ["bertjax.cli", "bertjax.commands", "bertjax.train", "bertjax.evaluation",
               "bertjax.fill_mask", "bertjax.finetune.trainer", "bertjax.convert.export",
               "bertjax.convert.importer", "bertjax.data.prepare", "bertjax.host_memory",
               "bertjax.startup", "bertjax.progress"]  # fmt: skip
    code = (
        "import sys\n"
        f"for name in {modules!r}: __import__(name)\n"
        "from bertjax import cli\n"
        "cli.parse(['bertjax', 'export', '--workdir=w', '--out=o'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'"
        " or m.startswith('bertjax.bench')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"
    code = "import sys; from bertjax import cli; cli.parse(['bertjax', 'bench', '--help'])"
    bench = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert bench.returncode == 0 and "--profile_dir" in bench.stdout  # the command still loads it


@pytest.mark.parametrize("name", ["vocab", "prepare"])
def test_corpus_errors_of_vocab_and_prepare_name_their_input_flag(name, tmp_path, capsys):
    """The corpus reader's errors say --config.corpus (train's flag); these commands' is --input."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n")
    for corpus, expected in (
        (tmp_path / "empty.jsonl", "; check --input"),
        (tmp_path / "none*.jsonl", "matched no files; pass existing files or globs with --input="),
    ):
        argv = ["bertjax", name, f"--input={corpus}", f"--out={tmp_path / 'out'}"]
        if name == "prepare":
            argv.append(f"--vocab={tmp_path / 'vocab'}")
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert expected in error and "--config.corpus" not in error


def test_corpus_warnings_of_vocab_name_its_own_encoding_flag(tmp_path, caplog):
    """A skipped file's warning says what to pass: `bertjax vocab`'s flag is --text_encoding."""
    (tmp_path / "a.txt").write_text("A sentence of the corpus.\nAnother one of it.\n")
    (tmp_path / "b_latin1.txt").write_bytes("Café à la crème.\nÉté brûlé.\n".encode("latin-1"))
    argv = ["bertjax", "vocab", f"--input={tmp_path}/*.txt", f"--out={tmp_path / 'vocab'}",
            "--size=200"]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        cli.main(argv)
    warnings = [r.getMessage() for r in caplog.records if "not in UTF-8" in r.getMessage()]
    assert warnings and all("--text_encoding=gb18030" in w for w in warnings)
    assert not any("--config.text_encoding" in w for w in warnings)


def test_a_missing_config_file_is_one_line_with_or_without_overrides(tmp_path, capsys,
                                                                       monkeypatch):  # fmt: skip
    """With --config.FIELD overrides, ml_collections' error was its own ("Configuration is not
    available because of an earlier failure to load ..."); both name the checkout's configs.
    Commands printed for a run (bertjax import's) name a config that exists where they run."""
    monkeypatch.chdir(tmp_path)
    for overrides in ([], ["--config.hidden_size=384"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.parse(["bertjax", "train", "--config=configs/base.py", "--workdir=w", *overrides])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("bertjax: error: cannot load --config (") and "failure" not in error
        assert f"pass an existing config file (bertjax's: {command_flags.CONFIGS_DIR}/" in error
    assert command_flags.config_path("base.py") == os.path.join(
        command_flags.CONFIGS_DIR, "base.py"
    )
    assert os.path.isfile(command_flags.config_path("base.py"))
    monkeypatch.chdir(Path(command_flags.CONFIGS_DIR).parent)
    assert command_flags.config_path("base.py") == os.path.join("configs", "base.py")


@pytest.mark.parametrize("name", ["predict", "embed"])
def test_a_gbk_input_error_names_the_commands_encoding_flag(name, tmp_path, capsys,
                                                             monkeypatch):  # fmt: skip
    """The input reader's error offers fine-tuning's --config.text_encoding; predict's and
    embed's flag is --text_encoding."""
    from bertjax import embed
    from bertjax.data import text_encodings
    from bertjax.finetune import predict

    (tmp_path / "gbk.csv").write_bytes("".join(f"第{i}次入住。\n" for i in range(9)).encode("gbk"))
    reader = lambda model, path, out, **flags: text_encodings.text_encoding(path)  # noqa: E731
    monkeypatch.setattr(predict, "predict_file", reader)
    monkeypatch.setattr(embed, "embed_file", reader)
    out = "o.npy" if name == "embed" else "o.jsonl"
    argv = ["bertjax", name, "--model=m", f"--input={tmp_path}/gbk.csv", f"--out={out}"]
    with pytest.raises(SystemExit):
        cli.main(argv)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is not UTF-8 text" in error and error.endswith("--text_encoding=gb18030 (big5, ...)")
    assert "--config.text_encoding" not in error


def test_a_runs_config_json_given_as_config_names_continue_from(tmp_path, capsys):
    """ml_collections runs --config as Python: a config.json failed as "name 'true' is not
    defined"."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"lowercase": true}')
    for overrides in ([], ["--config.batch_size=8"]):
        with pytest.raises(SystemExit):
            cli.parse(["bertjax", "train", f"--config={tmp_path}/run/config.json", "--workdir=w",
                       *overrides])  # fmt: skip
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.endswith(
            f"is a run's config.json; --config takes a Python config file: --config="
            f"{command_flags.config_path('continue_from.py')}:{tmp_path}/run reads a run's config"
        )


def test_finetune_names_its_models_in_a_workdir_given_with_a_tilde(tmp_path, monkeypatch,
                                                                  capsys):  # fmt: skip
    """`--workdir=~/ft`: the results and models lines name the expanded directory (the models
    line was missing: glob found nothing under a literal ~)."""
    from bertjax.finetune import trainer

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ft" / "seed_0" / "model").mkdir(parents=True)
    monkeypatch.setattr(trainer, "finetune", lambda *args, **kwargs: {})
    monkeypatch.setattr(trainer, "results_table", lambda results: ["| table |"])
    cli.main(["bertjax", "finetune", "--task=t", "--init=i", "--workdir=~/ft"])
    out = capsys.readouterr().out.splitlines()
    assert f"results: {tmp_path}/ft/results.json" in out
    assert f"fine-tuned models: {tmp_path}/ft/seed_0/model" in out


def test_storage_full_is_read_from_oserrors_and_tensorstore_text():
    import errno

    from bertjax.errors import storage_full

    assert storage_full(OSError(errno.ENOSPC, "No space left on device", "/d/x")) == (
        "No space left on device (/d/x)"
    )
    tensorstore = ValueError(
        'OUT_OF_RANGE: Error writing "p/0.0" in OCDBT database at local file "/w/ck/": Failed '
        'writing: "/w/ck/d/ab": Failed to write 9 bytes to file 6: No space left on device '
        "[os_error_code='28']"
    )
    assert storage_full(tensorstore) == "No space left on device (/w/ck/)"
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as e:
            raise RuntimeError("save failed") from e
    except RuntimeError as chained:
        assert storage_full(chained) == "Disk quota exceeded"
    assert storage_full(OSError(errno.EACCES, "Permission denied")) == ""
    assert storage_full(ValueError("os_error_code='13'")) == ""


def test_ctrl_c_while_the_cli_imports_is_one_line():
    """Ctrl-C in the first second (absl, ml_collections importing) was a traceback."""
    interrupt_import = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bertjax.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from bertjax.__main__ import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", interrupt_import], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "bertjax: interrupted\n")


def test_only_closed_event_loop_callbacks_are_dropped(monkeypatch):
    """A save aborted by a full disk leaves ~120 "Event loop is closed" unraisable errors from
    tensorstore's callbacks; every other unraisable exception is still reported."""
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    startup.drop_closed_loop_callbacks()

    def unraisable(error):
        return types.SimpleNamespace(exc_type=type(error), exc_value=error, exc_traceback=None,
                                     err_msg=None, object=None)  # fmt: skip

    sys.unraisablehook(unraisable(RuntimeError("Event loop is closed")))
    assert reported == []
    for other in (RuntimeError("another"), ValueError("Event loop is closed")):
        sys.unraisablehook(unraisable(other))
    assert [u.exc_value.args[0] for u in reported] == ["another", "Event loop is closed"]
