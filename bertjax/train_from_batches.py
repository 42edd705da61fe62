"""Pretraining on carried batches: `train_from_batches(spec, batches_dir, workdir)`.

The training loop of `train.train_and_evaluate` (same step, checkpoints, metrics, resume), fed
by `.npy` batches that `data.batch_files.export_batches` wrote on another machine instead of by
the tf.data pipeline. It needs neither TensorFlow, a tokenizer nor ml_collections: a `RunSpec`
comes from `config.from_config` on a plain dict of config fields (`run_spec`). For accelerator
machines that have only JAX (benchmarks/gpu_check.sh). The workdir is a training workdir
(config.json, vocab.txt when carried, checkpoints/, metrics.jsonl), so `bertjax export` and
`bertjax fill-mask` read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from pathlib import Path

import jax
from absl import logging

from bertjax import (
    checkpointing,
    config,
    metrics,
    optim,
    resume_checks,
    run_lock,
    train,
    train_loop,
    train_step,
)
from bertjax.data import batch_files
from bertjax.errors import UserError
from bertjax.train_state import init_train_state, state_setup


def run_spec(fields: dict, model_size: str = "base") -> config.RunSpec:
    """The RunSpec of config `fields` (a plain dict: any config field, e.g. dtype="bfloat16")
    on top of the defaults and `model_size`'s layers, width and heads; no ml_collections."""
    layers, hidden, heads = config.MODEL_SIZES[model_size]
    sizes = dict(
        num_hidden_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
    )
    return config.from_config({**sizes, **fields})


def spec_for_batches(spec: config.RunSpec, files: batch_files.BatchFiles) -> config.RunSpec:
    """`spec` with the shape of the carried batches (batch size, sequence length, prediction
    cap) and no held-out evaluation (no held-out data is carried)."""
    return dataclasses.replace(
        spec,
        model=dataclasses.replace(spec.model, vocab_size=files.vocab_size),
        data=dataclasses.replace(spec.data, max_seq_length=files.max_seq_length),
        masking=dataclasses.replace(
            spec.masking, max_predictions_per_seq=files.manifest["max_predictions_per_seq"]
        ),
        loop=dataclasses.replace(spec.loop, batch_size=files.batch_size, eval_every=0),
    )


def flat_config(spec: config.RunSpec, **extra) -> dict:
    """The spec as the flat dict of config fields a ConfigDict holds (config.json, checkpoint
    metadata); vocab_size is the model's."""
    fields: dict = {}
    parts = (spec.data, spec.masking, spec.optimizer, spec.mesh, spec.loop, spec.model)
    for part in (*parts, spec.objective):
        fields.update(dataclasses.asdict(part))
    return json.loads(json.dumps({**fields, **extra}, default=list))


def train_from_batches(
    spec: config.RunSpec, batches_dir: str | Path, workdir: str | Path
) -> train.RunSummary:
    """Trains `spec` (shaped to the batches by `spec_for_batches`) on the batches in
    `batches_dir` for spec.loop.num_train_steps steps, cycling through them; re-running with the
    same workdir resumes from its latest checkpoint; a second run while one trains there is
    refused (`run_lock`)."""
    wall_start = time.perf_counter()
    files = batch_files.load_batch_files(batches_dir)
    spec = spec_for_batches(spec, files)
    workdir = Path(workdir).expanduser()
    config.check_runnable(spec, workdir)
    with run_lock.held(workdir, lead=jax.process_index() == 0), contextlib.ExitStack() as to_close:
        return _train(spec, files, workdir, wall_start, to_close)


def _train(
    spec: config.RunSpec,
    files: batch_files.BatchFiles,
    workdir: Path,
    wall_start: float,
    to_close: contextlib.ExitStack,
) -> train.RunSummary:
    """As `train._train`: the checkpoint manager and the metrics writer close however it ends."""
    model, loop = spec.model, spec.loop
    mesh = spec.mesh.create_mesh()
    tx = train.pretraining_optimizer(spec)
    schedule = optim.learning_rate_schedule(spec.optimizer)
    rules = spec.mesh.logical_axis_rules
    fields = train.model_fields(model, spec.objective)
    pretraining_model = spec.objective.model_factory(model, spec.masking.masked_lm_prob)
    manager = checkpointing.run_checkpoint_manager(workdir, spec)
    to_close.callback(checkpointing.close_manager, manager)
    if manager.latest_step() is not None:
        checkpointing.check_resumed_vocabulary(
            workdir, files.directory, "export batches with that vocabulary or start a new --workdir"
        )
    setup = state_setup(pretraining_model, tx, mesh, rules)
    state, restored_step = checkpointing.restore_or_init(
        manager,
        setup.abstract_state,
        lambda: init_train_state(setup, pretraining_model, tx, loop.seed),
        fields,
    )
    saved = flat_config(spec, batches_dir=str(files.directory))
    start_step = int(restored_step or 0)
    writer = metrics.MetricsWriter(workdir, enabled=jax.process_index() == 0)
    to_close.callback(writer.close)
    summary = train.start_summary(start_step, manager, writer)
    if start_step >= loop.num_train_steps:  # nothing trained: the run's config.json stays
        logging.info("Checkpoint at step %d: training already finished.", start_step)
        summary.final_metrics = metrics.last_logged_metrics(writer.jsonl_path)
    else:
        if jax.process_index() == 0:  # once the checkpoint fits: a refused resume rewrites nothing
            (workdir / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
            for name in checkpointing.VOCABULARY_FILES:
                if (files.directory / name).is_file():
                    shutil.copyfile(files.directory / name, workdir / name)
        carried_interval = resume_checks.resume_metrics(manager, writer, restored_step, saved)
        stream = files.stream(start_step, jax.process_index(), jax.process_count())
        step_fn = train_step.compile_train_step(setup, tx, schedule, mesh, loop.grad_accum_steps)
        # As `checkpointing.metadata_for`: the number of processes, which the stream depends on.
        metadata = {"config": saved, "model": fields, "processes": jax.process_count()}
        throughput = train.training_throughput(spec, model.vocab_size, mesh)
        summary.final_metrics, summary.steps = train_loop.train_loop(
            loop, state, stream, step_fn, mesh, manager, writer, metadata, start_step,
            throughput, carried_interval=carried_interval,
        )  # fmt: skip
    summary.wall_seconds = time.perf_counter() - wall_start
    return summary


def restore_latest(spec: config.RunSpec, batches_dir: str | Path, workdir: str | Path):
    """(step, TrainState) of `workdir`'s newest checkpoint, restored onto this machine's mesh
    with the shardings training uses; UserError when there is none."""
    spec = spec_for_batches(spec, batch_files.load_batch_files(batches_dir))
    mesh = spec.mesh.create_mesh()
    tx = train.pretraining_optimizer(spec)
    pretraining_model = spec.objective.model_factory(spec.model, spec.masking.masked_lm_prob)
    setup = state_setup(pretraining_model, tx, mesh, spec.mesh.logical_axis_rules)
    manager = checkpointing.create_checkpoint_manager(
        Path(workdir).expanduser() / "checkpoints", save_every=1, keep=spec.loop.keep_checkpoints
    )
    try:
        state, step = checkpointing.restore_or_init(
            manager,
            setup.abstract_state,
            _no_checkpoint(workdir),
            train.model_fields(spec.model, spec.objective),
        )
    finally:
        manager.close()
    return step, state


def _no_checkpoint(workdir):
    def fail():
        raise UserError(f"{workdir} holds no checkpoint; train into it first")

    return fail
