"""`python -m bertjax.bench FLAGS` is the same as `bertjax bench FLAGS`."""

import sys

from bertjax import cli

sys.argv = [sys.argv[0], "bench", *sys.argv[1:]]
cli.console_main()
