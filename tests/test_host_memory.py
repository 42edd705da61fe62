"""bertjax/host_memory.py: when a `bertjax` command re-executes itself with huge pages for
glibc's large blocks (which commands: tests/test_cli.py), and that the re-executed process gets
the tunable exactly once."""

import subprocess
import sys

import pytest

from bertjax import host_memory

LINUX = {"system": "Linux", "glibc": (2, 36), "thp_mode": "madvise", "accelerator": False}


def test_reexec_only_where_it_changes_something():
    assert host_memory.should_reexec({}, **LINUX)
    assert not host_memory.should_reexec({"BERTJAX_MALLOC": "system"}, **LINUX)
    assert not host_memory.should_reexec({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, **LINUX)
    assert not host_memory.should_reexec({}, **{**LINUX, "system": "Darwin"})
    assert not host_memory.should_reexec({}, **{**LINUX, "glibc": (2, 31)})
    assert not host_memory.should_reexec({}, **{**LINUX, "glibc": ()})  # musl
    for mode in ("always", "never", None):
        assert not host_memory.should_reexec({}, **{**LINUX, "thp_mode": mode})
    assert not host_memory.should_reexec({}, **{**LINUX, "accelerator": True})


def test_accelerator_is_read_from_jax_platforms_then_device_files(tmp_path):
    assert not host_memory.accelerator_present({}, dev=tmp_path)
    (tmp_path / "vfio").mkdir()
    (tmp_path / "vfio" / "vfio").touch()  # the VFIO control file alone: no device
    (tmp_path / "nvidiactl").touch()
    assert not host_memory.accelerator_present({}, dev=tmp_path)
    for device in ("nvidia0", "accel0", "vfio/0"):
        (tmp_path / device).touch()
        assert host_memory.accelerator_present({}, dev=tmp_path), device
        (tmp_path / device).unlink()
    (tmp_path / "nvidia0").touch()
    assert not host_memory.accelerator_present({"JAX_PLATFORMS": "cpu"}, dev=tmp_path)
    assert host_memory.accelerator_present({"JAX_PLATFORMS": "tpu,cpu"}, dev=tmp_path / "none")


def test_tunable_is_appended_to_existing_ones():
    env = host_memory.huge_pages_environment(
        {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "HOME": "/h"}
    )
    assert env == {
        "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1",
        "HOME": "/h",
    }
    assert host_memory.huge_pages_requested(env)
    assert host_memory.huge_pages_environment({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_thp_mode_is_read_from_the_kernel_setting(tmp_path):
    setting = tmp_path / "enabled"
    setting.write_text("always [madvise] never\n")
    assert host_memory.transparent_huge_pages_mode(setting) == "madvise"
    setting.write_text("[always] madvise never\n")
    assert host_memory.transparent_huge_pages_mode(setting) == "always"
    assert host_memory.transparent_huge_pages_mode(tmp_path / "missing") is None


def test_reexecuted_process_has_the_tunable_once():
    if not host_memory.should_reexec():
        pytest.skip("this machine would not re-execute (not glibc >= 2.35 with THP madvise)")
    # The re-executed child calls reexec_with_huge_pages again: were it to re-execute a second
    # time, it would become `raise SystemExit(3)` and the run would fail.
    child = (
        "import os; from bertjax import host_memory; "
        "host_memory.reexec_with_huge_pages(['-c', 'raise SystemExit(3)']); "
        "print(os.environ['GLIBC_TUNABLES']); print(host_memory.describe())"
    )
    parent = f"from bertjax import host_memory as h; h.reexec_with_huge_pages(['-c', {child!r}])"
    out = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, timeout=120, check=True
    )
    tunables, description = out.stdout.strip().splitlines()
    assert tunables == "glibc.malloc.hugetlb=1"
    assert description.startswith("glibc malloc with transparent huge pages")
