"""The commands of `bertjax COMMAND`: each one's usage line, flags (kind, name, default, help),
the flags it needs, and the library function it calls (bertjax/cli.py parses and dispatches)."""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Sequence

from absl import flags

from bertjax import command_checks as checks
from bertjax import startup
from bertjax.command_flags import (
    CORPUS_FLAGS,
    DATA_READING_FLAGS,
    EMBED_FLAGS,
    FINETUNE_CONFIG,
    PREDICT_FLAGS,
    STEP,
    WORKDIR,
    FlagSpec,
)
from bertjax.errors import flags_renamed

CONFIG_HELP = "Config file (configs/*.py); --config.FIELD=VALUE overrides one field."
DEBUG_FLAG = ("bool", "debug", False, "Full tracebacks and TensorFlow/XLA start-up logs.")


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
    # Its library code uses TensorFlow (tf.data, tensorflow-text): imported quietly at start-up.
    # export and import do not (a TF1 checkpoint's reader loads it): an export 15.2 -> 6.1 s.
    tensorflow: bool = True
    # The --config file's own checks, before TensorFlow loads and JAX starts (4-8 s, not ~16).
    check_config: Callable[[flags.FlagValues], None] | None = None


def _train(fv: flags.FlagValues, arguments: list[str]) -> None:
    explicit = (fv.coordinator_address, fv.num_processes, fv.process_id)
    if fv.distributed or any(value is not None for value in explicit):
        from bertjax import distributed

        distributed.initialize(*explicit)  # before JAX's backends start
    startup.start_jax(quiet=not fv.debug)
    from bertjax import train

    summary = train.train_and_evaluate(fv.config, fv.workdir, print_sharding=fv.print_sharding)
    total = fv.config.num_train_steps
    stopped = f"Stopped at step {summary.steps} of {total}; re-run the same command to resume."
    print("\n".join(["Done." if summary.steps >= total else stopped] + summary.lines()))


def _export(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax import paths

    if paths.is_uri(fv.workdir):  # etils reads a bucket through TensorFlow's gfile where installed
        startup.import_quietly(not fv.debug)  # what every other command imports at start-up
    startup.start_jax(quiet=not fv.debug)
    from bertjax.convert import export

    print("\n".join(export.export_hf(fv.workdir, fv.out, step=fv.step).lines()))


def _import(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.convert import importer

    print("\n".join(importer.import_checkpoint(fv["from"].value, fv.out).lines()))


def _vocab(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.data import corpus, vocab

    with corpus.corpus_flag("--input"), _own_flags("vocab"):
        meta = vocab.run_vocab(
            fv.input, fv.kind, fv.size, fv.out, fv.uncased, fv.sample_bytes,
            text_field=fv.text_field, model_type=fv.model_type, seed=fv.seed,
            text_format=fv.text_format, extend=fv.extend or "",
            text_encoding=fv.text_encoding, character_coverage=fv.character_coverage,
        )  # fmt: skip
    print("\n".join(vocab.next_steps(meta, fv.out, fv.size, fv.extend or "")))


def _own_flags(command: str):
    """Errors of library code name config fields (`--config.max_seq_length`); where `command`
    has a flag of that name, they name the flag (`--max_seq_length`)."""
    specs = COMMANDS[command].flags
    names = [spec[1] for spec in (specs() if callable(specs) else specs)]
    return flags_renamed({f"--config.{name}": f"--{name}" for name in names})


def _prepare(fv: flags.FlagValues, arguments: list[str]) -> None:
    from bertjax.data import corpus, prepare

    with corpus.corpus_flag("--input"), _own_flags("prepare"):
        manifest = prepare.run_prepare(
            fv.input, fv.vocab, fv.out, max_seq_length=fv.max_seq_length,
            short_seq_prob=fv.short_seq_prob, dupe_factor=fv.dupe_factor, seed=fv.seed,
            packing=fv.packing, text_field=fv.text_field, text_format=fv.text_format,
            word_segmenter=fv.word_segmenter, eval_holdout_fraction=fv.eval_holdout_fraction,
            num_shards=fv.num_shards, text_encoding=fv.text_encoding,
        )  # fmt: skip
    held_out = manifest["num_heldout_documents"]
    print(
        f"Prepared {manifest['num_instances']} instances from {manifest['num_documents']} "
        f"documents ({manifest['num_tokens']} tokens) in {len(manifest['shards'])} shards"
        + (f", {held_out} documents held out" if fv.eval_holdout_fraction else "")
        + f": {fv.out}"
    )


def _evaluate(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import evaluate_checkpoints

    reading = {name: fv[name].value for _, name, *_ in DATA_READING_FLAGS if fv[name].present}
    with _own_flags("evaluate"):  # --text_field, ... name evaluate's flags
        records = evaluate_checkpoints.run_evaluate(
            fv.workdir, data=fv.data, steps=None if fv.step is None else [fv.step],
            all_steps=fv.all_steps, out=fv.out, data_reading=reading,
        )  # fmt: skip
    print("\n".join(evaluate_checkpoints.format_records(records)))


def _finetune(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.finetune import trainer

    results = trainer.finetune(
        fv.task, fv.init, fv.workdir, fv.config, random_init=fv.random_init, step=fv.step
    )
    if results is None:  # stopped by SIGTERM / Ctrl-C, saved: the line said so
        return
    print("\n".join(trainer.results_table([results])))
    workdir = os.path.expanduser(fv.workdir)  # "~/ft": glob finds no model under a literal ~
    print(f"results: {os.path.join(workdir, 'results.json')}")
    models = sorted(glob.glob(os.path.join(workdir, "seed_*", "model")))
    if models:  # bertjax predict --model=..., bertjax export --workdir=...
        print(f"fine-tuned models: {', '.join(models)}")


def _predict(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax.finetune import predict

    with _own_flags("predict"):  # --text_encoding, --column_names, ...
        done = predict.predict_file(
            fv.model, fv.input, fv.out, batch_size=fv.batch_size, text_fields=fv.text_fields,
            tokens_field=fv.tokens_field, multilabel_threshold=fv.multilabel_threshold,
            column_names=fv.column_names, text_encoding=fv.text_encoding,
            choices_field=fv.choices_field, null_score_diff_threshold=fv.null_score_diff_threshold,
        )  # fmt: skip
    print(done.line())


def _embed(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import embed

    with _own_flags("embed"):  # --text_encoding, --column_names, ...
        done = embed.embed_file(
            fv.model, fv.input, fv.out, text_fields=fv.text_fields, pooling=fv.pooling or "",
            normalize=None if fv.normalize is None else fv.normalize == "yes",
            max_seq_length=fv.max_seq_length, batch_size=fv.batch_size, step=fv.step,
            column_names=fv.column_names, text_encoding=fv.text_encoding,
        )  # fmt: skip
    print(done.line())


def _fill_mask(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import fill_mask

    answers = fill_mask.fill_mask(fv.workdir, arguments, step=fv.step, top_k=fv.top_k)
    print("\n".join(fill_mask.format_answers(arguments, answers)))


def _show_masking(fv: flags.FlagValues, arguments: list[str]) -> None:
    startup.start_jax(quiet=not fv.debug)
    from bertjax import masking_preview

    shown = masking_preview.show_masking(fv.config, fv.num_instances)
    print("\n".join(masking_preview.format_shown(shown, fv.config.get("objective", "bert"))))


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
        checks.train_flags, host_compute=True, check_config=checks.train_config,
    ),
    "export": Command(
        "bertjax export --workdir=DIR [--step=N] --out=HF_DIR",
        (
            ("string", "workdir", None, "A training workdir, a `bertjax import` directory, or "
             "a fine-tuned model (FINETUNE_DIR/seed_<s>/model)."),
            ("string", "out", None, "The Hugging Face directory to write."),
            STEP,
        ),  # fmt: skip
        _export, ("workdir", "out"),
        "export needs --workdir=DIR (a training, imported or fine-tuned model dir) and "
        "--out=HF_DIR", tensorflow=False,
    ),
    "import": Command(
        "bertjax import --from=HF_DIR_OR_TF1_CHECKPOINT --out=DIR",
        (
            # "from" is a Python keyword: read it as fv["from"].value.
            ("string", "from", None, "A Hugging Face BERT directory or a TF1 checkpoint."),
            ("string", "out", None, "The model directory to write (then --config.init_from)."),
        ),
        _import, ("from", "out"), "import needs --from=HF_DIR_OR_TF1_CHECKPOINT and --out=DIR",
        tensorflow=False,
    ),
    "vocab": Command(
        "bertjax vocab --input=GLOB|tfds:NAME --out=DIR [--kind=wordpiece|sentencepiece]\n"
        "           [--size=30522] [--nouncased] [--extend=MODEL_DIR]",
        (
            *CORPUS_FLAGS,
            ("enum:wordpiece|sentencepiece", "kind", "wordpiece", "Vocabulary type."),
            ("integer", "size", 30522, "Vocabulary size."),
            ("bool", "uncased", True,
             "Lowercase (WordPiece: and strip accents; SentencePiece: NFKC case folding)."),
            ("enum:unigram|bpe", "model_type", "unigram",
             "SentencePiece model type (export converts unigram only)."),
            ("float", "character_coverage", None,
             "SentencePiece: fraction of characters kept, 0.98-1 (default 0.9995)."),
            ("integer", "sample_bytes", 2**30, "Corpus sample size."),
            ("string", "extend", None, "Keep this dir's WordPiece vocabulary, add up to --size."),
        ),
        _vocab, ("input", "out"), "vocab needs --input=GLOB|tfds:NAME and --out=DIR",
    ),
    "prepare": Command(
        "bertjax prepare --input=GLOB|tfds:NAME --vocab=DIR --out=DIR\n"
        "           [--max_seq_length=128] [--packing] [--word_segmenter=rjieba|fugashi]\n"
        "           [--eval_holdout_fraction=0.01] [--num_shards=N]",
        (
            *CORPUS_FLAGS,
            ("string", "vocab", None, "Vocabulary directory (bertjax vocab)."),
            ("integer", "max_seq_length", 128, "Tokens per instance."),
            ("float", "short_seq_prob", 0.1, "Probability of a shorter NSP pair."),
            ("integer", "dupe_factor", 5, "Passes with fresh sentence pairs."),
            ("bool", "packing", False, "MLM-only packed rows, no NSP."),
            ("enum:|rjieba|fugashi", "word_segmenter", "",
             "Words for whole-word masking: rjieba (Chinese) or fugashi (Japanese)."),
            ("float", "eval_holdout_fraction", 0.0,
             "Documents kept out of the shards for held-out evaluation."),
            ("integer", "num_shards", None,
             "Output files (default: one per input file, or per two for NSP from 'paragraphs' "
             "files, at most 256); at least the number of training processes."),
        ),
        _prepare, ("input", "vocab", "out"),
        "prepare needs --input=GLOB|tfds:NAME, --vocab=DIR and --out=DIR",
    ),
    "evaluate": Command(
        "bertjax evaluate --workdir=DIR [--data=GLOB [--text_field=F] [--text_format=T]\n"
        "           [--text_encoding=E]] [--step=N | --all_steps] [--out=FILE]",
        (
            ("string", "workdir", None, "A training workdir."),
            ("string", "data", None, "Held-out corpus files (default: the run's held-out part)."),
            *DATA_READING_FLAGS,
            STEP,
            ("bool", "all_steps", False, "Every checkpoint of --workdir."),
            ("string", "out", None, "Also write the records as JSON Lines here."),
        ),
        _evaluate, ("workdir",), "evaluate needs --workdir=DIR (a training workdir)",
        checks.evaluate_flags,
    ),
    "finetune": Command(
        "bertjax finetune --task=NAME --init=MODEL_DIR --workdir=DIR [--step=N] [--random_init]\n"
        "           [--config=configs/finetune.py] [--config.FIELD=VALUE ...]",
        (
            ("string", "task", None, "mr, trec, rte, chunking, glue/NAME, jsonl or squad."),
            ("string", "init", None,
             "A training workdir, a `bertjax import` directory or a fine-tuned seed_<s>/model."),
            ("string", "workdir", None, "Fine-tuning directory: seeds, results.json."),
            ("integer", "step", None, "--init's checkpoint step (default: the latest)."),
            ("bool", "random_init", False,
             "--init's architecture and vocabulary, random parameters (the baseline)."),
            ("config", "config", FINETUNE_CONFIG, CONFIG_HELP),
        ),
        _finetune, ("task", "init", "workdir"),
        "finetune needs --task=NAME, --init=MODEL_DIR and --workdir=DIR", host_compute=True,
        check_config=checks.finetune_config,
    ),
    "predict": Command(
        "bertjax predict --model=FINETUNE_DIR/seed_<s>/model --input=FILE --out=FILE.jsonl\n"
        "           [--batch_size=64] [--text_fields=a,b | --tokens_field=NAME]\n"
        "           [--multilabel_threshold=P] [--column_names=a,b,...] [--text_encoding=E]\n"
        "           [--choices_field=NAME | --choices_field=a,b,...]\n"
        "           [--null_score_diff_threshold=T]",
        PREDICT_FLAGS,
        _predict, ("model", "input", "out"),
        "predict needs --model=FINETUNE_DIR/seed_<s>/model, --input=FILE and --out=FILE",
    ),
    "embed": Command(
        "bertjax embed --model=DIR --input=FILE --out=FILE.npy [--text_fields=a[,b]]\n"
        "           [--pooling=mean|cls] [--normalize=yes|no] [--max_seq_length=N] ...",
        EMBED_FLAGS, _embed, ("model", "input", "out"),
        "embed needs --model=DIR, --input=FILE and --out=FILE.npy (or FILE.jsonl)",
    ),
    "fill-mask": Command(
        'bertjax fill-mask --workdir=DIR [--step=N] [--top_k=5] "TEXT WITH [MASK]" ...',
        (WORKDIR, STEP, ("integer", "top_k", 5, "Answers shown per [MASK].")),
        _fill_mask, ("workdir",), checks.FILL_MASK_NEEDS,
        checks.fill_mask_arguments, takes_arguments=True,
    ),
    "show-masking": Command(
        "bertjax show-masking --config=CONFIG.py [--config.FIELD=VALUE ...] [--num_instances=3]",
        (
            ("config", "config", None, CONFIG_HELP),
            ("integer", "num_instances", 3, "Instances of the first batch shown."),
        ),
        _show_masking, ("config",),
        "show-masking needs --config=CONFIG.py (the run's: its corpus, vocabulary and masking)",
    ),
    "bench": Command(
        "bertjax bench --model=SIZE --seq_len=N --batch_size=N [--steps=N] [--peers]\n"
        "           [--input_pipeline] [--checkpoint] [--profile_dir=DIR] ...",
        _bench_flags, _bench, ("model", "seq_len", "batch_size"),
        "bench needs --model=SIZE, --seq_len=N and --batch_size=N", _bench_check,
        host_compute=True,
    ),
}  # fmt: skip
