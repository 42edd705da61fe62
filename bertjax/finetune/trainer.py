"""`bertjax finetune`: fine-tune a pretrained (or randomly initialised) BERT on one task with
several seeds; write per-epoch metrics, per-seed results, and the median/spread over seeds.

  WORKDIR/seed_<s>/metrics.jsonl   one line per epoch: train loss, eval scores
  WORKDIR/seed_<s>/result.json     final eval scores of that seed (a finished seed is not redone)
  WORKDIR/seed_<s>/checkpoint/     while the seed trains: where it is (`seed_checkpoint`), so
                                   a stopped seed resumes there
  WORKDIR/seed_<s>/model/          the fine-tuned model (config.save_model): `bertjax export`
                                   writes it as a Hugging Face BertFor<Task> directory
  WORKDIR/results.json             all seeds, median / min / max of every score, the config
  WORKDIR/results.md               the same as a Markdown table

The recipe (configs/finetune.py): AdamW, linear warmup over warmup_fraction of the steps then
linear decay, weight decay on kernels and embeddings, global-norm clipping, optional layer-wise
learning-rate decay (`optim.layerwise_lr_decay`), dropout from the recipe (0.1, BERT's
fine-tuning value, whatever the pretraining used).

The model, optimizer and jitted steps on the task's mesh are `steps.compile_task`'s, shared by
every seed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
from absl import logging

from bertjax import metrics, paths, preemption, run_lock, sharding
from bertjax.convert import task_heads
from bertjax.data import vocab
from bertjax.errors import UserError
from bertjax.finetune import features, inference, model, recipe, seed_checkpoint, steps, tasks
from bertjax.finetune.choice_records import KIND as CHOICE_KIND
from bertjax.finetune.choice_records import POOLED_KINDS
from bertjax.finetune.records import TEXT_KINDS
from bertjax.finetune.results import MAIN_SCORE, results_table, summarize
from bertjax.progress import Progress
from bertjax.train_state import init_train_state

LOG_EVERY = 50  # steps between progress lines when the config has no log_every


MODEL_DIR = "model"  # in each seed's directory


def finetune(
    task_name: str,
    init: str,
    workdir: str,
    config: ml_collections.ConfigDict,
    *,
    random_init: bool = False,
    step: int | None = None,
    devices: list | None = None,
) -> dict | None:
    """Fine-tunes `init`'s model (its checkpoint at `step`, default the latest) on `task_name`
    once per seed in config.seeds; returns the results dict also written to
    WORKDIR/results.json, or None when SIGTERM or Ctrl-C stopped a seed (saved: the same call
    resumes it). `devices`: the mesh's (default: all)."""
    recipe.validate(config)
    paths.require_local(workdir, "--workdir")
    workdir_path = Path(workdir).expanduser()
    pretrained, encoder, lowercase, vocab_path, init_step = model.load_encoder(init, step)
    bert_config = _finetuning_config(pretrained, config)
    paths.make_local_dir(workdir_path, "--workdir")  # only once the init has loaded
    with run_lock.held(workdir_path):  # one fine-tune at a time in a workdir
        if random_init:  # the init's architecture and vocabulary only: any step has the same
            encoder, init_step = None, None
        recipe.claim_workdir(workdir_path, task_name, init, init_step, random_init, config)
        tokenizer = vocab.load_tokenizer(vocab_path, lowercase)
        task = tasks.hold_out_dev(
            tasks.load_task(task_name, config), recipe.field(config, "dev_fraction")
        )
        prepared = inference.prepare(task, tokenizer, config)
        inference.warn_if_unknown_tokens(prepared.train, tokenizer, "the training examples' tokens")
        if recipe.field(config, "save_model"):
            _warn_if_not_exportable(_task_entry(prepared.task, config), bert_config)
        compiled = steps.compile_task(prepared, bert_config, config, devices)
        per_seed = {}
        for seed in recipe.parse_seeds(config.seeds):
            seed_dir = workdir_path / f"seed_{seed}"
            done = seed_dir / "result.json"
            if (finished := _finished_result(done, seed)) is not None:
                per_seed[seed] = finished
                logging.info("Seed %d already finished: %s", seed, per_seed[seed])
                continue
            seed_dir.mkdir(exist_ok=True)
            trained = train_one_seed(prepared, compiled, encoder, config, seed, seed_dir)
            if trained is None:  # stopped (SIGTERM, Ctrl-C): its checkpoint resumes it
                return None
            per_seed[seed], params = trained
            if recipe.field(config, "save_model"):
                model.save_finetuned(
                    seed_dir / MODEL_DIR, params, bert_config, vocab_path, lowercase,
                    task=_task_entry(prepared.task, config), init=str(paths.as_path(init)),
                    init_step=init_step,
                )  # fmt: skip
            paths.write_text_atomically(done, json.dumps(per_seed[seed], indent=2) + "\n")
            seed_checkpoint.discard(seed_dir)
        results = summarize(
            task_name, init, init_step, random_init, prepared.task, per_seed, config
        )
        (workdir_path / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (workdir_path / "results.md").write_text("\n".join(results_table([results])) + "\n")
    return results


def _finetuning_config(pretrained, config: ml_collections.ConfigDict):
    """The pretrained encoder's BertConfig as fine-tuning runs it (unstacked layers, the
    recipe's dtype and dropout; cuDNN attention, which has no float32 kernel, left to "auto" in
    float32), validated; UserError where max_seq_length exceeds its positions."""
    if config.max_seq_length > pretrained.max_position_embeddings:
        raise UserError(
            f"max_seq_length={config.max_seq_length} exceeds the model's "
            f"{pretrained.max_position_embeddings} positions; lower --config.max_seq_length"
        )
    attention = pretrained.attention_implementation
    return dataclasses.replace(
        pretrained,
        scan_layers=False,
        remat_policy="none",
        dtype=config.dtype,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        attention_implementation=(
            "auto" if attention == "cudnn" and config.dtype == "float32" else attention
        ),
    ).validate()


def _warn_if_not_exportable(task: dict, bert_config) -> None:
    """Says before training what `bertjax export` would refuse of the models it saves (a
    rotary encoder's classifier with BERT's pooler head, mean pooling, ...)."""
    try:
        task_heads.check_exportable(task, bert_config)
    except UserError as refusal:
        logging.warning("The fine-tuned models will not export to Hugging Face: %s", refusal)


def _task_entry(task: tasks.TaskData, config: ml_collections.ConfigDict) -> dict:
    """What a saved fine-tuned model records of its task: what export needs (kind, labels,
    pooling, sequence head) and what `bertjax predict` reads its inputs with (the fields, the
    windows)."""
    spec = tasks.task_spec(task.name, config)
    entry = {"name": task.name, "kind": task.kind, "labels": list(task.labels),
             "pooling": recipe.field(config, "pooling"),
             "max_seq_length": config.max_seq_length}  # fmt: skip
    if task.kind in POOLED_KINDS:
        entry["sequence_head"] = recipe.field(config, "sequence_head")
    if task.kind == "multilabel":
        entry["multilabel_threshold"] = recipe.field(config, "multilabel_threshold")
    if task.label_studio_names:  # predict's pre-annotations name the labeling config's tags
        entry["label_studio_names"] = list(task.label_studio_names)
    if task.kind in TEXT_KINDS:
        return entry | {"text_fields": list(spec.text_fields)}
    if task.kind == CHOICE_KIND:
        return entry | {"text_fields": list(spec.text_fields),
                        "choice_fields": list(spec.choice_fields)}  # fmt: skip
    if task.kind == "tagging" and spec.spans_field:  # predict reads the text, writes spans
        return entry | {"text_field": spec.text_fields[0], "spans_field": spec.spans_field}
    if task.kind == "tagging":
        return entry | {"tokens_field": spec.tokens_field}
    windows = {name: config[name] for name in inference.QA_FIELDS}
    null_threshold = inference.null_score_diff_threshold(task, config)  # None: SQuAD v1.1
    return entry | windows | {"null_score_diff_threshold": null_threshold}


def train_one_seed(
    prepared: inference.Prepared,
    compiled: steps.Compiled,
    encoder,
    config: ml_collections.ConfigDict,
    seed: int,
    out: Path,
) -> tuple[dict, Any] | None:
    """Trains one seed for config.num_epochs, evaluating after each epoch (on the eval split,
    and on the dev split when the task has one: `dev_*` scores); returns the kept epoch's
    scores plus `epoch`, train_seconds and steps, and that epoch's parameters (on the mesh).
    The kept epoch is the last, or with select_epoch="best" the first with the highest dev
    main score (`results.MAIN_SCORE`). Shows progress (a bar on a terminal, else a line every
    log_every steps) with the training loss and examples/s of the steps since the last one.

    Resumes from the seed's checkpoint (`seed_checkpoint`) when it has one; saves one every
    checkpoint_every steps, and returns None after saving one when SIGTERM or Ctrl-C stops it."""
    checkpoints = seed_checkpoint.SeedCheckpoints(
        out, recipe.field(config, "checkpoint_every"),
        keeps_apart=recipe.field(config, "select_epoch") == "best",
    )  # fmt: skip
    main_score = MAIN_SCORE[prepared.task.kind]
    start = _start_or_resume(compiled, encoder, config, seed, checkpoints, main_score)
    try:
        with preemption.PreemptionWatcher() as watcher:
            outcome = _train_epochs(
                prepared, compiled, config, seed, out, start, checkpoints, watcher
            )
    finally:
        checkpoints.close()
    if isinstance(outcome, str):  # stopped: the line that says where it was saved
        print(outcome)
        return None
    return outcome


def _start_or_resume(compiled, encoder, config, seed, checkpoints, main_score):
    """(state, _KeptEpoch, SeedPosition): the seed's checkpoint's, or a fresh start."""
    select, main = recipe.field(config, "select_epoch"), main_score
    resumed = checkpoints.restore(compiled.setup.abstract_state)
    if resumed is None:
        state = init_train_state(compiled.setup, compiled.make_model, compiled.tx, seed)
        if encoder is not None:
            state = state.replace(params=model.with_encoder(state.params, encoder))
        position = seed_checkpoint.SeedPosition()
        return state, _KeptEpoch(select, main), position
    state, kept_params, position = resumed
    kept = _KeptEpoch(select, main)
    kept.epoch, kept.result = position.kept_epoch, position.kept_result
    kept.params = kept_params if position.kept_epoch else None
    logging.info(
        "Seed %d resumes at epoch %d after %d of its batches (step %d)",
        seed, position.epoch, position.batches_done, position.step,
    )  # fmt: skip
    return state, kept, position


def _train_epochs(prepared, compiled, config, seed, out, start, checkpoints, watcher):
    """The epochs from `start` = (state, kept, position) on: (summary, kept parameters), or,
    when `watcher` stops the seed, the line that says where it was saved."""
    state, kept, position = start
    train_step, mesh = compiled.train_step, compiled.mesh
    dropout_key = jax.random.key(seed)
    step, base_seconds, started = position.step, position.seconds, time.perf_counter()
    log_every = config.get("log_every", LOG_EVERY)
    progress = Progress(
        compiled.total_steps, initial=step, description=f"seed {seed}",
        enabled=jax.process_index() == 0,
    )  # fmt: skip
    interval = _Interval()
    metrics_path = out / "metrics.jsonl"
    _keep_epochs_before(metrics_path, position.epoch)
    rng = seed_checkpoint.rng_at(position.epoch_rng_state, seed)
    with metrics_path.open("a") as log:
        for epoch in range(position.epoch, config.num_epochs + 1):
            position = position.at_epoch(epoch)
            position.epoch_rng_state = rng.bit_generator.state  # before the epoch's shuffle
            loss_sum, count = position.loss_sum, position.count
            batches = features.batches(
                prepared.train, config.batch_size, config.max_seq_length, rng=rng
            )
            for index, (_, batch) in enumerate(batches):
                if index < position.batches_done:  # trained before the seed was stopped
                    continue
                batch = sharding.global_batch_from_local(batch, mesh)
                key = jax.random.fold_in(dropout_key, step)
                state, total, n = train_step(state, batch, key)
                loss_sum, count, step = loss_sum + total, count + n, step + 1
                interval.add(total, n)
                progress.update()
                if step % log_every == 0 or step in (1, compiled.total_steps):
                    progress.report(interval.values(config.batch_size))
                stop = watcher.should_stop(step)
                if stop or checkpoints.due(step):
                    seconds = base_seconds + time.perf_counter() - started
                    position = _position_after(position, index, step, (loss_sum, count), kept,
                                               seconds)  # fmt: skip
                    checkpoints.save(step, state, kept.params, position)
                if stop:
                    progress.close()
                    return (
                        f"{watcher.stopped_by}: saved seed {seed} at step {step} (epoch "
                        f"{epoch}); re-run the same command to resume."
                    )
            eval_start = time.perf_counter()
            result = _evaluate_epoch(prepared, state.params, compiled, config)
            interval.start += time.perf_counter() - eval_start  # not in examples/s
            kept.offer(epoch, result, state.params)
            record = {"epoch": epoch, "step": step, "train_loss": float(loss_sum / count)}
            record.update(result, seconds=base_seconds + time.perf_counter() - started)
            log.write(json.dumps(record) + "\n")
            log.flush()
            logging.info("seed %d epoch %d: %s", seed, epoch, record)
    progress.close()
    seconds = base_seconds + time.perf_counter() - started
    summary = {**kept.result, "epoch": kept.epoch, "train_seconds": seconds}
    return summary | {"steps": step}, kept.params


def _evaluate_epoch(prepared, params, compiled: steps.Compiled, config) -> dict:
    """The epoch's scores on the eval split, and on the dev split (`dev_*`) when there is one."""
    predict, mesh = compiled.predict, compiled.mesh
    result = inference.evaluate(prepared, params, predict, mesh, config)
    if prepared.dev is not None:
        dev = inference.evaluate(prepared, params, predict, mesh, config, "dev")
        result |= {f"dev_{name}": value for name, value in dev.items()}
    return result


def _position_after(position, index: int, step: int, losses, kept, seconds: float):
    """`position` once batch `index` of its epoch (step `step`) is trained: the epoch's loss sums
    `losses`, the kept epoch and the training seconds so far."""
    loss_sum, count = losses
    return dataclasses.replace(
        position, batches_done=index + 1, step=step, loss_sum=float(loss_sum), count=float(count),
        kept_epoch=kept.epoch, kept_result=kept.result, seconds=seconds,
    )  # fmt: skip


def _finished_result(path: Path, seed: int) -> dict | None:
    """A finished seed's scores (its result.json); None when it has none, or an unreadable one
    (cut short: the seed is trained again, from its checkpoint where one is left)."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except ValueError as e:
        result = f"{e}"
    if isinstance(result, dict):
        return result
    logging.warning("%s is unreadable (%s): seed %d is trained again", path, result, seed)
    return None


def _keep_epochs_before(metrics_path: Path, epoch: int) -> None:
    """Drops the lines of `epoch` and later from a seed's metrics.jsonl (a resumed seed writes
    them again; a fresh one, epoch 1, starts it empty), and lines cut short (a kill or a full
    disk mid-write)."""
    if not metrics_path.exists():
        return
    kept = [
        line + "\n"
        for line in metrics_path.read_text().splitlines()
        if (record := metrics.read_record(line, "epoch")) is not None and record["epoch"] < epoch
    ]
    paths.write_text_atomically(metrics_path, "".join(kept))


class _KeptEpoch:
    """The epoch a seed keeps: the last one, or ("best") the first with the highest dev score
    `dev_<main>`; its scores and its parameters, copied (the train step donates the state's)."""

    def __init__(self, select: str, main_score: str):
        self.select, self.key = select, f"dev_{main_score}"
        self.epoch, self.result, self.params = 0, {}, None

    def offer(self, epoch: int, result: dict, params) -> None:
        if self.select == "best" and self.params is not None:
            if not result[self.key] > self.result[self.key]:
                return
        self.epoch, self.result = epoch, result
        self.params = jax.tree.map(lambda x: x.copy(), params) if self.select == "best" else params


class _Interval:
    """Loss sums and steps since the last progress report."""

    def __init__(self):
        self.loss_sum, self.count, self.steps, self.start = 0.0, 0.0, 0, time.perf_counter()

    def add(self, loss_sum, count) -> None:
        self.loss_sum += loss_sum  # device arrays: read once per report, not every step
        self.count += count
        self.steps += 1

    def values(self, batch_size: int) -> dict[str, str]:
        """The interval's mean loss and examples/s (batch rows, padding rows of a last partial
        batch included), then a new interval."""
        seconds = time.perf_counter() - self.start
        values = {"loss": f"{float(self.loss_sum) / max(float(self.count), 1.0):.4f}",
                  "ex/s": f"{self.steps * batch_size / seconds:.0f}"}  # fmt: skip
        self.__init__()
        return values
