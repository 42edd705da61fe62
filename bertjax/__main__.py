"""`python -m bertjax ...` is the same as the `bertjax` console script."""

from bertjax.cli import console_main

console_main()
