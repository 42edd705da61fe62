"""The one exception type for problems a user can fix (bad config, corpus, checkpoint, flag)."""

import contextlib
import logging
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
