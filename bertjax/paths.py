"""Paths that are local or a bucket URI (gs://bucket/...).

A run trained on a TPU pod lives in a bucket. Everything that reads a corpus, a vocabulary, a
prepared corpus or a workdir (training, resume, export, fine-tuning, fill-mask, evaluation) reads
it through `etils.epath` (tf.io.gfile, or fsspec, for URIs), so it is read where it is; pathlib
would turn "gs://b/r" into the local path "gs:/b/r". Outputs that other tools write locally
(safetensors, Hugging Face, fine-tuning results) refuse a URI (`require_local`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterator

from etils import epath

from bertjax.errors import UserError

_WILDCARD = re.compile(r"[*?\[]")


def is_uri(path: str | os.PathLike) -> bool:
    """Whether `path` names a remote location (scheme://...), not a local file."""
    return "://" in str(path)


def as_path(path: str | os.PathLike) -> epath.Path:
    """A local path absolute (with ~ expanded), a URI as it is."""
    text = str(path)
    if is_uri(text):
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def require_local(path: str | os.PathLike, flag: str) -> None:
    """Raises UserError naming `flag` when `path` is a URI (for outputs that need a local
    directory, e.g. files written by safetensors or Hugging Face)."""
    if is_uri(path):
        raise UserError(
            f"{flag}={path} is not a local directory; write it locally, then copy it "
            "(e.g. `gcloud storage cp -r DIR gs://...`)"
        )


def refuse_leftovers(directory: str | os.PathLike, names, flag: str, consequence: str) -> None:
    """UserError when the output directory `directory` already holds any of `names`: files (or
    folders) an earlier run left there that this one would not overwrite and that readers of
    the directory would take for its own (`consequence` says what they would do). Nothing is
    deleted: the user removes them or picks another directory."""
    directory = pathlib.Path(directory).expanduser()
    found = [name for name in names if (directory / name).exists()]
    if found:
        them = "it" if len(found) == 1 else "them"
        raise UserError(
            f"{flag}={directory} already holds {', '.join(found)} from an earlier run, which "
            f"{consequence}; remove {them} or choose an empty {flag}"
        )


@contextlib.contextmanager
def staging_dir(parent: pathlib.Path, prefix: str) -> Iterator[pathlib.Path]:
    """A new temporary directory in `parent` (so a rename out of it stays on one file system),
    removed with whatever is left in it, however the block ends."""
    staging = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bytes_atomically(path: epath.Path | pathlib.Path, data: bytes) -> None:
    """Writes `data` to the file `path` through a file beside it renamed over it: readers
    (and a full disk or a kill mid-write) see the old file whole or the new one."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomically(path: epath.Path | pathlib.Path, text: str) -> None:
    """`write_bytes_atomically` of `text` in UTF-8."""
    write_bytes_atomically(path, text.encode("utf-8"))


def os_reason(error: OSError) -> str:
    """Why creating a directory failed, in a few words."""
    if isinstance(error, FileExistsError):
        return "a file of that name exists"
    return error.strerror or " ".join(str(error).split())[:200] or type(error).__name__


def make_local_dir(path: str | os.PathLike, flag: str) -> pathlib.Path:
    """Creates the local output directory `path` (and its parents) and returns it; what makes
    that impossible (a URI, a file of that name, no permission) is a one-line UserError naming
    `flag`."""
    require_local(path, flag)
    directory = pathlib.Path(path).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create {flag}={path}: {os_reason(e)}; choose another {flag}"
        ) from None
    if not os.access(directory, os.W_OK):
        raise UserError(f"{flag}={path} is not writable; choose another {flag}")
    return directory


# Errors of bertjax's own code, never of reaching storage.
_PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, AssertionError, MemoryError)


@contextlib.contextmanager
def remote_errors(path: str | os.PathLike) -> Iterator[None]:
    """Within it, failing to reach a URI (no network, no credentials, no such bucket: errors of
    tf.io.gfile, gcsfs or google-auth, whose types bertjax cannot list) is a one-line UserError
    naming `path`; local paths' errors pass unchanged."""
    try:
        yield
    except (UserError, *_PROGRAMMING_ERRORS):  # a bug is no network problem: its traceback
        raise
    except Exception as e:
        if not is_uri(path):
            raise
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise UserError(
            f"cannot reach {path}: {reason}; check the bucket's name, the network and your "
            "credentials (gcloud auth application-default login)"
        ) from e  # `bertjax --debug` shows the cause


def glob_uri(pattern: str) -> list[str]:
    """Sorted files matching a URI pattern (gs://bucket/corpus/*.jsonl.gz, one `*` per level;
    `**` is refused, as by epath: it lists a whole bucket); a name without wildcards matches
    itself when it exists."""
    parts = pattern.split("/")
    first = next((i for i, part in enumerate(parts) if _WILDCARD.search(part)), None)
    if first is not None and (first < 3 or "**" in pattern):  # parts: "gs:", "", "bucket", ...
        raise UserError(
            f"{pattern!r}: use wildcards only below the bucket and no '**' "
            "(e.g. gs://bucket/corpus/*.jsonl.gz)"
        )
    with remote_errors(pattern):
        if first is None:
            return [pattern] if epath.Path(pattern).exists() else []
        root = epath.Path("/".join(parts[:first]))
        return sorted(str(path) for path in root.glob("/".join(parts[first:])))
