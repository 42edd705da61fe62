"""`bertjax COMMAND [--flags] [arguments]`: thin entry point; each command calls a library function.

bertjax train --config=configs/cpu_smoke.py --workdir=/tmp/smoke [--config.field=value ...]
bertjax export --workdir=/tmp/smoke [--step=N] --out=/tmp/smoke-hf     (Hugging Face directory)
bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=/tmp/imported    (then --config.init_from)
bertjax evaluate --workdir=/tmp/smoke [--data=HELD_OUT_FILES] [--step=N | --all_steps]
bertjax finetune --task=mr --init=/tmp/smoke --workdir=/tmp/mr [--random_init] [--config.x=y]
bertjax fill-mask --workdir=/tmp/smoke [--step=N] [--top_k=5] "text with a [MASK] token"
bertjax bench --model=mini --seq_len=128 --batch_size=32 [--peers]

Each command parses its own flags (a fresh absl FlagValues from its table below): `bertjax
COMMAND --help` lists them, and another command's flag is an unknown flag. Bad usage (a flag, an
argument, a missing flag, a config that does not load) prints the command's usage and one
`bertjax: error: ...` line and exits 2, before TensorFlow or JAX is imported; a UserError raised
by the library prints that one line and exits 2.
"""

from __future__ import annotations

import dataclasses
import logging as python_logging
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from absl import flags, logging
from ml_collections import config_flags

from bertjax import host_memory, startup
from bertjax.errors import UserError

FINETUNE_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "finetune.py"
)
# A flag: (kind, name, default, help). Kinds: string, integer, float, bool, "enum:a|b|c", and
# config (an ml_collections config file, with --config.FIELD=VALUE overrides).
FlagSpec = tuple[str, str, Any, str]
CONFIG_HELP = "Config file (configs/*.py); --config.FIELD=VALUE overrides one field."
DEBUG_FLAG = ("bool", "debug", False, "Full tracebacks and TensorFlow/XLA start-up logs.")
GENERAL_HELP = (
    "`bertjax COMMAND --help` lists the flags of COMMAND. Every command also takes --debug\n"
    "(full tracebacks, TensorFlow/XLA start-up logs)."
)


@dataclasses.dataclass(frozen=True)
class Command:
    usage: str  # what follows "usage: ", without [--debug]
    flags: Sequence[FlagSpec] | Callable[[], Sequence[FlagSpec]]
    run: Callable[[flags.FlagValues, list[str]], None]  # (parsed flags, positional arguments)
    needs: tuple[str, ...] = ()  # flags without which the command cannot run ...
    needs_message: str = ""  # ... and the error that says so
    check: Callable[[flags.FlagValues, list[str]], None] | None = None  # more usage checks
    takes_arguments: bool = False  # positional arguments after the flags (fill-mask's texts)
    host_compute: bool = False  # steps run on the host on CPU: huge pages pay (host_memory.py)


def _train(fv: flags.FlagValues, arguments: list[str]) -> None:
    explicit = (fv.coordinator_address, fv.num_processes, fv.process_id)
    if fv.distributed or any(value is not None for value in explicit):
        from bertjax import distributed

        distributed.initialize(*explicit)  # before JAX's backends start
    startup.start_jax(quiet=not fv.debug)
    from bertjax import train

    summary = train.train_and_evaluate(fv.config, fv.workdir, print_sharding=fv.print_sharding)
    print("\n".join(["Done."] + summary.lines()))


def _export(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.convert import export

    print("\n".join(export.export_hf(fv.workdir, fv.out, step=fv.step).lines()))


def _import(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.convert import importer

    print("\n".join(importer.import_checkpoint(fv["from"].value, fv.out).lines()))


def _vocab(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.data import vocab

    meta = vocab.run_vocab(
        fv.input, fv.kind, fv.size, fv.out, fv.uncased, fv.sample_bytes,
        text_field=fv.text_field, model_type=fv.model_type, seed=fv.seed,
    )  # fmt: skip
    print(f"Wrote a {meta['vocab_size']}-token {fv.kind} vocabulary to {fv.out}")


def _prepare(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.data import prepare

    manifest = prepare.run_prepare(
        fv.input, fv.vocab, fv.out, max_seq_length=fv.max_seq_length,
        dupe_factor=fv.dupe_factor, seed=fv.seed, packing=fv.packing, text_field=fv.text_field,
    )  # fmt: skip
    print(
        f"Prepared {manifest['num_instances']} instances from {manifest['num_documents']} "
        f"documents ({manifest['num_tokens']} tokens) in {len(manifest['shards'])} shards: "
        f"{fv.out}"
    )


def _evaluate_check(fv: flags.FlagValues, arguments: list[str]) -> None:
    if fv.all_steps and fv.step is not None:
        raise UserError("pass --step=N or --all_steps, not both")


def _evaluate(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import evaluation

    records = evaluation.run_evaluate(
        fv.workdir, data=fv.data, steps=None if fv.step is None else [fv.step],
        all_steps=fv.all_steps, out=fv.out,
    )  # fmt: skip
    print("\n".join(evaluation.format_records(records)))


def _finetune(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.finetune import trainer

    results = trainer.finetune(fv.task, fv.init, fv.workdir, fv.config, random_init=fv.random_init)
    print("\n".join(trainer.results_table([results])))
    print(f"results: {os.path.join(fv.workdir, 'results.json')}")


FILL_MASK_NEEDS = 'fill-mask needs --workdir=DIR and one or more "texts with [MASK]"'


def _fill_mask_check(fv: flags.FlagValues, arguments: list[str]) -> None:
    if not arguments:
        raise UserError(FILL_MASK_NEEDS)


def _fill_mask(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import fill_mask

    answers = fill_mask.fill_mask(fv.workdir, arguments, step=fv.step, top_k=fv.top_k)
    print("\n".join(fill_mask.format_answers(arguments, answers)))


# bench: the benchmark package (bertjax/bench/) is imported only when the command is bench.
def _bench_flags() -> Sequence[FlagSpec]:
    from bertjax.bench import run  # stdlib, numpy and absl at import; JAX once it runs

    return run.flag_specs()


def _bench_check(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.bench import run

    run.check_flags(fv)


def _bench(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.bench import run

    run.main(fv)  # imports TensorFlow and JAX itself, after the peers (if any) have run


WORKDIR = ("string", "workdir", None, "A training workdir or a `bertjax import` directory.")
STEP = ("integer", "step", None, "Checkpoint step (default: the latest).")
CORPUS_FLAGS = (
    ("string", "input", None, "Corpus files, globs or tfds:NAME (comma-separated)."),
    ("string", "out", None, "Output directory."),
    ("string", "text_field", "text", "JSON Lines text field."),
    ("integer", "seed", 0, "Random seed."),
)
COMMANDS: dict[str, Command] = {
    "train": Command(
        "bertjax train --config=CONFIG.py --workdir=DIR [--config.FIELD=VALUE ...]\n"
        "           [--print_sharding] [--distributed | --coordinator_address=HOST:PORT\n"
        "           --num_processes=N --process_id=I]",
        (
            ("config", "config", None, CONFIG_HELP),
            ("string", "workdir", None, "Run directory: checkpoints, metrics, logs."),
            ("bool", "print_sharding", False, "Print how every parameter is split over the mesh."),
            ("bool", "distributed", False,
             "jax.distributed.initialize() (auto-detects TPU pods, SLURM)."),
            ("string", "coordinator_address", None, "HOST:PORT of process 0."),
            ("integer", "num_processes", None, "Processes in the run."),
            ("integer", "process_id", None, "This process's index."),
        ),
        _train, ("config", "workdir"), "train needs --config=CONFIG.py and --workdir=DIR",
        host_compute=True,
    ),
    "export": Command(
        "bertjax export --workdir=DIR [--step=N] --out=HF_DIR",
        (WORKDIR, ("string", "out", None, "The Hugging Face directory to write."), STEP),
        _export, ("workdir", "out"),
        "export needs --workdir=DIR (a training or imported dir) and --out=HF_DIR",
    ),
    "import": Command(
        "bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=DIR",
        (
            # "from" is a Python keyword: read it as fv["from"].value.
            ("string", "from", None, "A Hugging Face BERT directory or a TF1 checkpoint."),
            ("string", "out", None, "The model directory to write (then --config.init_from)."),
        ),
        _import, ("from", "out"), "import needs --from=HF_DIR_OR_TF1_CHECKPOINT and --out=DIR",
    ),
    "vocab": Command(
        "bertjax vocab --input=GLOB|tfds:NAME --out=DIR [--kind=wordpiece|sentencepiece]\n"
        "           [--size=30522] [--nouncased]",
        (
            *CORPUS_FLAGS,
            ("enum:wordpiece|sentencepiece", "kind", "wordpiece", "Vocabulary type."),
            ("integer", "size", 30522, "Vocabulary size."),
            ("bool", "uncased", True, "Lowercase and strip accents."),
            ("enum:unigram|bpe", "model_type", "unigram", "SentencePiece model type."),
            ("integer", "sample_bytes", 2**30, "Corpus sample size."),
        ),
        _vocab, ("input", "out"), "vocab needs --input=GLOB|tfds:NAME and --out=DIR",
    ),
    "prepare": Command(
        "bertjax prepare --input=GLOB|tfds:NAME --vocab=DIR --out=DIR\n"
        "           [--max_seq_length=128] [--packing]",
        (
            *CORPUS_FLAGS,
            ("string", "vocab", None, "Vocabulary directory (bertjax vocab)."),
            ("integer", "max_seq_length", 128, "Tokens per instance."),
            ("integer", "dupe_factor", 5, "Passes with fresh sentence pairs."),
            ("bool", "packing", False, "MLM-only packed rows, no NSP."),
        ),
        _prepare, ("input", "vocab", "out"),
        "prepare needs --input=GLOB|tfds:NAME, --vocab=DIR and --out=DIR",
    ),
    "evaluate": Command(
        "bertjax evaluate --workdir=DIR [--data=GLOB] [--step=N | --all_steps] [--out=FILE]",
        (
            ("string", "workdir", None, "A training workdir."),
            ("string", "data", None, "Held-out corpus files (default: the run's held-out part)."),
            STEP,
            ("bool", "all_steps", False, "Every checkpoint of --workdir."),
            ("string", "out", None, "Also write the records as JSON Lines here."),
        ),
        _evaluate, ("workdir",), "evaluate needs --workdir=DIR (a training workdir)",
        _evaluate_check,
    ),
    "finetune": Command(
        "bertjax finetune --task=NAME --init=MODEL_DIR --workdir=DIR [--random_init]\n"
        "           [--config=configs/finetune.py] [--config.FIELD=VALUE ...]",
        (
            ("string", "task", None, "mr, trec, rte, chunking, glue/NAME, jsonl or squad."),
            ("string", "init", None, "A training workdir or a `bertjax import` directory."),
            ("string", "workdir", None, "Fine-tuning directory: seeds, results.json."),
            ("bool", "random_init", False,
             "--init's architecture and vocabulary, random parameters (the baseline)."),
            ("config", "config", FINETUNE_CONFIG, CONFIG_HELP),
        ),
        _finetune, ("task", "init", "workdir"),
        "finetune needs --task=NAME, --init=MODEL_DIR and --workdir=DIR", host_compute=True,
    ),
    "fill-mask": Command(
        'bertjax fill-mask --workdir=DIR [--step=N] [--top_k=5] "TEXT WITH [MASK]" ...',
        (WORKDIR, STEP, ("integer", "top_k", 5, "Answers shown per [MASK].")),
        _fill_mask, ("workdir",), FILL_MASK_NEEDS,
        _fill_mask_check, takes_arguments=True,
    ),
    "bench": Command(
        "bertjax bench --model=SIZE --seq_len=N --batch_size=N [--steps=N] [--peers]\n"
        "           [--input_pipeline] [--checkpoint] [--profile_dir=DIR] ...",
        _bench_flags, _bench, ("model", "seq_len", "batch_size"),
        "bench needs --model=SIZE, --seq_len=N and --batch_size=N", _bench_check,
        host_compute=True,
    ),
}  # fmt: skip


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


def _load_config(fv: flags.FlagValues) -> None:
    """Loads --config (ml_collections loads lazily); load errors become one line."""
    try:
        if fv.config is not None:
            fv.config.keys()
    except Exception as e:  # ml_collections raises OSError/ValueError/... with multi-line text
        detail = " ".join(str(e).split()[-12:])
        raise UserError(f"cannot load --config ({detail}); pass an existing configs/*.py") from e


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
    try:
        fv = flag_values(name, [argv[0], *rest])
        arguments = fv([argv[0], *rest])[1:]
    except Exception as e:  # absl: flags.Error; ml_collections overrides: AttributeError, ...
        message = " ".join(str(e).split())
        if isinstance(e, flags.UnrecognizedFlagError):
            suggestion = re.search(r"Did you mean: (\S+) \?", message)
            message = (
                f"unknown flag --{e.flagname}"
                + (f" (did you mean --{suggestion[1]}?)" if suggestion else "")
                + f"; `bertjax {name} --help` lists its flags"
            )
        elif isinstance(e, AttributeError | KeyError):
            field = str(e.args[0] if e.args else e).strip("'\"")
            message = f"unknown config field {field!r}; see the --config file for the fields"
        _usage_error(name, message)
    try:
        if "config" in fv:
            _load_config(fv)
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
    importing TensorFlow or JAX): only the commands whose steps run on the host (train, finetune,
    bench), and only where host_memory.should_reexec (Linux, glibc >= 2.35, THP madvise, no
    accelerator). `machine`: should_reexec's keyword arguments, for tests."""
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


def run(name: str, fv: flags.FlagValues, arguments: list[str]) -> None:
    """Runs a parsed command; a UserError is one line on stderr and exit 2."""
    if not fv.debug:
        startup.quiet_environment()
    _configure_logging(fv.debug)
    try:
        if name != "bench":  # bench imports TensorFlow and JAX after its peers have run
            startup.import_quietly(quiet=not fv.debug)
        COMMANDS[name].run(fv, arguments)
    except (UserError, FloatingPointError) as e:
        if fv.debug:
            traceback.print_exc()
        print(f"bertjax: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bertjax: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)


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
