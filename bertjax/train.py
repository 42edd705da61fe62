"""Pretraining: `train_and_evaluate(config, workdir)`: data, state and resume around the step
loop (`train_loop.py`) and `train_step`.

tf.data and ml_collections are imported only where the data and config are read, so the step
and the loop run on machines without them (bertjax/train_from_batches.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING

import jax
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from bertjax import (
    checkpoint_compatibility,
    checkpointing,
    evaluation,
    metrics,
    optim,
    paths,
    process_agreement,
    resume_checks,
    run_lock,
    sharding,
    train_step,
    unigram,
    vocabulary_growth,
)
from bertjax.config import RunSpec, field_changes, validate
from bertjax.models.bert import BertConfig
from bertjax.objectives import ObjectiveSpec
from bertjax.train_loop import train_loop
from bertjax.train_state import (
    TrainState,
    init_train_state,
    state_setup,
)

if TYPE_CHECKING:
    import ml_collections
    import optax

    from bertjax.data import pipeline


@dataclasses.dataclass
class RunSummary:
    steps: int
    start_step: int
    final_metrics: dict[str, float]
    checkpoint_dir: str
    tensorboard_dir: str
    metrics_file: str
    wall_seconds: float

    def lines(self) -> list[str]:
        m = self.final_metrics
        lines = [f"steps: {self.start_step} -> {self.steps} in {self.wall_seconds:.1f} s"]
        if "loss" in m:
            shown = ("loss", "mlm_loss", "mlm_accuracy", "nsp_accuracy", "rtd_accuracy")
            lines.append("final " + "  ".join(f"{k} {m[k]:.4f}" for k in shown if k in m))
        lines += [
            f"checkpoints: {self.checkpoint_dir}",
            f"tensorboard: tensorboard --logdir {self.tensorboard_dir}",
            f"metrics: {self.metrics_file}",
        ]
        return lines


def model_fields(model: BertConfig, objective: ObjectiveSpec | None = None) -> dict:
    """The architecture this run trains and its objective (default BERT's); saved with
    checkpoints and compared on resume."""
    fields = {f: getattr(model, f) for f in checkpoint_compatibility.ARCHITECTURE_FIELDS}
    fields["scan_layers"] = bool(model.scan_layers)  # parameter layout
    return fields | (objective or ObjectiveSpec()).checkpoint_fields()


def pretraining_optimizer(spec: RunSpec) -> optax.GradientTransformation:
    """The run's optimizer; the parameters its objective never trains are not decayed."""
    untrained = spec.objective.untrained_parameters(spec.data.packing)
    return optim.create_optimizer(spec.optimizer, untrained)


def prepare_workdir(
    workdir: epath.Path, config: ml_collections.ConfigDict, vocab_files: list[epath.Path]
) -> None:
    """Writes config.json and the vocabulary's files (vocab.txt, and sentencepiece.model for a
    SentencePiece one: what export, fine-tuning, fill-mask and evaluation tokenize with) beside
    the checkpoints (process 0 only), once the checkpoints are known to fit them."""
    if jax.process_index() != 0:
        return
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    for source in vocab_files:
        if source != workdir / source.name:
            source.copy(workdir / source.name, overwrite=True)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | epath.Path, *, print_sharding: bool = False
) -> RunSummary:
    """Pretrains BERT per `config`, writing checkpoints, metrics and TensorBoard to `workdir`.

    Re-running with the same workdir resumes from the latest checkpoint; a second run while
    one trains there is refused (`run_lock`). `config` may be a plain dict of config fields.
    """
    import ml_collections  # deferred: the compute path does not need it

    wall_start = time.perf_counter()
    if not isinstance(config, ml_collections.ConfigDict):  # a dict failed after the corpus read
        config = ml_collections.ConfigDict(dict(config))
    workdir = paths.as_path(workdir)  # local (~ expanded: every file in one place) or gs://...
    spec = validate(config, workdir)  # the config's only reading: typed specs from here on
    process_agreement.check_same_config(config, HOST_PATH_FIELDS)
    with run_lock.held(workdir, lead=jax.process_index() == 0):
        process_agreement.check_shared_workdir(workdir)
        return _train(config, spec, workdir, wall_start, print_sharding)


# Config fields that may name other paths on each host (a local copy, a per-host cache) for the
# same files: compared by what they hold (the data files' names and sizes, in `validate`; the
# vocabulary).
HOST_PATH_FIELDS = ("corpus", "eval_corpus", "prepared_dir", "vocab_dir", "cache_dir")


def _train(
    config: ml_collections.ConfigDict,
    spec: RunSpec,
    workdir: epath.Path,
    wall_start: float,
    print_sharding: bool,
) -> RunSummary:
    # The checkpoint manager and the metrics writer close however the run ends: a refused
    # resume, an error, a finished run, the last step.
    with contextlib.ExitStack() as to_close:
        manager = checkpointing.run_checkpoint_manager(workdir, spec)
        to_close.callback(checkpointing.close_manager, manager)
        return _train_with(manager, to_close, config, spec, workdir, wall_start, print_sharding)


def _train_with(
    manager,
    to_close: contextlib.ExitStack,
    config: ml_collections.ConfigDict,
    spec: RunSpec,
    workdir: epath.Path,
    wall_start: float,
    print_sharding: bool,
) -> RunSummary:
    from bertjax.data import vocab  # deferred: tf.data

    loop = spec.loop
    # A mismatched vocabulary is refused before the data build reads the corpus.
    vocab_path = _run_vocabulary(spec)
    grown_from = _check_vocabulary(workdir, vocab_path.parent, manager, loop.init_from)
    data = _pretraining_data(spec, workdir, vocab_path)
    model = dataclasses.replace(spec.model, vocab_size=data.tokenizer.vocab_size)
    mesh = spec.mesh.create_mesh()
    tx = pretraining_optimizer(spec)
    schedule = optim.learning_rate_schedule(spec.optimizer)
    rules = spec.mesh.logical_axis_rules

    fields = model_fields(model, spec.objective)
    pretraining_model = spec.objective.model_factory(model, spec.masking.masked_lm_prob)
    setup = state_setup(pretraining_model, tx, mesh, rules)

    def init_state() -> TrainState:
        params = _init_from_params(loop.init_from, setup, fields, grown_from)  # checked first
        state = init_train_state(setup, pretraining_model, tx, loop.seed)
        return state.replace(params=state.params | params) if params else state

    state, restored_step = checkpointing.restore_or_init(
        manager, setup.abstract_state, init_state, fields
    )
    start_step = int(restored_step or 0)
    if print_sharding and jax.process_index() == 0:
        print(f"mesh {dict(mesh.shape)}; parameter, shape, partition spec:")
        print("\n".join(sharding.describe_shardings(state.params)))
    writer = metrics.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    to_close.callback(writer.close)
    summary = start_summary(start_step, manager, writer)
    metadata = checkpointing.metadata_for(config, fields)  # its "config": what resumes compare
    metadata["data_files"] = resume_checks.data_files(spec.data)
    if start_step >= loop.num_train_steps:  # nothing to train: the run's files stay the run's
        return _already_finished(summary, writer, wall_start, manager, metadata["config"])
    # Only now: a resume refused above, or a finished run, leaves the run's config.json and
    # vocabulary as they were.
    prepare_workdir(workdir, config, vocab.vocab_files(data.vocab_path))
    carried_interval = resume_checks.resume_metrics(
        manager, writer, restored_step, metadata["config"], metadata["data_files"]
    )

    dataset = _training_dataset(spec, data, start_step)
    p_train_step = train_step.compile_train_step(setup, tx, schedule, mesh, loop.grad_accum_steps)
    counts = _training_token_counts(spec, data, workdir)
    evaluator = evaluation.periodic_evaluator(spec, setup, counts, writer)
    throughput = training_throughput(spec, model.vocab_size, mesh)
    summary.final_metrics, summary.steps = train_loop(
        loop, state, dataset, p_train_step, mesh, manager, writer, metadata, start_step,
        throughput, evaluator, carried_interval=carried_interval,
    )  # fmt: skip
    summary.wall_seconds = time.perf_counter() - wall_start
    return summary


def _init_from_params(init_from: str, setup, fields: dict, grown_from: int | None) -> dict:
    """The parameters `--config.init_from` (an imported model or another run) gives a fresh run
    ({} without one): only the encoder when it was trained with another objective, vocabulary
    axes grown when the run's vocabulary extends its own; the optimizer state stays fresh."""
    if not init_from:
        return {}
    return checkpointing.load_init_params(
        init_from, setup.abstract_state.params, fields, grown_from
    )


def _already_finished(
    summary: RunSummary, writer, wall_start: float, manager, run_config: dict
) -> RunSummary:
    """The summary of a run whose checkpoint is at or past num_train_steps: nothing trained or
    written (config.json stays the run's); settings changed since that checkpoint are said to
    be unapplied."""
    logging.info("Checkpoint at step %d: training already finished.", summary.start_step)
    saved = checkpointing.read_metadata(manager, summary.start_step).get("config", {})
    common = saved.keys() & run_config.keys()
    if changes := field_changes({k: saved[k] for k in common}, {k: run_config[k] for k in common}):
        logging.warning(
            "Nothing trained, so these changes to the run's settings are not applied (its "
            "config.json stays as it was): %s. To train on, raise --config.num_train_steps; "
            "for a new run from these weights use a new --workdir with --config.init_from",
            ", ".join(changes),
        )  # fmt: skip
    summary.final_metrics = metrics.last_logged_metrics(writer.jsonl_path)
    summary.wall_seconds = time.perf_counter() - wall_start
    return summary


def _check_vocabulary(workdir, vocab_dir, manager, init_from: str) -> int | None:
    """The run's vocabulary against its checkpoints' (resuming) or `init_from`'s (a fresh run
    from another model): UserError if another; `init_from`'s size if the run's extends it."""
    if manager.latest_step() is not None:
        checkpointing.check_resumed_vocabulary(
            workdir,
            vocab_dir,
            f"resume with that one (--config.vocab_dir={workdir}) or start a new --workdir",
        )
        return None
    if not init_from:
        return None
    with paths.remote_errors(init_from):  # an unreachable gs:// placeholder is one line
        checkpointing.open_workdir(init_from)  # holds a checkpoint, before the corpus is read
        return vocabulary_growth.init_vocabulary(init_from, vocab_dir)


def _run_vocabulary(spec: RunSpec) -> epath.Path:
    """The run's vocab.txt, checked to be the same on every process; found before the data build
    so that it is checked first (25 MB of text: 17 s of sentence pairs, a large corpus minutes)."""
    from bertjax.data import pipeline, vocab  # deferred: tf.data

    if jax.process_count() > 1 and not spec.data.prepared_dir:
        # One process trains (or finds) the cached vocabulary; the others then read it.
        if jax.process_index() == 0:
            pipeline.run_vocabulary(spec.data)
        multihost_utils.sync_global_devices("vocabulary ready")
    vocab_path = pipeline.run_vocabulary(spec.data)
    if jax.process_count() > 1:
        vocab.check_same_vocabulary(vocab_path)
    return vocab_path


def _pretraining_data(
    spec: RunSpec, workdir: epath.Path, vocab_path: epath.Path
) -> pipeline.PretrainingData:
    """The run's tokenizer and instances."""
    from bertjax.data import pipeline  # deferred: tf.data

    # Chunk counts beside the checkpoints: a text stream's resume skips to its chunk.
    return pipeline.build_pretraining_data(
        spec.data, index_dir=str(workdir / "text_stream_index"), vocab_path=vocab_path
    )


def _training_dataset(spec: RunSpec, data: pipeline.PretrainingData, start_step: int = 0):
    """This process's training batches from `start_step` on."""
    from bertjax.data import pipeline  # deferred: tf.data

    return pipeline.make_dataset(
        data.source,
        spec.masking,
        data.tokenizer,
        global_batch_size=spec.loop.batch_size,
        seed=spec.data.seed,
        start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


def _training_token_counts(spec: RunSpec, data: pipeline.PretrainingData, workdir: epath.Path):
    """The training data's token counts (the unigram baseline of evaluation), saved once in
    the workdir for `bertjax evaluate`; None when they would cost a pass over streamed data that
    no evaluation needs."""
    path = workdir / unigram.TOKEN_COUNTS_FILE
    counts = unigram.load_token_counts(path)
    if counts is not None and len(counts) == data.tokenizer.vocab_size:
        return counts
    from bertjax.data.sources.in_memory import InMemoryInstances  # deferred: tf.data

    in_memory = isinstance(data.source, InMemoryInstances)
    if not in_memory and not spec.data.has_eval_data:
        return None
    sample = None if in_memory else _training_dataset(spec, data).as_numpy_iterator()
    counts = unigram.training_token_counts(data, sample)
    if jax.process_index() == 0:
        unigram.save_token_counts(path, counts)
    return counts


def start_summary(start_step: int, manager, writer: metrics.MetricsWriter) -> RunSummary:
    """The run's summary before its first step (steps and metrics filled in by the loop)."""
    return RunSummary(
        steps=start_step,
        start_step=start_step,
        final_metrics={},
        checkpoint_dir=str(manager.directory),
        tensorboard_dir=str(writer.tensorboard_dir),
        metrics_file=str(writer.jsonl_path),
        wall_seconds=0.0,
    )


def training_throughput(spec: RunSpec, vocab_size: int, mesh) -> metrics.Throughput:
    """Tokens/s and MFU of a run of `spec` on `mesh`."""
    length = spec.data.max_seq_length
    flops_per_token = spec.objective.flops_per_token(
        spec.model,
        seq_len=length,
        vocab_size=vocab_size,
        predictions_fraction=spec.masking.max_predictions_per_seq / length,
    )
    return metrics.Throughput(
        spec.loop.batch_size * length, flops_per_token, list(mesh.devices.flat)
    )
