"""What the processes of a multi-process run must agree on before it trains: the same config,
the same corpus files, and one workdir that all of them see.

Each process reaches these checks on its own (a stale checkout on one host, a corpus copied
incompletely, a workdir on a host's local disk); without them the run trains on, each process's
copy of the parameters updated with its own learning rate, or hangs in its first checkpoint
save, waiting for files another host wrote. Every check compares with JAX's multihost utilities
and raises the same one-line UserError on every process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from bertjax import paths
from bertjax.errors import UserError

if TYPE_CHECKING:
    import ml_collections

SHARED_MARK = ".processes_share_this"  # written by process 0, read by the others


def _digest(text: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode("utf-8")).digest(), np.uint8)


def _differing_processes(digest: np.ndarray) -> list[int]:
    """The processes whose `digest` is not process 0's (every process gets the same list)."""
    gathered = np.asarray(multihost_utils.process_allgather(digest))
    return [index for index, row in enumerate(gathered) if not np.array_equal(row, gathered[0])]


def check_same_config(config: ml_collections.ConfigDict, host_paths: Sequence[str]) -> None:
    """UserError when any process was given another config than process 0, the `host_paths`
    fields left out (paths that may differ between hosts for the same files)."""
    if jax.process_count() == 1:
        return
    fields = json.loads(config.to_json_best_effort())
    compared = {name: value for name, value in fields.items() if name not in host_paths}
    differing = _differing_processes(_digest(json.dumps(compared, sort_keys=True)))
    if differing:
        raise UserError(
            f"process {differing[0]} was given another config than process 0 (a config file or "
            "--config.FIELD that differs between hosts: a stale checkout?); give every process "
            "the same command and files"
        )


def check_same_files(files: Sequence[str], what: str, flag: str) -> None:
    """UserError when any process resolved `files` (a corpus) to other names or sizes than
    process 0 (contents are not read: a corpus can be terabytes)."""
    if jax.process_count() == 1:
        return
    listing = "\n".join(f"{os.path.basename(path)}\t{file_size(path)}" for path in files)
    differing = _differing_processes(_digest(listing))
    if differing:
        raise UserError(
            f"process {differing[0]} sees other {what} files than process 0 ({len(files)} "
            f"there); every host must read the same files: put them on a shared file system "
            f"or a bucket, or copy them whole, and check {flag}"
        )


def file_size(path: str) -> int:
    """`path`'s size in bytes, local or a URI; -1 for a TFDS name or an unreadable path."""
    try:
        return epath.Path(path).stat().length
    except (OSError, ValueError, AttributeError):
        return -1  # a TFDS name or an unreadable path: its name alone is compared


def check_shared_workdir(workdir: epath.Path, flag: str = "--workdir") -> None:
    """UserError when a process cannot see what process 0 writes in `workdir` (a directory on
    each host's local disk): checkpoints are written by all processes into one directory, and
    Orbax waits for files that never appear. Process 0 must have created `workdir`."""
    if jax.process_count() == 1 or paths.is_uri(workdir):  # gs://: one bucket for all
        return
    mark = epath.Path(workdir) / SHARED_MARK
    token = np.frombuffer(os.urandom(16), np.uint8)
    if jax.process_index() == 0:
        mark.write_text(token.tobytes().hex())
    token = np.asarray(multihost_utils.broadcast_one_to_all(token))  # after process 0 wrote it
    try:
        seen = mark.read_text().strip() == token.tobytes().hex()
    except OSError:
        seen = False
    differing = _differing_processes(np.array([seen], np.uint8))
    if jax.process_index() == 0:
        mark.unlink(missing_ok=True)
    if differing:
        raise UserError(
            f"{flag}={workdir} is not shared: process {differing[0]} cannot see the files "
            "process 0 writes there; put it on a file system every host mounts (NFS, Lustre) "
            "or in a bucket (gs://...)"
        )
