"""The one exception type for problems a user can fix (bad config, corpus, checkpoint, flag)."""


class UserError(Exception):
    """A problem with the user's input. The CLI prints its message as one line and exits 2.

    The message must say what is wrong and how to fix it, e.g.
    ``corpus pattern 'data/*.jsonl' matched no files; pass existing files with
    --config.corpus=...``.
    """
