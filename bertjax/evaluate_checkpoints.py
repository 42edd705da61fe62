"""`bertjax evaluate`: a workdir's checkpoints (the latest, chosen steps, or all of them) on the
run's held-out data or on other files, with the fixed masks of `evaluation`, on a data-parallel
mesh of every device whatever mesh the run trained on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import optax
from absl import logging
from etils import epath

from bertjax import checkpointing, paths, sharding, unigram
from bertjax.config import RunSpec, defaults, from_config, known_fields
from bertjax.data import corpus, pretraining_examples
from bertjax.errors import UserError
from bertjax.evaluation import build_eval_set, compile_eval_step, evaluate
from bertjax.train_state import state_setup

if TYPE_CHECKING:
    import ml_collections

# `bertjax evaluate` runs data parallel over every device, whatever mesh the run trained on.
EVALUATE_MESH = {"data": -1, "fsdp": 1, "tensor": 1}


def _evaluation_spec(config: ml_collections.ConfigDict) -> RunSpec:
    """The run's spec as `bertjax evaluate` runs it: on EVALUATE_MESH, its eval_batch_size
    rounded to a multiple of the devices and processes (`evaluation_batch_size`). The run's
    own mesh and batch (another device count: 8 devices' batch of 64 on 3) failed in a
    traceback after the corpus was read."""
    config.mesh_shape, config.dcn_mesh_shape = dict(EVALUATE_MESH), {}
    spec = from_config(config)
    wanted = spec.loop.eval_batch_size
    batch = evaluation_batch_size(wanted, jax.device_count(), jax.process_count())
    if batch != wanted:
        logging.info("eval_batch_size %d -> %d (a multiple of the %d devices)", wanted, batch,
                     jax.device_count())  # fmt: skip
    examples = max(spec.loop.eval_examples, batch)
    loop = dataclasses.replace(spec.loop, eval_batch_size=batch, eval_examples=examples)
    return dataclasses.replace(spec, loop=loop)


def evaluation_batch_size(wanted: int, devices: int, processes: int) -> int:
    """`wanted` rounded down to a multiple of the devices and processes (at least one)."""
    unit = math.lcm(devices, processes)
    return max(unit, wanted // unit * unit)


def workdir_config(workdir: str | epath.Path) -> ml_collections.ConfigDict:
    """The run config saved in `workdir/config.json`, with the workdir's vocabulary."""
    import ml_collections

    path = epath.Path(workdir) / "config.json"
    with paths.remote_errors(path):
        if not path.exists():
            raise UserError(f"{workdir} has no config.json; pass a bertjax training workdir")
        config = ml_collections.ConfigDict(json.loads(path.read_text()))
    # Fields added after the run was made get their defaults; ones since removed are dropped.
    merged, known = defaults(), known_fields()
    merged.update({name: config[name] for name in config if name in known})
    merged.vocab_dir = str(workdir)
    return merged


def run_evaluate(
    workdir: str,
    *,
    data: str | None = None,
    steps: Sequence[int] | None = None,
    all_steps: bool = False,
    out: str | None = None,
    data_reading: dict | None = None,
) -> list[dict]:
    """Evaluates `workdir`'s checkpoints (default: the latest; `steps`; or all of them).

    `data`: held-out files to evaluate on instead of the run's own held-out documents, read
    as the run read its corpus except for `data_reading`'s config fields (text_field,
    text_format, text_encoding).
    Returns one record per checkpoint: {"step", loss, mlm_loss, mlm_accuracy, nsp_loss and
    nsp_accuracy (BERT) or rtd_* (ELECTRA), "examples"}; also written as JSON Lines to `out`
    when given.
    """
    if out and not paths.is_uri(out):  # checked now: the evaluations come before the write
        if os.path.isdir(os.path.expanduser(out)):
            raise UserError(f"--out={out} is a directory; name a file, e.g. {out}/eval.jsonl")
        paths.make_local_dir(os.path.dirname(os.path.abspath(os.path.expanduser(out))), "--out")
    chosen = _chosen_steps(workdir, steps, all_steps)
    _, metadata = checkpointing.open_workdir(workdir, chosen[0])
    from bertjax.convert import model_dir  # reads vocabularies: TensorFlow, off train's path

    model_dir.require_pretrained(workdir, metadata, "evaluate")
    heads = ("cls.predictions.", "cls.seq_relationship.")
    model_dir.warn_if_untrained(workdir, metadata, heads, "their losses and accuracies")
    config = workdir_config(workdir)
    if data:
        config.eval_corpus = data
        config.update(data_reading or {})
    spec = _evaluation_spec(config)
    if not spec.data.has_eval_data:  # build_eval_set's error names training's settings
        raise UserError(
            f"{workdir} was trained with no held-out data (no eval_corpus, eval_holdout_fraction "
            "0); pass text it did not train on: --data=FILES"
        )
    model = dataclasses.replace(spec.model, vocab_size=metadata["model"]["vocab_size"])
    mesh = sharding.create_mesh(EVALUATE_MESH)
    pretraining_model = spec.objective.model_factory(model)
    setup = state_setup(pretraining_model, optax.identity(), mesh, spec.mesh.logical_axis_rules)
    counts = unigram.load_token_counts(epath.Path(workdir) / unigram.TOKEN_COUNTS_FILE)
    try:
        with corpus.corpus_flag("--data", named="--config.eval_corpus"):
            eval_set = build_eval_set(spec, counts=counts)
    except UserError as e:  # the run's objective is given: no advice to train otherwise
        raise UserError(str(e).replace(pretraining_examples.PACKING_ADVICE, "")) from None
    eval_step = compile_eval_step(setup)
    records = []
    for step in chosen:
        params = checkpointing.restore_params(workdir, step, setup.abstract_state.params)
        result = evaluate(params, eval_set, eval_step, mesh)
        records.append({"step": step, **result, "examples": eval_set.num_examples})
    if out:
        epath.Path(out).write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def _chosen_steps(workdir: str, steps: Sequence[int] | None, all_steps: bool) -> list[int]:
    if all_steps:
        return checkpointing.checkpoint_steps(workdir)
    if steps:
        return [checkpointing.open_workdir(workdir, step)[0] for step in steps]
    return [checkpointing.open_workdir(workdir)[0]]


def format_records(records: list[dict]) -> list[str]:
    # The second head's columns: BERT's next-sentence head or ELECTRA's discriminator.
    head = "rtd" if records and "rtd_loss" in records[0] else "nsp"
    auc = "  rtd_auc" if head == "rtd" else ""
    lines = [f"step  examples  mlm_loss  mlm_accuracy  distinct  {head}_loss  {head}_accuracy{auc}"
             "  state_rank"]  # fmt: skip
    for r in records:
        lines.append(
            f"{r['step']:>4}  {r['examples']:>8}  {r['mlm_loss']:8.4f}  {r['mlm_accuracy']:12.4f}"
            f"  {r['mlm_distinct_predictions']:>8}  {r[f'{head}_loss']:8.4f}"
            f"  {r[f'{head}_accuracy']:12.4f}"
            + (f"  {r['rtd_auc']:7.4f}" if auc else "")
            + f"  {r['token_effective_rank']:10.1f}"
        )
    if records and "unigram_mlm_loss" in records[0]:
        r = records[0]
        lines.append(
            f"token frequencies alone on the same positions: mlm_loss "
            f"{r['unigram_mlm_loss']:.4f}  mlm_accuracy {r['unigram_mlm_accuracy']:.4f}"
        )
    return lines
