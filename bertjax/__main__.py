"""`python -m bertjax ...` and the `bertjax` console script: imports the CLI and runs it; Ctrl-C
while the imports run (a second or two) is the one line every interrupted command prints, not
a traceback."""

import sys


def main() -> None:
    try:
        from bertjax.cli import console_main
    except KeyboardInterrupt:
        print("bertjax: interrupted", file=sys.stderr)
        sys.exit(130)
    console_main()


if __name__ == "__main__":
    main()
