"""`bertjax COMMAND --flags`: thin entry point; every command calls a library function.

bertjax train --config=configs/cpu_smoke.py --workdir=/tmp/smoke [--config.field=value ...]
bertjax export --workdir=/tmp/smoke [--step=N] --out=/tmp/smoke-hf     (Hugging Face directory)
bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=/tmp/imported    (then --config.init_from)
bertjax evaluate --workdir=/tmp/smoke [--data=HELD_OUT_FILES] [--step=N | --all_steps]
bertjax finetune --task=mr --init=/tmp/smoke --workdir=/tmp/mr [--random_init] [--config.x=y]
bertjax fill-mask --workdir=/tmp/smoke [--step=N] [--top_k=5] "text with a [MASK] token"
bertjax bench --model=mini --seq_len=128 --batch_size=32 [--peers]
"""

import logging as python_logging
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bertjax import host_memory  # noqa: E402
from bertjax.errors import UserError  # noqa: E402

USAGE = (
    "usage: bertjax train --config=CONFIG.py --workdir=DIR [--config.FIELD=VALUE ...] [--debug]\n"
    "                     [--print_sharding] [--distributed | --coordinator_address=HOST:PORT\n"
    "                      --num_processes=N --process_id=I]\n"
    "       bertjax export --workdir=DIR [--step=N] --out=HF_DIR\n"
    "       bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=DIR\n"
    "       bertjax vocab --input=GLOB|tfds:NAME --kind=wordpiece|sentencepiece --size=N --out=DIR"
    " [--nouncased]\n"
    "       bertjax prepare --input=GLOB|tfds:NAME --vocab=DIR --out=DIR [--max_seq_length=128]"
    " [--packing] [--word_segmenter=rjieba]\n"
    "       bertjax evaluate --workdir=DIR [--data=GLOB] [--step=N | --all_steps] [--out=FILE]\n"
    "       bertjax finetune --task=NAME --init=MODEL_DIR --workdir=DIR [--random_init]"
    " [--config=configs/finetune.py] [--config.FIELD=VALUE ...]\n"
    '       bertjax fill-mask --workdir=DIR [--step=N] [--top_k=5] "TEXT WITH [MASK]" ...\n'
    "       bertjax bench --model=SIZE --seq_len=N --batch_size=N [--steps=N] [--peers]"
    " (bertjax bench --help)"
)
COMMANDS = ("train", "export", "import", "vocab", "prepare", "evaluate", "finetune", "fill-mask")
COMMANDS += ("bench",)

FINETUNE_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "finetune.py"
)
FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show full tracebacks instead of one-line errors.")
_OUT = flags.DEFINE_string("out", None, "export: Hugging Face directory; import: model directory.")
_STEP = flags.DEFINE_integer("step", None, "export: checkpoint step (default: the latest).")
_PRINT_SHARDING = flags.DEFINE_bool(
    "print_sharding", False, "train: print how every parameter is split over the mesh."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "train: jax.distributed.initialize() (auto-detects TPU pods, SLURM)."
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "train: HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "train: processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "train: this process's index.")
_INPUT = flags.DEFINE_string("input", None, "vocab/prepare: corpus files, globs or tfds:NAME.")
_KIND = flags.DEFINE_enum("kind", "wordpiece", ["wordpiece", "sentencepiece"], "vocab: type.")
_SIZE = flags.DEFINE_integer("size", 30522, "vocab: vocabulary size.")
_UNCASED = flags.DEFINE_bool("uncased", True, "vocab: lowercase and strip accents.")
_MODEL_TYPE = flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe"], "vocab: SP model.")
_SAMPLE_BYTES = flags.DEFINE_integer("sample_bytes", 2**30, "vocab: corpus sample size.")
_TEXT_FIELD = flags.DEFINE_string("text_field", "text", "vocab/prepare: JSON Lines text field.")
_VOCAB = flags.DEFINE_string("vocab", None, "prepare: vocabulary directory (bertjax vocab).")
_MAX_SEQ = flags.DEFINE_integer("max_seq_length", 128, "prepare: tokens per instance.")
_DUPE = flags.DEFINE_integer("dupe_factor", 5, "prepare: passes with fresh sentence pairs.")
_PACKING = flags.DEFINE_bool("packing", False, "prepare: MLM-only packed rows, no NSP.")
_WORD_SEGMENTER = flags.DEFINE_enum(
    "word_segmenter", "", ["", "rjieba"], "prepare: rjieba = Chinese words for whole-word masking."
)
_SEED = flags.DEFINE_integer("seed", 0, "vocab/prepare: random seed.")
_DATA = flags.DEFINE_string("data", None, "evaluate: held-out corpus files (default: the run's).")
_ALL_STEPS = flags.DEFINE_bool("all_steps", False, "evaluate: every checkpoint of --workdir.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "fill-mask: answers shown per [MASK].")
_TASK = flags.DEFINE_string(
    "task", None, "finetune: mr, trec, rte, chunking, glue/NAME, jsonl, squad."
)
_INIT = flags.DEFINE_string("init", None, "finetune: training workdir or `bertjax import` dir.")
_RANDOM_INIT = flags.DEFINE_bool(
    "random_init", False, "finetune: --init's architecture and vocabulary, random parameters."
)
# "from" is a Python keyword: read it as FLAGS["from"].value.
flags.DEFINE_string("from", None, "import: Hugging Face BERT directory or TF1 checkpoint.")


_ARGUMENTS: list[str] = []  # positional arguments after the flags (fill-mask: the texts)


def _parse(argv: list[str]) -> str:
    """Parses `bertjax COMMAND [flags] [arguments]`; returns COMMAND (the positional arguments
    go to `_ARGUMENTS`). Bad usage: usage line and exit 2."""
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"bertjax: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    if command == "finetune" and not any(a.startswith("--config=") for a in argv[2:]):
        argv = [*argv[:2], f"--config={FINETUNE_CONFIG}", *argv[2:]]
    try:
        _ARGUMENTS[:] = FLAGS(argv[:1] + argv[2:])[1:]
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
    explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if _DISTRIBUTED.value or any(value is not None for value in explicit):
        from bertjax import distributed

        distributed.initialize(*explicit)
    from bertjax import train  # deferred: importing JAX/TF takes seconds

    summary = train.train_and_evaluate(config, _WORKDIR.value, print_sharding=_PRINT_SHARDING.value)
    print("\n".join(["Done."] + summary.lines()))


def _export() -> None:
    if not _WORKDIR.value or not _OUT.value:
        raise UserError("export needs --workdir=DIR (a training or imported dir) and --out=HF_DIR")
    from bertjax.convert import export  # deferred: importing JAX/TF takes seconds

    result = export.export_hf(_WORKDIR.value, _OUT.value, step=_STEP.value)
    print("\n".join(result.lines()))


def _import() -> None:
    source = FLAGS["from"].value
    if not source or not _OUT.value:
        raise UserError("import needs --from=HF_DIR_OR_TF1_CHECKPOINT and --out=DIR")
    from bertjax.convert import importer  # deferred: importing JAX/TF takes seconds

    result = importer.import_checkpoint(source, _OUT.value)
    print("\n".join(result.lines()))


def _vocab() -> None:
    if not _INPUT.value or not _OUT.value:
        raise UserError("vocab needs --input=GLOB|tfds:NAME and --out=DIR")
    from bertjax.data import vocab  # deferred: importing TF takes seconds

    meta = vocab.run_vocab(
        _INPUT.value, _KIND.value, _SIZE.value, _OUT.value, _UNCASED.value, _SAMPLE_BYTES.value,
        text_field=_TEXT_FIELD.value, model_type=_MODEL_TYPE.value, seed=_SEED.value,
    )  # fmt: skip
    print(f"Wrote a {meta['vocab_size']}-token {_KIND.value} vocabulary to {_OUT.value}")


def _prepare() -> None:
    if not _INPUT.value or not _VOCAB.value or not _OUT.value:
        raise UserError("prepare needs --input=GLOB|tfds:NAME, --vocab=DIR and --out=DIR")
    from bertjax.data import prepare  # deferred: importing TF takes seconds

    manifest = prepare.run_prepare(
        _INPUT.value, _VOCAB.value, _OUT.value, max_seq_length=_MAX_SEQ.value,
        dupe_factor=_DUPE.value, seed=_SEED.value, packing=_PACKING.value,
        text_field=_TEXT_FIELD.value, word_segmenter=_WORD_SEGMENTER.value,
    )  # fmt: skip
    print(
        f"Prepared {manifest['num_instances']} instances from {manifest['num_documents']} "
        f"documents ({manifest['num_tokens']} tokens) in {len(manifest['shards'])} shards: "
        f"{_OUT.value}"
    )


def _evaluate() -> None:
    if not _WORKDIR.value:
        raise UserError("evaluate needs --workdir=DIR (a training workdir)")
    if _ALL_STEPS.value and _STEP.value is not None:
        raise UserError("pass --step=N or --all_steps, not both")
    from bertjax import evaluation  # deferred: importing JAX/TF takes seconds

    records = evaluation.run_evaluate(
        _WORKDIR.value,
        data=_DATA.value,
        steps=None if _STEP.value is None else [_STEP.value],
        all_steps=_ALL_STEPS.value,
        out=_OUT.value,
    )
    print("\n".join(evaluation.format_records(records)))


def _finetune() -> None:
    config = _load_config()
    if not _TASK.value or not _INIT.value or not _WORKDIR.value:
        raise UserError("finetune needs --task=NAME, --init=MODEL_DIR and --workdir=DIR")
    from bertjax.finetune import trainer  # deferred: importing JAX/TF takes seconds

    results = trainer.finetune(
        _TASK.value, _INIT.value, _WORKDIR.value, config, random_init=_RANDOM_INIT.value
    )
    print("\n".join(trainer.results_table([results])))
    print(f"results: {os.path.join(_WORKDIR.value, 'results.json')}")


def _fill_mask() -> None:
    if not _WORKDIR.value or not _ARGUMENTS:
        raise UserError('fill-mask needs --workdir=DIR and one or more "texts with [MASK]"')
    from bertjax import fill_mask  # deferred: importing JAX/TF takes seconds

    answers = fill_mask.fill_mask(_WORKDIR.value, _ARGUMENTS, step=_STEP.value, top_k=_TOP_K.value)
    print("\n".join(fill_mask.format_answers(_ARGUMENTS, answers)))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) >= 2 and argv[1] == "bench":  # its own argparse flags (bertjax bench --help)
        from bertjax import bench

        bench.main(argv[2:])
        return
    command = _parse(argv)
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    # Orbax logs every save and close at INFO; keep its warnings, drop the chatter.
    logging.get_absl_logger().addFilter(
        lambda record: record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname
    )
    try:
        commands = {"train": _train, "export": _export, "import": _import}
        commands.update(vocab=_vocab, prepare=_prepare, evaluate=_evaluate, finetune=_finetune)
        commands["fill-mask"] = _fill_mask
        commands[command]()
    except (UserError, FloatingPointError) as e:
        if _DEBUG.value:
            traceback.print_exc()
        print(f"bertjax: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bertjax: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)


def console_main() -> None:
    """The `bertjax` console script and `python -m bertjax`: first re-executes itself with huge
    pages for glibc's large blocks where that helps (bertjax/host_memory.py), then `main()`."""
    host_memory.reexec_with_huge_pages(["-m", "bertjax", *sys.argv[1:]])
    main()


if __name__ == "__main__":
    console_main()
