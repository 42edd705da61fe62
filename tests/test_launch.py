"""Launch scripts (dry runs and fake gcloud/srun on PATH) and the pod configs."""

import ast
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from bertjax import sharding
from bertjax.config import validate
from tests.helpers import CONFIGS_DIR, load_config

REPO = Path(__file__).resolve().parent.parent
TPU_SCRIPT = REPO / "launch" / "tpu_pretrain.sh"
SLURM_SCRIPT = REPO / "launch" / "gpu_slurm.sh"
JAX_VERSION = re.search(r"^jax==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
LIBTPU = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"
NOT_RUNNING = (
    'if [ -f ~/bertjax-logs/train.pid ] && kill -0 "$(cat ~/bertjax-logs/train.pid)" 2>/dev/null;'
    ' then echo "bertjax is still running on $(hostname) (pid $(cat ~/bertjax-logs/train.pid));'
    ' stop it first" >&2; exit 1; fi; '
)
POD_CONFIGS = [
    "bert_base_phase1",
    "bert_base_phase2",
    "bert_large_phase1",
    "bert_large_phase2",
    "tpu_v5p_128_fsdp",
    "electra_base",
    "electra_large",
]


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run_script(script: Path, env: dict, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """Runs a launch script with only PATH/HOME from the outside plus `env`."""
    base_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(script), *args],
        env={**base_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or REPO,
    )


def commands(result: subprocess.CompletedProcess) -> list[str]:
    """The `+ ...` lines, without the prefix."""
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def shell_words(line: str) -> list[str]:
    """The words bash makes of a printed command line (bash, not shlex: it may use $'...')."""
    result = subprocess.run(
        ["bash", "-c", f"set -- {line}; printf '%s\\0' \"$@\""],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\0")[:-1]


def remote_command(line: str) -> str:
    """The --command=... of a printed `gcloud ... ssh` line, as the worker's shell receives it."""
    (command,) = [w for w in shell_words(line) if w.startswith("--command=")]
    return command.removeprefix("--command=")


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not commands(result), "nothing may run before the settings are checked"


# --- launch/tpu_pretrain.sh ----------------------------------------------------------------------


@pytest.fixture
def tpu_env(tmp_path):
    return {
        "DRY_RUN": "1",
        "TMPDIR": str(tmp_path),
        "TPU_NAME": "bert-pod",
        "ZONE": "us-east5-a",
        "ACCELERATOR_TYPE": "v5p-128",
        "CONFIG": "configs/tpu_v5p_128_fsdp.py",
        "WORKDIR": "gs://my-bucket/runs/large",
    }


def setup_command(fetch: str) -> str:
    return (
        f"{NOT_RUNNING}rm -rf ~/bertjax && {fetch}"
        " && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --user uv"
        " && ~/.local/bin/uv venv --quiet --allow-existing --python 3.11 ~/bertjax-venv"
        " && ~/.local/bin/uv pip install --quiet --python ~/bertjax-venv/bin/python"
        f' -r ~/bertjax/requirements.txt -e ~/bertjax "jax[tpu]=={JAX_VERSION}"'
        f" --find-links {LIBTPU}"
    )


def train_command(bertjax_args: str) -> str:
    return (
        f"{NOT_RUNNING}mkdir -p ~/bertjax-logs && cd ~/bertjax && {{ setsid nohup"
        f" ~/bertjax-venv/bin/bertjax train {bertjax_args}"
        " > ~/bertjax-logs/train.log 2>&1 < /dev/null & echo $! > ~/bertjax-logs/train.pid; }"
    )


def test_tpu_dry_run_prints_every_command_exactly(tpu_env, tmp_path):
    tpu_env["SPOT"] = "1"
    result = run_script(TPU_SCRIPT, tpu_env, "--config.corpus=gs://my-bucket/c/*.jsonl.gz")
    assert result.returncode == 0, result.stderr
    tarball = tmp_path / "bertjax-bert-pod.tar.gz"
    where = "--zone=us-east5-a"
    ssh = f"gcloud compute tpus tpu-vm ssh bert-pod {where} --worker=all"
    fetch = "mkdir -p ~/bertjax && tar -xzf ~/bertjax.tar.gz -C ~/bertjax"
    train = (
        "--config=configs/tpu_v5p_128_fsdp.py --workdir=gs://my-bucket/runs/large --distributed"
        ' "--config.corpus=gs://my-bucket/c/*.jsonl.gz"'
    )
    assert commands(result) == [
        f'gcloud compute tpus tpu-vm describe bert-pod {where} "--format=value(state)"',
        f"gcloud compute tpus tpu-vm create bert-pod {where} --accelerator-type=v5p-128"
        " --version=v2-alpha-tpuv5 --spot",
        f"git -C {REPO} archive --format=tar.gz --output={tarball} HEAD",
        f"gcloud compute tpus tpu-vm scp {tarball} bert-pod:bertjax.tar.gz {where}"
        " --worker=all --recurse",
        f"{ssh} {shlex.quote('--command=' + setup_command(fetch))}",
        f"{ssh} {shlex.quote('--command=' + train_command(train))}",
    ]
    assert "dry run: nothing was run" in result.stdout
    assert not tarball.exists()


def test_tpu_printed_commands_parse_back_to_the_intended_arguments(tpu_env):
    extra = ["--config.corpus=gs://b/c/*.jsonl.gz", "--config.text_field=body text", "--x=it's"]
    result = run_script(TPU_SCRIPT, tpu_env, *extra)
    assert result.returncode == 0, result.stderr
    train_line = commands(result)[-1]
    remote = remote_command(train_line)
    bertjax_part = remote.split("setsid nohup ", 1)[1].split(" > ~/bertjax-logs/", 1)[0]
    assert shlex.split(bertjax_part) == [
        "~/bertjax-venv/bin/bertjax",
        "train",
        "--config=configs/tpu_v5p_128_fsdp.py",
        "--workdir=gs://my-bucket/runs/large",
        "--distributed",
        *extra,
    ]
    for line in commands(result):
        if " ssh " in line:
            check = subprocess.run(["bash", "-n", "-c", remote_command(line)], capture_output=True)
            assert check.returncode == 0, (line, check.stderr)


def test_tpu_queued_resource_with_spot_and_project(tpu_env):
    tpu_env.update(QUEUED="1", SPOT="1", PROJECT="my-project", ACCELERATOR_TYPE="v4-32")
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    where = "--zone=us-east5-a --project=my-project"
    describe_qr = "gcloud compute tpus queued-resources describe bert-pod"
    describe_qr += f' {where} "--format=value(state.state)"'
    assert commands(result)[:4] == [
        f'gcloud compute tpus tpu-vm describe bert-pod {where} "--format=value(state)"',
        describe_qr,
        f"gcloud compute tpus queued-resources create bert-pod --node-id=bert-pod {where}"
        " --accelerator-type=v4-32 --runtime-version=tpu-ubuntu2204-base --spot",
        describe_qr,  # waits until the request is ACTIVE
    ]
    assert not any("tpu-vm create" in c for c in commands(result))
    assert all(where in c for c in commands(result) if c.startswith("gcloud"))


def test_tpu_preemptible(tpu_env):
    tpu_env.update(PREEMPTIBLE="1", ACCELERATOR_TYPE="v5litepod-16")
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert commands(result)[1] == (
        "gcloud compute tpus tpu-vm create bert-pod --zone=us-east5-a"
        " --accelerator-type=v5litepod-16 --version=v2-alpha-tpuv5-lite --preemptible"
    )


@pytest.mark.parametrize(
    "accelerator, runtime",
    [
        ("v4-32", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-128", "v2-alpha-tpuv5"),
        ("v6e-64", "v2-alpha-tpuv6e"),
    ],
)
def test_tpu_runtime_version_defaults_per_generation(tpu_env, accelerator, runtime):
    tpu_env["ACCELERATOR_TYPE"] = accelerator
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert f" --accelerator-type={accelerator} --version={runtime}" in commands(result)[1]


def test_tpu_runtime_version_override(tpu_env):
    tpu_env.update(ACCELERATOR_TYPE="v9-8", RUNTIME_VERSION="my-runtime")
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert commands(result)[1].endswith("--accelerator-type=v9-8 --version=my-runtime")


def test_tpu_clone_instead_of_upload(tpu_env):
    tpu_env.update(REPO_URL="https://example.com/bertjax.git", REPO_REF="v1.0")
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("git ") or " scp " in c for c in commands(result))
    fetch = (
        "git clone --quiet https://example.com/bertjax.git ~/bertjax"
        " && git -C ~/bertjax checkout --quiet v1.0"
    )
    assert remote_command(commands(result)[-2]) == setup_command(fetch)


def test_tpu_vocab_file_is_copied_and_passed(tpu_env, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n")
    tpu_env["VOCAB_FILE"] = str(vocab)
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert (
        f"gcloud compute tpus tpu-vm scp {vocab} bert-pod:bertjax-vocab.txt --zone=us-east5-a"
        " --worker=all"
    ) in commands(result)
    setup = remote_command(commands(result)[-2])
    copy = "cp ~/bertjax-vocab.txt ~/bertjax-vocab/vocab.txt"
    assert f"&& mkdir -p ~/bertjax-vocab && {copy} &&" in setup
    assert " --distributed --config.vocab_dir=../bertjax-vocab >" in commands(result)[-1]

    tpu_env["VOCAB_FILE"] = "gs://my-bucket/vocab.txt"
    result = run_script(TPU_SCRIPT, tpu_env)
    assert result.returncode == 0, result.stderr
    assert not any("bertjax-vocab.txt" in c for c in commands(result))
    setup = remote_command(commands(result)[-2])
    assert "gcloud storage cp gs://my-bucket/vocab.txt ~/bertjax-vocab/vocab.txt" in setup


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"WORKDIR": None}, ("set WORKDIR",)),
        ({"WORKDIR": "/tmp/run"}, ("WORKDIR must be a gs:// path", "/tmp/run")),
        ({"WORKDIR": "gs://"}, ("WORKDIR must be a gs:// path",)),
        ({"TPU_NAME": None}, ("set TPU_NAME",)),
        ({"ZONE": ""}, ("set ZONE",)),
        ({"ACCELERATOR_TYPE": None}, ("set ACCELERATOR_TYPE",)),
        ({"CONFIG": None}, ("set CONFIG",)),
        ({"CONFIG": "configs/nope.py"}, ("CONFIG=configs/nope.py is not a file",)),
        ({"ACCELERATOR_TYPE": "v9-8"}, ("no default RUNTIME_VERSION", "set RUNTIME_VERSION")),
        ({"SPOT": "1", "PREEMPTIBLE": "1"}, ("not both",)),
        ({"QUEUED": "1", "PREEMPTIBLE": "1"}, ("queued resources take SPOT=1",)),
        ({"VOCAB_FILE": "/nonexistent/vocab.txt"}, ("VOCAB_FILE=/nonexistent/vocab.txt",)),
    ],
)
def test_tpu_bad_settings_are_one_line_and_exit_2(tpu_env, change, fragments):
    for name, value in change.items():
        if value is None:
            tpu_env.pop(name)
        else:
            tpu_env[name] = value
    result = run_script(TPU_SCRIPT, tpu_env)
    assert_one_line_error(result, "tpu_pretrain.sh: error:", *fragments)


def test_tpu_refuses_a_config_git_does_not_track(tpu_env, tmp_path):
    """The workers get `git archive HEAD`: an untracked config was accepted (it is a local
    file), the VM created and the code uploaded without it, and every worker's training failed
    in the background. Refused in one line, dry run included; an edited one is noted."""
    repo = tmp_path / "repo"
    (repo / "launch").mkdir(parents=True)
    (repo / "configs").mkdir()
    for name in ("tpu_pretrain.sh", "common.sh"):
        shutil.copy(REPO / "launch" / name, repo / "launch" / name)
    shutil.copy(REPO / "requirements.txt", repo / "requirements.txt")  # the jax pin is read
    (repo / "configs" / "tracked.py").write_text("# a config\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (repo / "configs" / "mine.py").write_text("# not committed\n")
    script = repo / "launch" / "tpu_pretrain.sh"
    result = run_script(script, tpu_env | {"CONFIG": "configs/mine.py"}, cwd=repo)
    assert_one_line_error(result, "tpu_pretrain.sh: error:", "CONFIG=configs/mine.py is not "
                          "committed", "git archive HEAD")  # fmt: skip
    (repo / "configs" / "tracked.py").write_text("# edited\n")
    result = run_script(script, tpu_env | {"CONFIG": "configs/tracked.py"}, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "CONFIG=configs/tracked.py has uncommitted changes" in result.stderr


@pytest.fixture
def fake_gcloud(tmp_path):
    """A gcloud on PATH that logs its arguments and answers `describe` from FAKE_TPU_STATE."""
    bin_dir = tmp_path / "bin"
    write_executable(
        bin_dir / "gcloud",
        "#!/usr/bin/env bash\n"
        'echo "$*" >> "$FAKE_GCLOUD_LOG"\n'
        'case "$*" in\n'
        '  "compute tpus tpu-vm describe"*)\n'
        '    [[ -n "${FAKE_TPU_STATE:-}" ]] || exit 1; echo "$FAKE_TPU_STATE" ;;\n'
        '  "compute tpus queued-resources describe"*)\n'
        '    [[ -f "$FAKE_QR_STATE" ]] || exit 1; cat "$FAKE_QR_STATE" ;;\n'
        '  "compute tpus queued-resources create"*) echo ACTIVE > "$FAKE_QR_STATE" ;;\n'
        '  "compute tpus queued-resources delete"*) rm "$FAKE_QR_STATE" ;;\n'
        "esac\n",
    )
    log = tmp_path / "gcloud.log"

    queued_state = tmp_path / "queued_resource_state"

    def run(env: dict, state: str, queued: str = "") -> tuple[subprocess.CompletedProcess, list]:
        env = {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_GCLOUD_LOG": str(log)}
        env.pop("DRY_RUN")
        env.update(FAKE_TPU_STATE=state, FAKE_QR_STATE=str(queued_state))
        queued_state.unlink(missing_ok=True)
        if queued:
            queued_state.write_text(queued + "\n")
        log.unlink(missing_ok=True)
        result = run_script(TPU_SCRIPT, env)
        calls = log.read_text().splitlines() if log.exists() else []
        return result, [" ".join(c.split()[:4]) for c in calls]

    return run


def test_tpu_reuses_a_ready_vm(tpu_env, fake_gcloud, tmp_path):
    result, calls = fake_gcloud(tpu_env, "READY")
    assert result.returncode == 0, result.stderr
    assert calls == [
        "compute tpus tpu-vm describe",
        "compute tpus tpu-vm scp",
        "compute tpus tpu-vm ssh",
        "compute tpus tpu-vm ssh",
    ]
    assert "reusing TPU VM bert-pod" in result.stdout
    assert f"git -C {REPO} archive" in result.stdout  # ran for real, then removed after upload
    assert not (tmp_path / "bertjax-bert-pod.tar.gz").exists()


def test_tpu_replaces_a_preempted_vm(tpu_env, fake_gcloud):
    result, calls = fake_gcloud(tpu_env, "PREEMPTED")
    assert result.returncode == 0, result.stderr
    assert calls[:3] == [
        "compute tpus tpu-vm describe",
        "compute tpus tpu-vm delete",
        "compute tpus tpu-vm create",
    ]
    tpu_env["QUEUED"] = "1"
    result, calls = fake_gcloud(tpu_env, "PREEMPTED", queued="SUSPENDED")
    assert result.returncode == 0, result.stderr
    assert calls[:5] == [
        "compute tpus tpu-vm describe",
        "compute tpus queued-resources delete",
        "compute tpus queued-resources describe",
        "compute tpus queued-resources create",
        "compute tpus queued-resources describe",
    ]


def test_tpu_waits_for_a_queued_request_already_in_line(tpu_env, fake_gcloud):
    tpu_env["QUEUED"] = "1"
    result, calls = fake_gcloud(tpu_env, "", queued="ACTIVE")
    assert result.returncode == 0, result.stderr
    assert "queued resource bert-pod exists (ACTIVE); waiting for it" in result.stdout
    assert "compute tpus queued-resources create" not in calls


def test_tpu_refuses_a_vm_in_another_state(tpu_env, fake_gcloud):
    result, calls = fake_gcloud(tpu_env, "CREATING")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "TPU VM bert-pod is CREATING" in result.stderr
    assert calls == ["compute tpus tpu-vm describe"]


def test_tpu_worker_command_starts_training_in_background_once(tpu_env, tmp_path):
    """Runs the printed worker command in a fake home: bertjax starts detached, logs, and a
    second launch while it runs is refused."""
    result = run_script(TPU_SCRIPT, tpu_env, "--config.batch_size=64")
    worker_command = remote_command(commands(result)[-1])
    home = tmp_path / "home"
    (home / "bertjax").mkdir(parents=True)
    write_executable(
        home / "bertjax-venv" / "bin" / "bertjax",
        '#!/usr/bin/env bash\necho "$PWD $*" > ~/args.txt\nsleep 30\n',
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    first = subprocess.run(
        ["bash", "-c", worker_command], env=env, capture_output=True, text=True, timeout=30
    )
    assert first.returncode == 0, first.stderr
    pid = int((home / "bertjax-logs" / "train.pid").read_text())
    try:
        deadline = time.monotonic() + 20
        while not (home / "args.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (home / "args.txt").read_text().split() == [
            str(home / "bertjax"),
            "train",
            "--config=configs/tpu_v5p_128_fsdp.py",
            "--workdir=gs://my-bucket/runs/large",
            "--distributed",
            "--config.batch_size=64",
        ]
        second = subprocess.run(
            ["bash", "-c", worker_command], env=env, capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 1
        assert "bertjax is still running on" in second.stderr and f"(pid {pid})" in second.stderr
    finally:
        os.kill(pid, signal.SIGTERM)


# --- launch/gpu_slurm.sh -------------------------------------------------------------------------


@pytest.fixture
def slurm_env(tmp_path):
    """A fake two-node allocation: SLURM_* variables and an `scontrol` on PATH."""
    bin_dir = tmp_path / "bin"
    write_executable(
        bin_dir / "scontrol",
        "#!/usr/bin/env bash\n"
        '[[ "$1 $2 $3" == "show hostnames gpu-[001-002]" ]] || exit 1\n'
        "printf 'gpu-001\\ngpu-002\\n'\n",
    )
    return {
        "DRY_RUN": "1",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-[001-002]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_CPUS_ON_NODE": "32",
        "SLURM_NTASKS": "8",
        "SLURM_JOB_ID": "12345",  # coordinator port 61440 + 12345 % 4096 = 61497
        "CONFIG": "configs/bert_large_phase1.py",
        "WORKDIR": "/shared/runs/large",
    }


def slurm_train(extra: str = "") -> str:
    return (
        "bertjax train --config=configs/bert_large_phase1.py --workdir=/shared/runs/large"
        f" --distributed --coordinator_address=gpu-001:61497{extra}"
    )


RANKS = '--num_processes="$SLURM_NTASKS" --process_id="$SLURM_PROCID"'


def test_slurm_one_process_per_gpu(slurm_env):
    result = run_script(SLURM_SCRIPT, slurm_env, "--config.batch_size=512")
    assert result.returncode == 0, result.stderr
    program = (
        'export JAX_LOCAL_DEVICE_IDS="$SLURM_LOCALID" BERTJAX_LOCAL_DEVICES=1; '
        f'exec "$0" "$@" {RANKS}'
    )
    train = slurm_train(" --config.batch_size=512")
    per_rank = [
        f"JAX_LOCAL_DEVICE_IDS={rank % 4} BERTJAX_LOCAL_DEVICES=1 {train} --num_processes=8"
        f" --process_id={rank}"
        f"  # task {rank} on gpu-00{rank // 4 + 1}"
        for rank in range(8)
    ]
    assert commands(result) == [
        f"cd {REPO}",
        "srun --nodes=2 --ntasks=8 --ntasks-per-node=4 --cpus-per-task=8 --kill-on-bad-exit=1"
        f" --label bash -c {shlex.quote(program)} {train}",
        *per_rank,
    ]


def test_slurm_one_process_per_node(slurm_env):
    slurm_env.update(PROCS_PER="node", SLURM_GPUS_PER_NODE="h100:8")
    del slurm_env["SLURM_GPUS_ON_NODE"]
    result = run_script(SLURM_SCRIPT, slurm_env)
    assert result.returncode == 0, result.stderr
    gpus = "JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7 BERTJAX_LOCAL_DEVICES=8"
    program = f'export {gpus}; exec "$0" "$@" {RANKS}'
    assert commands(result) == [
        f"cd {REPO}",
        "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=32 --kill-on-bad-exit=1"
        f" --label bash -c {shlex.quote(program)} {slurm_train()}",
        f"{gpus} {slurm_train()} --num_processes=2 --process_id=0  # task 0 on gpu-001",
        f"{gpus} {slurm_train()} --num_processes=2 --process_id=1  # task 1 on gpu-002",
    ]


def test_slurm_coordinator_port_is_set_or_from_the_job_id(slurm_env):
    slurm_env["SLURM_JOB_ID"] = "4096"
    assert commands(run_script(SLURM_SCRIPT, slurm_env))[1].endswith("=gpu-001:61440")
    slurm_env["COORDINATOR_PORT"] = "9999"
    assert commands(run_script(SLURM_SCRIPT, slurm_env))[1].endswith("=gpu-001:9999")


def test_slurm_runs_each_task_with_its_rank_and_gpu(slurm_env, tmp_path):
    """A real (not dry) run with a fake srun that starts the tasks one after another."""
    bin_dir = tmp_path / "bin"
    write_executable(
        bin_dir / "srun",
        "#!/usr/bin/env bash\n"
        "ntasks=1; per_node=1\n"
        'while [[ "$1" == --* ]]; do\n'
        '  case "$1" in --ntasks=*) ntasks="${1#*=}" ;; --ntasks-per-node=*) per_node="${1#*=}" ;;'
        " esac\n"
        "  shift\n"
        "done\n"
        "for ((r = 0; r < ntasks; r++)); do\n"
        '  SLURM_PROCID=$r SLURM_LOCALID=$((r % per_node)) SLURM_NTASKS=$ntasks "$@" || exit\n'
        "done\n",
    )
    log = tmp_path / "bertjax.log"
    fake_bertjax = write_executable(
        tmp_path / "fake_bertjax",
        "#!/usr/bin/env bash\n"
        f'echo "GPU=$JAX_LOCAL_DEVICE_IDS/$BERTJAX_LOCAL_DEVICES $*" >> {log}\n',
    )
    slurm_env.pop("DRY_RUN")
    slurm_env.update(BERTJAX=str(fake_bertjax), SLURM_JOB_NUM_NODES="2", SLURM_GPUS_ON_NODE="2")
    result = run_script(SLURM_SCRIPT, slurm_env, "--config.corpus=/shared/c/*.jsonl.gz")
    assert result.returncode == 0, result.stderr
    train = slurm_train(" --config.corpus=/shared/c/*.jsonl.gz")
    assert log.read_text().splitlines() == [
        f"GPU={rank % 2}/1 {train.removeprefix('bertjax ')} --num_processes=4 --process_id={rank}"
        for rank in range(4)
    ]


def test_slurm_submitted_copy_finds_the_checkout_from_the_submit_dir(slurm_env, tmp_path):
    spool_copy = tmp_path / "spool" / "slurm_script"
    spool_copy.parent.mkdir()
    shutil.copy(SLURM_SCRIPT, spool_copy)
    slurm_env["SLURM_SUBMIT_DIR"] = str(REPO)
    result = run_script(spool_copy, slurm_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert commands(result)[0] == f"cd {REPO}"
    del slurm_env["SLURM_SUBMIT_DIR"]
    result = run_script(spool_copy, slurm_env, cwd=tmp_path)
    assert_one_line_error(result, "submit from the repository root")


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"CONFIG": None}, ("set CONFIG",)),
        ({"WORKDIR": None}, ("set WORKDIR",)),
        ({"SLURM_JOB_NODELIST": None}, ("not inside a SLURM job",)),
        ({"PROCS_PER": "socket"}, ("PROCS_PER must be 'gpu' or 'node'",)),
        ({"SLURM_GPUS_ON_NODE": None}, ("cannot tell the GPUs per node",)),
        ({"CONFIG": "configs/nope.py"}, ("CONFIG=configs/nope.py is not a file",)),
    ],
)
def test_slurm_bad_settings_are_one_line_and_exit_2(slurm_env, change, fragments):
    for name, value in change.items():
        if value is None:
            slurm_env.pop(name)
        else:
            slurm_env[name] = value
    result = run_script(SLURM_SCRIPT, slurm_env)
    assert_one_line_error(result, "gpu_slurm.sh: error:", *fragments)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_launch_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in (REPO / "launch").glob("*.sh"))
    result = subprocess.run(
        ["shellcheck", "-x", *scripts], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stdout


# --- pod configs ---------------------------------------------------------------------------------


def load(name: str):
    return load_config(name)


@pytest.mark.parametrize("name", POD_CONFIGS)
def test_pod_config_loads_validates_and_documents_its_command(name):
    config = load(name)
    validate(config)  # 8 forced CPU devices
    doc = ast.get_docstring(ast.parse((CONFIGS_DIR / f"{name}.py").read_text()))
    assert f"bertjax train --config=configs/{name}.py --workdir=gs://" in doc
    assert "--distributed" in doc
    assert "YOUR_BUCKET" in config.corpus  # the sample corpus is far too small for a pod run


@pytest.mark.parametrize("size, hidden, layers", [("base", 768, 12), ("large", 1024, 24)])
def test_original_bert_recipe(size, hidden, layers):
    phase1, phase2 = load(f"bert_{size}_phase1"), load(f"bert_{size}_phase2")
    for config in (phase1, phase2):
        assert (config.hidden_size, config.num_hidden_layers) == (hidden, layers)
        assert config.batch_size == 256
        assert config.optimizer == "adamw"
        assert (config.learning_rate, config.warmup_steps, config.weight_decay) == (
            1e-4,
            10_000,
            0.01,
        )
        assert config.max_position_embeddings == 512
    assert (phase1.max_seq_length, phase1.max_predictions_per_seq) == (128, 20)
    assert (phase2.max_seq_length, phase2.max_predictions_per_seq) == (512, 80)
    assert phase1.num_train_steps + phase2.num_train_steps == 1_000_000
    assert phase1.num_train_steps == 9 * phase2.num_train_steps
    assert not phase1.get("init_from")
    assert phase2.init_from.startswith("gs://YOUR_BUCKET/")  # must be overridden


@pytest.mark.parametrize(
    "name, seq, masked, predictions, batch, steps, rate",
    [  # ELECTRA's Table 6 (Clark et al. 2020), max predictions int((masked + 0.005) * seq)
        ("electra_small", 128, 0.15, 19, 128, 1_000_000, 5e-4),
        ("electra_base", 512, 0.15, 79, 256, 766_000, 2e-4),
        ("electra_large", 512, 0.25, 130, 2048, 400_000, 2e-4),
    ],
)
def test_original_electra_recipe(name, seq, masked, predictions, batch, steps, rate):
    config = load(name)
    validate(config)
    assert (config.max_seq_length, config.masked_lm_prob) == (seq, masked)
    assert config.max_predictions_per_seq == int((masked + 0.005) * seq) == predictions
    assert (config.batch_size, config.num_train_steps, config.learning_rate) == (batch, steps, rate)
    assert (config.warmup_steps, config.weight_decay, config.optimizer) == (10_000, 0.01, "adamw")
    assert (config.objective, config.discriminator_weight) == ("electra", 50.0)
    assert config.packing and config.hidden_dropout_prob == 0.1
    assert "YOUR_" in config.corpus  # a placeholder: a forgotten override fails at once


def test_v5p_128_fsdp_fits_the_slice():
    config = load("tpu_v5p_128_fsdp")
    assert config.dtype == "bfloat16"
    assert config.hidden_size == 1024 and config.num_hidden_layers == 24
    assert dict(config.mesh_shape) == {"data": 1, "fsdp": -1, "tensor": 1}
    # v5p-128: 64 chips (one JAX device each) on 16 hosts.
    assert sharding.mesh_axis_sizes(config.mesh_shape, 64) == (1, 64, 1)
    assert config.batch_size % 64 == 0 and config.batch_size % 16 == 0
    assert dict(config.logical_axis_rules)["embed"] == "fsdp"
    assert config.checkpoint_every <= 2_000  # a few minutes of work lost to a preemption
    assert config.warmup_steps < config.num_train_steps
