"""The one exception type for problems a user can fix (bad config, corpus, checkpoint, flag)."""

import contextlib
import re
from collections.abc import Iterator, Mapping


class UserError(Exception):
    """A problem with the user's input. The CLI prints its message as one line and exits 2.

    The message must say what is wrong and how to fix it, e.g.
    ``corpus pattern 'data/*.jsonl' matched no files; pass existing files with
    --config.corpus=...``.
    """


@contextlib.contextmanager
def flags_renamed(renames: Mapping[str, str]) -> Iterator[None]:
    """Within it, a UserError naming a flag of `renames` (library code names config fields:
    ``--config.corpus``) names its replacement instead (the flag of the command that gave the
    value: ``--input``)."""
    try:
        yield
    except UserError as e:
        message = str(e)
        for old, new in renames.items():
            message = re.sub(rf"{re.escape(old)}\b", new, message)
        raise UserError(message) from None
