"""`python -m bertjax ...` is the same as the `bertjax` console script."""

from bertjax.cli import main

main()
