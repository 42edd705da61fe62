"""Held-out evaluation of pretraining: MLM loss/accuracy and NSP accuracy with fixed masks.

The evaluation set is the first `eval_examples` examples (whole batches) of the stream that
`pipeline.make_dataset` makes from the held-out instances with `eval_seed`: every example is a
pure function of (eval_seed, index), so the same positions are masked, with the same
replacements, every time. Numbers therefore compare across checkpoints, runs and meshes. The
held-out instances come from `config.eval_corpus`, or from the documents of `config.corpus`
held out by `config.eval_holdout_fraction` (which training then never sees).

During training `eval_every` runs it periodically; `bertjax evaluate --workdir=DIR` runs it on a
workdir's checkpoints (one, or all of them for a curve).
"""

import dataclasses
import json
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
import optax
from etils import epath
from jax.sharding import NamedSharding, PartitionSpec

from bertjax import checkpointing, losses, sharding
from bertjax.data import pipeline
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig
from bertjax.train_state import StateSetup, state_setup

EvalStep = Callable[[dict, dict], dict]


@dataclasses.dataclass
class EvalSet:
    """This process's slices of the fixed evaluation batches, as host numpy arrays."""

    batches: list[dict[str, np.ndarray]]
    num_examples: int  # over all processes


def has_eval_data(config: ml_collections.ConfigDict) -> bool:
    return bool(config.get("eval_corpus", "")) or config.get("eval_holdout_fraction", 0.0) > 0


def build_eval_set(
    config: ml_collections.ConfigDict, data: pipeline.PretrainingData | None = None
) -> EvalSet:
    """Reads the held-out corpus and materialises the fixed batches (see the module docstring).

    `data`: held-out PretrainingData already built (`build_pretraining_data(config, "eval")`).
    """
    if not has_eval_data(config):
        raise UserError(
            "no held-out data: set --config.eval_corpus=FILES or --config.eval_holdout_fraction"
            "=0.01 (documents of the corpus kept out of training)"
        )
    data = data or pipeline.build_pretraining_data(config, split="eval")
    instances = data.instances
    available = len(instances["input_ids"])
    batch_size = config.eval_batch_size
    num_batches = min(config.eval_examples, available) // batch_size
    if num_batches == 0:
        raise UserError(
            f"the held-out data has {available} instances, fewer than one evaluation batch of "
            f"{batch_size}; lower --config.eval_batch_size or hold out more documents"
        )
    dataset = pipeline.make_dataset(
        instances,
        global_batch_size=batch_size,
        seed=config.eval_seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        **pipeline.masking_kwargs(data.tokenizer, config),
    )
    batches = list(dataset.take(num_batches).as_numpy_iterator())
    return EvalSet(batches=batches, num_examples=num_batches * batch_size)


def compile_eval_step(setup: StateSetup) -> EvalStep:
    """jit((params, batch) -> metric sums) without dropout, params as the state has them."""
    mesh = setup.mesh

    def eval_step(params: dict, batch: dict) -> dict:
        return losses.pretraining_sums(setup.pretraining_outputs(params, batch), batch)

    return jax.jit(
        eval_step,
        in_shardings=(setup.shardings.params, sharding.batch_sharding(mesh)),
        out_shardings=NamedSharding(mesh, PartitionSpec()),
    )


def evaluate(params: dict, eval_set: EvalSet, eval_step: EvalStep, mesh) -> dict[str, float]:
    """Means over the whole evaluation set: loss, mlm_loss, mlm_accuracy, nsp_loss, nsp_accuracy."""
    total = None
    for local in eval_set.batches:
        sums = eval_step(params, sharding.global_batch_from_local(local, mesh))
        total = sums if total is None else jax.tree.map(np.add, total, sums)
    return losses.summarize(jax.device_get(total))


def workdir_config(workdir: str | epath.Path) -> ml_collections.ConfigDict:
    """The run config saved in `workdir/config.json`, with the workdir's vocabulary."""
    path = epath.Path(workdir) / "config.json"
    if not path.exists():
        raise UserError(f"{workdir} has no config.json; pass a bertjax training workdir")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    from configs import base  # fields added after the run was made get their defaults

    merged = base.get_config()
    merged.update(config)
    merged.vocab_dir = str(workdir)
    return merged


def run_evaluate(
    workdir: str,
    *,
    data: str | None = None,
    steps: Sequence[int] | None = None,
    all_steps: bool = False,
    out: str | None = None,
) -> list[dict]:
    """Evaluates `workdir`'s checkpoints (default: the latest; `steps`; or all of them).

    `data`: held-out files to evaluate on instead of the run's own held-out documents.
    Returns one record per checkpoint: {"step", loss, mlm_loss, mlm_accuracy, nsp_loss,
    nsp_accuracy, "examples"}; also written as JSON Lines to `out` when given.
    """
    config = workdir_config(workdir)
    if data:
        config.eval_corpus = data
    chosen = _chosen_steps(workdir, steps, all_steps)
    _, metadata = checkpointing.open_workdir(workdir, chosen[0])
    vocab_size = metadata["model"]["vocab_size"]
    mesh = sharding.create_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    model_config = BertConfig.from_config(config, vocab_size)
    setup = state_setup(model_config, optax.identity(), mesh, config.logical_axis_rules)
    eval_set = build_eval_set(config)
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
    lines = ["step  examples  mlm_loss  mlm_accuracy  nsp_loss  nsp_accuracy"]
    for r in records:
        lines.append(
            f"{r['step']:>4}  {r['examples']:>8}  {r['mlm_loss']:8.4f}  {r['mlm_accuracy']:12.4f}"
            f"  {r['nsp_loss']:8.4f}  {r['nsp_accuracy']:12.4f}"
        )
    return lines
