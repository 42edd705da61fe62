"""`bertjax COMMAND [--flags] [arguments]`: thin entry point; each command calls a library function.

bertjax train --config=configs/cpu_smoke.py --workdir=/tmp/smoke [--config.field=value ...]
bertjax export --workdir=/tmp/smoke [--step=N] --out=/tmp/smoke-hf     (Hugging Face directory)
bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=/tmp/imported    (then --config.init_from)
bertjax evaluate --workdir=/tmp/smoke [--data=HELD_OUT_FILES] [--step=N | --all_steps]
bertjax finetune --task=mr --init=/tmp/smoke --workdir=/tmp/mr [--step=N] [--random_init]
bertjax predict --model=/tmp/mr/seed_0/model --input=new.jsonl --out=/tmp/mr_predictions.jsonl
bertjax fill-mask --workdir=/tmp/smoke [--step=N] [--top_k=5] "text with a [MASK] token"
bertjax bench --model=mini --seq_len=128 --batch_size=32 [--peers]

Each command parses its own flags (a fresh absl FlagValues from its table in
bertjax/commands.py): `bertjax COMMAND --help` lists them, and another command's flag is an
unknown flag. Bad usage (a flag, an argument, a missing flag, a config that does not load) prints
the command's usage and one `bertjax: error: ...` line and exits 2, before TensorFlow or JAX is
imported; a UserError raised by the library prints that one line and exits 2.
"""

from __future__ import annotations

import logging as python_logging
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Sequence

from absl import flags, logging
from ml_collections import config_flags

from bertjax import errors, host_memory, startup
from bertjax.command_flags import config_path
from bertjax.commands import COMMANDS, DEBUG_FLAG, FlagSpec
from bertjax.errors import UserError

GENERAL_HELP = (
    "`bertjax COMMAND --help` lists the flags of COMMAND. Every command also takes --debug\n"
    "(full tracebacks, TensorFlow/XLA start-up logs)."
)


def usage(name: str | None = None) -> str:
    """The usage lines of one command, or of all."""
    lines = [COMMANDS[n].usage for n in ([name] if name else COMMANDS)]
    return "usage: " + "\n       ".join(line.replace("\n", "\n       ") for line in lines)


def flag_specs(name: str) -> list[FlagSpec]:
    specs = COMMANDS[name].flags
    return [*(specs() if callable(specs) else specs), DEBUG_FLAG]


def flag_values(name: str, argv: Sequence[str]) -> flags.FlagValues:
    """A fresh FlagValues holding command `name`'s flags; `argv` is the command line, where
    ml_collections finds the --config.FIELD overrides to define."""
    fv = flags.FlagValues()
    for kind, flag_name, default, help_text in flag_specs(name):
        if kind == "config":
            config_flags.DEFINE_config_file(
                flag_name, default, help_text, flag_values=fv, sys_argv=list(argv)
            )
        elif kind.startswith("enum:"):
            choices = kind.removeprefix("enum:").split("|")
            flags.DEFINE_enum(flag_name, default, choices, help_text, flag_values=fv)
        else:
            getattr(flags, f"DEFINE_{kind}")(flag_name, default, help_text, flag_values=fv)
    return fv


def help_text(name: str) -> str:
    """`bertjax COMMAND --help`: the usage, then each of the command's flags and its default."""
    lines = [usage(name), "", "flags:"]
    for kind, flag_name, default, text in flag_specs(name):
        shown = f"--[no]{flag_name}" if kind == "bool" else f"--{flag_name}"
        if kind.startswith("enum:"):
            text = f"{kind.removeprefix('enum:')}: {text}"
        if kind == "config" and default:
            default = os.path.relpath(default)
        if isinstance(default, bool):
            default = str(default).lower()
        default = "" if default in (None, "") else f" (default: {default})"
        lines.append(textwrap.fill(f"{text}{default}", 100, initial_indent=f"  {shown:<22} ",
                                   subsequent_indent=" " * 25))  # fmt: skip
    return "\n".join(lines)


def _usage_error(name: str | None, message: str) -> None:
    print(f"{usage(name)}\nbertjax: error: {message}", file=sys.stderr)
    sys.exit(2)


def _load_config(fv: flags.FlagValues, args: Sequence[str]) -> None:
    """Loads --config (ml_collections loads lazily); load errors become one line."""
    try:
        if fv.config is not None:
            fv.config.keys()
    except Exception as e:  # ml_collections raises OSError/ValueError/... with multi-line text
        raise _config_load_error(e, _given_config(args)) from e
    given = _given_fields(args)
    if fv.config is not None and "model_size" in given:
        _apply_model_size(fv.config, given)


def _given_fields(args: Sequence[str]) -> set[str]:
    """The FIELDs of the --config.FIELD flags in `args`."""
    return {a[len("--config.") :].split("=")[0] for a in args if a.startswith("--config.")}


def _apply_model_size(config, given: set[str]) -> None:
    """--config.model_size=NAME sets the sizes NAME stands for, as the config files do (an
    ELECTRA size also its objective, packing and loss weight); fields given beside it keep
    their values. (It was recorded in config.json and ignored: a tiny config run with
    model_size=base trained L2/H128 and called it base.)"""
    from bertjax import config as base_config
    from bertjax.models.sizes import ELECTRA_SIZES, MODEL_SIZES

    name = config.model_size
    kept = {field: config[field] for field in given - {"model_size"} if field in config}
    if name in MODEL_SIZES:
        base_config.set_model_size(config, name)
    elif name.startswith("electra_") and name[len("electra_") :] in ELECTRA_SIZES:
        base_config.set_electra_size(config, name[len("electra_") :])
    else:
        electra = [f"electra_{size}" for size in ELECTRA_SIZES]
        raise UserError(
            f"--config.model_size={name!r} is unknown; choose one of "
            f"{', '.join([*MODEL_SIZES, *electra])}"
        )
    config.update(kept)


def _config_load_error(error: Exception, given: str = "") -> UserError:
    """The one line for a --config file (`given`, as on the command line) that did not load."""
    if given.split(":")[0].endswith(".json"):  # a run's config.json: Python reads `true` as a name
        run = os.path.dirname(given) or "."
        return UserError(
            f"--config={given} is a run's config.json; --config takes a Python config file: "
            f"--config={config_path('continue_from.py')}:{run} reads a run's config"
        )
    detail = " ".join(str(error).split()[-12:])
    return UserError(
        f"cannot load --config ({detail}); pass an existing config file (bertjax's: "
        f"{config_path('*.py')})"
    )


def _given_config(args: Sequence[str]) -> str:
    """The --config=VALUE of `args` ("" without one)."""
    return next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), "")


def _unknown_field_message(error: Exception, args: Sequence[str]) -> str:
    """One line for ml_collections' error on an unknown `--config.FIELD` in `args`: its text
    (inside a KeyError inside an AttributeError) is "'NAME'" plus, for a near miss, a line
    'Did you mean "OTHER" instead of "NAME"?'; NAME is the last part of a dotted FIELD."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = str(error.args[0] if error.args else error)
    name, _, rest = text.partition("\n")
    name = name.strip("'\"")
    fields = [arg[len("--config.") :].split("=")[0] for arg in args if arg.startswith("--config.")]
    field = next((f for f in fields if f.split(".")[-1] == name), name)
    suggestion = re.search(r'Did you mean "([^"]+)"', rest)
    return (
        f"unknown config field {field!r}"
        + (f" (did you mean --config.{field[: -len(name)]}{suggestion[1]}?)" if suggestion else "")
        + "; see the --config file for the fields"
    )


def _repeated_flag(flag_args: Sequence[str]) -> str:
    """The error for a flag given more than once (absl takes the last value silently: a long
    command line edited in one place); "" when each is given once."""
    values: dict[str, list[str]] = {}
    for arg in flag_args:
        if arg.startswith("-") and arg.lstrip("-"):
            flag, _, value = arg.lstrip("-").partition("=")
            values.setdefault(flag, []).append(value)
    flag, given = next(((f, v) for f, v in values.items() if len(v) > 1), ("", []))
    if not flag:
        return ""
    return f"--{flag} is given {len(given)} times ({', '.join(map(repr, given))}); give it once"


def parse(argv: Sequence[str]) -> tuple[str, flags.FlagValues, list[str]]:
    """`bertjax COMMAND [flags] [arguments]` -> (COMMAND, its parsed flags, the positional
    arguments). --help prints and exits 0; bad usage prints the usage, one error line and exits 2.
    Imports neither TensorFlow nor JAX."""
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(f"{usage()}\n\n{GENERAL_HELP}")
        sys.exit(0 if len(argv) >= 2 else 2)
    name, rest = argv[1], list(argv[2:])
    if name not in COMMANDS:
        _usage_error(None, f"unknown command {name!r}")
    command = COMMANDS[name]
    flag_args = rest[: rest.index("--")] if "--" in rest else rest
    if {"-h", "--help", "-help", "--helpfull"} & set(flag_args):
        print(help_text(name))
        sys.exit(0)
    if repeated := _repeated_flag(flag_args):
        _usage_error(name, repeated)
    try:
        fv = flag_values(name, [argv[0], *rest])
        arguments = fv([argv[0], *rest])[1:]
    except Exception as e:  # absl: flags.Error; ml_collections overrides: AttributeError, ...
        message = " ".join(str(e).split())
        config_field = isinstance(e, flags.UnrecognizedFlagError) and e.flagname.startswith(
            "config."
        )
        if config_field and "config" in command.needs and not _given_config(rest):
            message = f"--{e.flagname} sets a field of a --config file, and none is given; "
            message += command.needs_message
        elif isinstance(e, flags.UnrecognizedFlagError):
            suggestion = re.search(r"Did you mean: (\S+) \?", message)
            message = (
                f"unknown flag --{e.flagname}"
                + (f" (did you mean --{suggestion[1]}?)" if suggestion else "")
                + f"; `bertjax {name} --help` lists its flags"
            )
        elif "before a value for --config was specified" in message:
            message = message.rstrip(".") + "; put --config=FILE before its --config.FIELD flags"
        elif "failure to load" in message or _given_config(rest).split(":")[0].endswith(".json"):
            message = str(_config_load_error(e, _given_config(rest)))  # the file did not load
        elif isinstance(e, AttributeError | KeyError):
            message = _unknown_field_message(e, rest)
        elif group := re.match(r"flag --config\.([\w.]+)=.* as a ConfigDict", message):
            message = message.rstrip(".") + (
                f"; set its fields one by one: --config.{group[1]}.NAME=VALUE"
            )
        _usage_error(name, message)
    try:
        if "config" in fv:
            _load_config(fv, rest)
        if arguments and not command.takes_arguments:
            raise UserError(f"unexpected argument {arguments[0]!r} (flags are --name=value)")
        if any(fv[flag].value in (None, "") for flag in command.needs):
            raise UserError(command.needs_message)
        if command.check:
            command.check(fv, arguments)
    except UserError as e:
        _usage_error(name, str(e))
    return name, fv, arguments


def reexecutes_with_huge_pages(name: str, environ: dict[str, str] | None = None,
                               **machine) -> bool:  # fmt: skip
    """Whether `bertjax NAME` re-executes itself with huge pages (after parsing its flags, before
    TensorFlow is imported or a JAX backend starts; a pretraining config file imports the jax
    module, 1.6 s that the re-executed process pays again): only the commands whose steps run
    on the host (train, finetune, bench), and only where host_memory.should_reexec (Linux,
    glibc >= 2.35, THP madvise, no accelerator). `machine`: should_reexec's keyword arguments,
    for tests."""
    return COMMANDS[name].host_compute and host_memory.should_reexec(environ, **machine)


def _configure_logging(debug: bool) -> None:
    flags.FLAGS.mark_as_parsed()  # absl's own flags keep their defaults (no pre-parse warning)
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    handler = logging.get_absl_handler()
    # Orbax logs every save and close at INFO; keep its warnings, drop the chatter.
    handler.addFilter(
        lambda record: record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname
    )
    if not debug:
        handler.addFilter(startup.NoiseFilter())
        handler.addFilter(errors.StorageFullFilter())


def run(name: str, fv: flags.FlagValues, arguments: list[str]) -> None:
    """Runs a parsed command; a UserError is one line on stderr and exit 2."""
    if not fv.debug:
        startup.quiet_environment()
        startup.drop_closed_loop_callbacks()
    _configure_logging(fv.debug)
    try:
        if COMMANDS[name].check_config:
            COMMANDS[name].check_config(fv)
        if name != "bench":  # bench imports TensorFlow and JAX after its peers have run
            startup.import_quietly(not fv.debug, tensorflow=COMMANDS[name].tensorflow)
        COMMANDS[name].run(fv, arguments)
    except (UserError, FloatingPointError) as e:
        if fv.debug:
            traceback.print_exc()
        print(f"bertjax: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bertjax: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        full = errors.storage_full(e)
        if not full or fv.debug:
            raise
        print(
            f"bertjax: error: storage full: {full}; free space (or raise the quota) there, then "
            "re-run the same command (a run resumes from its last complete checkpoint)",
            file=sys.stderr,
        )
        sys.exit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """Parses and runs `argv` (default sys.argv) in this process."""
    run(*parse(sys.argv if argv is None else argv))


def console_main() -> None:
    """The `bertjax` console script and `python -m bertjax`: parses the flags, re-executes with
    huge pages where that pays (`reexecutes_with_huge_pages`), then runs the command."""
    name, fv, arguments = parse(sys.argv)
    if reexecutes_with_huge_pages(name):
        host_memory.reexec_with_huge_pages(["-m", "bertjax", *sys.argv[1:]])
    run(name, fv, arguments)


if __name__ == "__main__":
    console_main()
