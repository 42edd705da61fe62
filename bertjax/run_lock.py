"""One run at a time in a workdir.

Two runs started into one workdir (a command re-run in another terminal, a job scheduled
twice) both trained, interleaved their metrics.jsonl lines, overwrote each other's checkpoints
and config.json, and both exited 0. A run now holds an exclusive lock on WORKDIR/run.lock
(`fcntl.flock`) while it trains or fine-tunes; a second run is refused in one line naming the
holder, before it writes anything. The kernel releases the lock when the holder's process ends,
however it ends (SIGKILL included), so a killed run never leaves a stale lock behind; the file
itself stays (removing it would race with a run taking it). `bertjax vocab` and `prepare` hold
their --out the same way. Reading commands (evaluate, export, fill-mask, predict) take no lock:
they read a training run's checkpoints while it goes on.

Not covered: a bucket workdir (gs://, no file locks; one writer is the user's to ensure), and
runs on two hosts sharing a network file system whose flock is host-local (NFS without lock
support). In a multi-host run only process 0 takes the lock (the other processes share its
workdir).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from absl import logging

from bertjax import paths
from bertjax.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None

LOCK_FILE = "run.lock"


@contextlib.contextmanager
def held(
    workdir: str | os.PathLike, flag: str = "--workdir", *, lead: bool = True
) -> Iterator[None]:
    """Within it, this process holds `workdir`'s run lock (creating the directory); UserError,
    naming `flag`, when another process holds it. `lead`: whether this process takes it (in a
    multi-host run, process 0 only)."""
    if not lead or fcntl is None or paths.is_uri(workdir):
        yield
        return
    directory = Path(workdir).expanduser()
    paths.make_local_dir(directory, flag)
    try:
        lock = open(directory / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        raise UserError(
            f"cannot open {directory / LOCK_FILE}, the run lock: {paths.os_reason(e)}; remove "
            f"what is there by that name, or pass another {flag}"
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another open file, in this process or another
            lock.seek(0)
            holder = lock.read().strip() or "a process that has not said which"
            raise UserError(
                f"{flag}={workdir} is in use by another run ({holder}); wait for it to end or "
                f"stop it, or pass another {flag}"
            ) from None
        except OSError as e:  # no locks on this file system (NFS without its lock service)
            logging.warning(
                "%s: no run lock (%s): nothing stops a second run from writing here too",
                directory, paths.os_reason(e),
            )  # fmt: skip
            yield
            return
        lock.seek(0)
        lock.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
