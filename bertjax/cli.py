"""`bertjax COMMAND --flags`: thin entry point; every command calls a library function.

bertjax train --config=configs/cpu_smoke.py --workdir=/tmp/smoke [--config.field=value ...]
"""

import logging as python_logging
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bertjax.errors import UserError  # noqa: E402

USAGE = "usage: bertjax train --config=CONFIG.py --workdir=DIR [--config.FIELD=VALUE ...] [--debug]"
COMMANDS = ("train",)

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show full tracebacks instead of one-line errors.")


def _parse(argv: list[str]) -> str:
    """Parses `bertjax COMMAND [flags]`; returns COMMAND. Bad usage: usage line and exit 2."""
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"bertjax: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    try:
        FLAGS(argv[:1] + argv[2:])
    except Exception as e:  # absl: flags.Error; ml_collections overrides: AttributeError, ...
        message = " ".join(str(e).split())
        if isinstance(e, AttributeError | KeyError):
            message = f"unknown config field {message}; see configs/base.py for the fields"
        print(f"bertjax: bad flag: {message}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    return command


def _load_config():
    """The --config ConfigDict (loaded lazily by ml_collections); load errors become one line."""
    try:
        config = _CONFIG.value
        if config is not None:
            config.keys()  # the value is a lazy proxy; this loads the file
        return config
    except Exception as e:  # ml_collections raises OSError/ValueError/... with multi-line text
        detail = " ".join(str(e).split()[-12:])
        raise UserError(f"cannot load --config ({detail}); pass an existing configs/*.py") from e


def _train() -> None:
    config = _load_config()
    if config is None or not _WORKDIR.value:
        raise UserError("train needs --config=CONFIG.py and --workdir=DIR")
    from bertjax import train  # deferred: importing JAX/TF takes seconds

    summary = train.train_and_evaluate(config, _WORKDIR.value)
    print("\n".join(["Done."] + summary.lines()))


def main(argv: list[str] | None = None) -> None:
    command = _parse(list(sys.argv if argv is None else argv))
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    # Orbax logs every save and close at INFO; keep its warnings, drop the chatter.
    logging.get_absl_logger().addFilter(
        lambda record: record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname
    )
    try:
        {"train": _train}[command]()
    except (UserError, FloatingPointError) as e:
        if _DEBUG.value:
            traceback.print_exc()
        print(f"bertjax: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bertjax: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
