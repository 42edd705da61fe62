"""Host memory on CPU: back glibc's large blocks with transparent huge pages.

XLA:CPU allocates a train step's temporaries as one block (753 MiB for BERT-mini at batch
32 x 128) and frees it when the step ends. XLA's worker threads allocate from glibc's per-thread
arenas, which cannot hold a block that large, so glibc maps it fresh (mmap) and unmaps it on free
(seen with strace: one 790 MB mmap/munmap pair per step), and every step page-faults all of it
again in 4 KiB pages. Measured on the 2-core development machine (docs/performance.md): ~199,000
minor page faults and 0.49 CPU-seconds of kernel time per 1.37 s BERT-mini step, 20% of the
step's CPU time.

glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes malloc ask for transparent huge
pages (madvise) on such blocks: 2 MiB pages, so ~800 faults per step instead of ~199,000, and
the step drops to ~1.1 s. Tunables are read when a process starts, so the commands whose steps
run on the host (`bertjax train`, `finetune`, `bench`; bertjax/cli.py) re-execute themselves
once with the tunable added to GLIBC_TUNABLES (`reexec_with_huge_pages`), after their flags
parsed and before TensorFlow or JAX is imported: same process id, same arguments, otherwise the
same environment. They do so only on Linux with glibc >= 2.35 and the kernel's transparent huge
pages in `madvise` mode (with `always` large blocks get huge pages anyway; with `never` there are
none), and not where JAX will compute on an accelerator (`accelerator_present`: the host then
holds no per-step blocks). `BERTJAX_MALLOC=system` turns it off. Memory use is unchanged: blocks
are still returned to the kernel when freed.

(Keeping freed memory in the process instead, through mallopt, removed the faults as well but
grew the resident memory of the same run by 1.5 GiB, so bertjax does not do that.)
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT_VAR = "BERTJAX_MALLOC"
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
# Device files of accelerators JAX would use: NVIDIA GPUs, TPUs up to v4 (accel), TPU v5e and
# later (vfio groups).
ACCELERATOR_DEVICES = ("nvidia[0-9]*", "accel[0-9]*", "vfio/[0-9]*")


def transparent_huge_pages_mode(setting: Path = THP_SETTING) -> str | None:
    """The kernel's THP mode ('always', 'madvise', 'never'), None where there is no such file."""
    try:
        text = setting.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def _glibc_version() -> tuple[int, ...]:
    libc, version = platform.libc_ver()
    if libc != "glibc" or not version:
        return ()
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def accelerator_present(environ: dict[str, str] | None = None, dev: Path = Path("/dev")) -> bool:
    """Whether JAX will likely compute on an accelerator: JAX_PLATFORMS names another platform
    first, or (JAX_PLATFORMS unset) an accelerator's device file exists. Read before JAX is
    imported, so it looks, it does not ask JAX."""
    environ = os.environ if environ is None else environ
    platforms = [p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return platforms[0] != "cpu"
    return any(any(dev.glob(pattern)) for pattern in ACCELERATOR_DEVICES)


def huge_pages_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether GLIBC_TUNABLES already asks malloc for huge pages."""
    environ = os.environ if environ is None else environ
    return HUGE_PAGES_TUNABLE in environ.get("GLIBC_TUNABLES", "").split(":")


def should_reexec(
    environ: dict[str, str] | None = None,
    *,
    system: str | None = None,
    glibc: tuple[int, ...] | None = None,
    thp_mode: str | None = "",
    accelerator: bool | None = None,
) -> bool:
    """True where re-executing with the tunable changes something and helps (see the module
    docstring). Arguments default to this process and machine; tests pass their own."""
    environ = os.environ if environ is None else environ
    system = platform.system() if system is None else system
    glibc = _glibc_version() if glibc is None else glibc
    thp_mode = transparent_huge_pages_mode() if thp_mode == "" else thp_mode
    accelerator = accelerator_present(environ) if accelerator is None else accelerator
    return (
        environ.get(OPT_OUT_VAR, "").lower() != "system"
        and not huge_pages_requested(environ)
        and system == "Linux"
        and glibc >= (2, 35)
        and thp_mode == "madvise"
        and not accelerator
    )


def huge_pages_environment(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with the huge-pages tunable appended to GLIBC_TUNABLES (others kept)."""
    tunables = [t for t in environ.get("GLIBC_TUNABLES", "").split(":") if t]
    return {**environ, "GLIBC_TUNABLES": ":".join([*tunables, HUGE_PAGES_TUNABLE])}


def reexec_with_huge_pages(python_args: list[str]) -> None:
    """Replaces this process by `python *python_args` with the tunable set, where
    `should_reexec()`; otherwise returns. Call it before TensorFlow or JAX is imported, e.g. with
    ["-m", "bertjax", *sys.argv[1:]]."""
    if should_reexec():
        sys.stdout.flush()
        sys.stderr.flush()
        environment = huge_pages_environment(dict(os.environ))
        os.execve(sys.executable, [sys.executable, *python_args], environment)


def describe() -> str:
    """One line for reports: how this process's large host blocks are backed."""
    mode = transparent_huge_pages_mode()
    if huge_pages_requested():
        return f"glibc malloc with transparent huge pages ({HUGE_PAGES_TUNABLE}; kernel THP {mode})"
    return f"glibc/system defaults (kernel THP {mode}; {OPT_OUT_VAR}=system or not applicable)"
