"""Why a pytest-xdist worker died, in the suite's output.

xdist reports a dead worker as "node down: Not properly terminated" whatever killed it. CI once
lost a worker that way after a test's call had passed (2026-12-05, tests/test_finetune.py): the
signal and the memory left tell an out-of-memory kill (SIGKILL) from a native crash
(SIGSEGV/SIGABRT, whose Python stack faulthandler prints above the line). The next such death
here said "signal SIGABRT; memory available now: 20.9 GiB"; the test run alone without output
capture showed XLA aborting an all-reduce whose last participant never came (see
`xla_flags.client_threads`).
"""

import signal
from pathlib import Path


def exit_description(returncode: int | None) -> str:
    """'exit code N', 'signal SIGNAME' or 'exit status unknown' for a Popen returncode."""
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def available_memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The kernel's MemAvailable in GiB, None where there is no /proc/meminfo."""
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return None


def worker_returncode(node) -> int | None:
    """The dead worker process's returncode (execnet keeps its Popen on the gateway's IO)."""
    popen = getattr(getattr(node.gateway, "_io", None), "popen", None)
    if popen is None:
        return None
    try:
        return popen.wait(timeout=10)
    except Exception:  # a still-running or unreachable process: the line says "unknown"
        return None


def pytest_testnodedown(node, error):
    if not error:
        return
    memory = available_memory_gib()
    left = "unknown" if memory is None else f"{memory:.1f} GiB"
    reporter = node.config.pluginmanager.getplugin("terminalreporter")
    reporter.write_line(
        f"[{node.gateway.id}] worker died: {exit_description(worker_returncode(node))}; "
        f"memory available now: {left}"
    )
