"""What a resumed pretraining run says before its first step: changes since its checkpoint to
what it trains (config fields, the data files at the same paths, the number of processes that
split streamed data), and the metrics lines after the checkpoint dropped (they are written
again)."""

from __future__ import annotations

import os

import jax
from absl import logging
from etils import epath

from bertjax import checkpointing, metrics, optim, process_agreement
from bertjax.config import training_changes


def resume_metrics(
    manager, writer: metrics.MetricsWriter, restored_step: int | None, run_config: dict,
    run_files: list | None = None,
):  # fmt: skip
    """Before the loop: drops metrics lines after the restored step (process 0), warns about
    changes since the checkpoint to what the run trains (`run_config`: this run's config as
    JSON values, as checkpoints save it; `run_files`: its `data_files`), and returns the open
    interval the checkpoint carried (None for a fresh run or an older checkpoint)."""
    start_step = int(restored_step or 0)
    carried_interval = None
    if restored_step is not None:
        print(f"Resuming from checkpoint at step {start_step} in {manager.directory}")
        saved = checkpointing.read_metadata(manager, start_step)
        carried_interval = saved.get(metrics.MetricsInterval.METADATA_KEY)
        changes = training_changes(saved.get("config", {}), run_config)
        if changes:
            logging.warning(
                "Resuming step %d with changes to what the run trains since that checkpoint: "
                "%s (%s). It goes on with the new values, no longer the run it started as; "
                "for a new run from these weights use a new --workdir with --config.init_from",
                start_step, ", ".join(changes),
                optim.rate_change(saved.get("config", {}), run_config, start_step),
            )  # fmt: skip
        _warn_if_stream_changes(saved.get("processes"), run_config, start_step)
        fields = ("corpus", "prepared_dir")  # a changed field is said above
        same_paths = all(saved.get("config", {}).get(f) == run_config.get(f) for f in fields)
        if same_paths and run_files is not None:
            _warn_if_files_change(saved.get("data_files"), run_files, start_step)
    if jax.process_index() == 0:
        metrics.drop_metrics_after(writer.jsonl_path, start_step)
    return carried_interval


def data_files(data) -> list[list]:
    """[[base name, size in bytes], ...] of the files a run reads its training data from (its
    corpus, or its prepared shards): saved with checkpoints, so a resume can tell a file
    replaced or grown in place (the same path, other text: other batches from there on). Sizes,
    not contents: a corpus can be terabytes; a TFDS source has size -1."""
    from bertjax.data import corpus  # deferred: tf.data

    if data.prepared_dir:
        directory = epath.Path(data.prepared_dir)
        files = sorted(str(path) for path in directory.glob("*.tfrecord"))
    else:
        files = corpus.resolve_files(data.corpus)
    return [[os.path.basename(path), process_agreement.file_size(path)] for path in files]


def _warn_if_files_change(saved: list | None, run_files: list, step: int) -> None:
    if saved is None or saved == run_files:  # None: a checkpoint from before 2026-12-07
        return
    before, now = dict(map(tuple, saved)), dict(map(tuple, run_files))
    changed = [
        f"{name} {before.get(name, 'absent')} -> {now.get(name, 'absent')} bytes"
        for name in sorted(before.keys() | now.keys())
        if before.get(name) != now.get(name)
    ]
    logging.warning(
        "Resuming step %d with training data files changed since that checkpoint (the same "
        "paths, other files): %s%s. The batches from here are others than the run would have "
        "read; restore the files for the same run",
        step, ", ".join(changed[:5]), f" and {len(changed) - 5} more" if len(changed) > 5 else "",
    )  # fmt: skip


def _warn_if_stream_changes(saved_processes: int | None, run_config: dict, step: int) -> None:
    """Streamed data (`streaming`, prepared shards) is split by process: with another number
    of processes the batches after `step` are not those the run would have read."""
    streamed = run_config.get("streaming") or run_config.get("prepared_dir")
    if streamed and saved_processes not in (None, jax.process_count()):
        logging.warning(
            "Resuming step %d with %d processes where the checkpoint's run had %d: each process "
            "streams its own files, so the batches from here are others than the run would "
            "have read (the same data, in another order); resume with %d processes for the "
            "same run", step, jax.process_count(), saved_processes, saved_processes,
        )  # fmt: skip
