"""The one exception type for problems a user can fix (bad config, corpus, checkpoint, flag)."""

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterator, Mapping


class UserError(Exception):
    """A problem with the user's input. The CLI prints its message as one line and exits 2.

    The message must say what is wrong and how to fix it, e.g.
    ``corpus pattern 'data/*.jsonl' matched no files; pass existing files with
    --config.corpus=...``.
    """


def _renamed(message: str, renames: Mapping[str, str]) -> str:
    for old, new in renames.items():
        message = re.sub(rf"{re.escape(old)}\b", new, message)
    return message


class _RenamingFilter(logging.Filter):
    """Rewrites the flags a log record names, as `flags_renamed` does for errors."""

    def __init__(self, renames: Mapping[str, str]):
        super().__init__()
        self.renames = renames

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        renamed = _renamed(message, self.renames)
        if renamed != message:
            record.msg, record.args = renamed, ()
        return True


@contextlib.contextmanager
def flags_renamed(renames: Mapping[str, str]) -> Iterator[None]:
    """Within it, a UserError or a warning logged through absl naming a flag of `renames`
    (library code names config fields: ``--config.corpus``) names its replacement instead (the
    flag of the command that gave the value: ``--input``)."""
    logger = logging.getLogger("absl")
    renaming = _RenamingFilter(renames)
    logger.addFilter(renaming)
    try:
        yield
    except UserError as e:
        raise UserError(_renamed(str(e), renames)) from None
    finally:
        logger.removeFilter(renaming)


# Storage full: no space, over quota, over the file-size limit. Tensorstore (Orbax's writer)
# reports the OS error as text: `... Failed to write N bytes to file 6: No space left on device
# [os_error_code='28']`.
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_TEXT = re.compile(rf"os_error_code='({'|'.join(map(str, _FULL_ERRNOS))})'")
_WRITING = re.compile(r'(?:Failed writing:|local file) "([^"]+)"')


def storage_full(error: BaseException) -> str:
    """What `error` (or an exception it was raised from) says about a storage that is full, as
    "<reason> (<path>)"; "" when it is another error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            where = f" ({error.filename})" if error.filename else ""
            return f"{error.strerror or errno.errorcode[error.errno]}{where}"
        text = str(error)
        if code := _FULL_TEXT.search(text):
            path = _WRITING.search(text)
            reason = os.strerror(int(code.group(1)))
            return f"{reason} ({path.group(1)})" if path else reason
        error = error.__cause__ or error.__context__
    return ""


class StorageFullFilter(logging.Filter):
    """Drops the log records (with their tracebacks) that Orbax's writer threads log for a full
    storage: the command ends with one line saying so (`storage_full`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and storage_full(record.exc_info[1]):
            return False
        return not (record.levelno >= logging.ERROR and _FULL_TEXT.search(record.getMessage()))


# Reading failed for a reason that passes (memory, a network or a storage service): the data
# read may be whole. Tensorstore and XLA give gRPC-style status codes in the text.
_TRANSIENT_CODES = re.compile(r"\b(RESOURCE_EXHAUSTED|UNAVAILABLE|DEADLINE_EXCEEDED|ABORTED)\b")
_TRANSIENT_WORDS = re.compile(r"out of memory|connection (reset|refused|aborted)|timed out", re.I)


def transient_reason(error: BaseException) -> str:
    """Why `error` (or one it was raised from) is likely to pass on a retry, in a few words; ""
    when it says the data itself is bad (a file missing, cut short, of another shape)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = " ".join(str(error).split())
        if isinstance(error, MemoryError | ConnectionError | TimeoutError) or (
            _TRANSIENT_CODES.search(text) or _TRANSIENT_WORDS.search(text)
        ):
            return f"{type(error).__name__}: {text[:200]}"
        error = error.__cause__ or error.__context__
    return ""
