"""Training dynamics of bertjax against an independent PyTorch loop: same weights, same batches.

Both sides start from bertjax's initial parameters (exported to a Hugging Face
`BertForPreTraining` with `bertjax.convert.hf.params_to_hf`) and train, fp32 with dropout off, on
the same batches dumped from bertjax's tf.data pipeline (`make_dataset` on the embedded corpus):

  * bertjax: the real `train_step.train_step`, compiled by `train_step.compile_train_step`
    (1-device mesh);
  * PyTorch: transformers' `BertForPreTraining` (eager attention) in a hand-written loop:
    bertjax's loss (mean cross-entropy over the real masked positions + mean NSP cross-entropy),
    `torch.nn.utils.clip_grad_norm_`, `torch.optim.AdamW` with weight-decay groups chosen by
    Hugging Face parameter name, warmup + linear decay as a `LambdaLR`.

Per-step losses and the final parameters (per tensor, by Hugging Face name) are compared:

  python -m benchmarks.training_parity --steps=200 --out=/tmp/parity
  python -m benchmarks.training_parity --steps=200 --packing          # MLM-only packed rows
  python -m benchmarks.training_parity --steps=200 --perturb=eps_1e-8  # must report FAIL

`--perturb` changes one setting of the PyTorch side only, to show the check can fail.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import torch
import transformers

from bertjax import losses, optim, sharding, train_step
from bertjax.config import from_config, load_config
from bertjax.convert import hf
from bertjax.data import pipeline
from bertjax.models.bert import BertConfig
from bertjax.train_state import create_train_state

METRICS = ("loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "grad_norm", "learning_rate")
TIED = (hf.TIED_DECODER, hf.TIED_DECODER_BIAS)  # same tensors as the embeddings / MLM bias


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """Bounds of a passing comparison (fp32 on CPU; see docs/results.md for the measurements).

    `loss`: max over steps of |loss_bertjax - loss_torch|. `param_drift`: max over tensors of
    ||final_bertjax - final_torch|| / ||final_torch - initial||, the disagreement as a fraction
    of how far training moved that tensor, over tensors that get a gradient. `no_gradient_abs`:
    max |final_bertjax - final_torch| over those that do not (`has_gradient`).
    """

    loss: float = 2e-5
    param_drift: float = 1e-3
    no_gradient_abs: float = 1e-6


@dataclasses.dataclass(frozen=True)
class TorchRecipe:
    """The PyTorch side's optimizer settings, read from the bertjax config."""

    learning_rate: float
    warmup_steps: int
    num_train_steps: int
    b1: float
    b2: float
    eps: float
    weight_decay: float
    max_grad_norm: float
    decay_layer_norm_and_bias: bool = False  # True only as a deliberately wrong setting


# Deliberately wrong PyTorch settings: each must make the comparison fail.
PERTURBATIONS = {
    "decay_all": {"decay_layer_norm_and_bias": True},
    "clip_0.5": {"max_grad_norm": 0.5},
    "eps_1e-8": {"eps": 1e-8},
}


@dataclasses.dataclass
class Trajectory:
    """One side's run: per-step metrics [steps] and final parameters by Hugging Face name."""

    metrics: dict[str, np.ndarray]
    final_params: dict[str, np.ndarray]
    wall_seconds: float
    first_step_seconds: float  # bertjax: includes compilation


def parity_config(steps: int, *, packing: bool = False) -> ml_collections.ConfigDict:
    """BERT-tiny (L2/H128/A2, BERT's absolute positions) on the embedded corpus, a 2,000-token
    trained vocabulary, 16 rows of 64 tokens; AdamW at peak 1e-3 after 10 warmup steps, linear
    decay to 0 at `steps`; dropout off; one device. The architecture is pinned: cpu_smoke's
    relative positions (since 2026-12-01) leave the absolute table untrained, which the check
    that training moved every matrix refuses."""
    config = load_config(Path(__file__).resolve().parent.parent / "configs" / "cpu_smoke.py")
    config.update(
        vocab_size=2000,
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=1,
        packing=packing,
        batch_size=16,
        num_train_steps=steps,
        warmup_steps=10,
        learning_rate=1e-3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        position_embedding_type="absolute",
        position_embedding_init="normal",
        mesh_shape={"data": 1, "fsdp": 1, "tensor": 1},
    )
    return config


def recipe_from_config(config: ml_collections.ConfigDict) -> TorchRecipe:
    return TorchRecipe(
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        num_train_steps=config.num_train_steps,
        b1=config.adam_b1,
        b2=config.adam_b2,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
    )


def pipeline_batches(
    config: ml_collections.ConfigDict,
) -> tuple[list[dict[str, np.ndarray]], int, int]:
    """The first `num_train_steps` batches bertjax's pipeline gives this config, as numpy.

    Returns (batches, vocab_size, pad_id)."""
    spec = from_config(config)
    data = pipeline.build_pretraining_data(spec.data)
    dataset = pipeline.make_dataset(
        data.source,
        spec.masking,
        data.tokenizer,
        global_batch_size=config.batch_size,
        seed=config.seed,
    )
    iterator = dataset.as_numpy_iterator()
    batches = [next(iterator) for _ in range(config.num_train_steps)]
    return batches, data.tokenizer.vocab_size, data.tokenizer.pad_id


def run_bertjax(
    config: ml_collections.ConfigDict, vocab_size: int, batches: list[dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], Trajectory]:
    """Initial parameters (Hugging Face names) and the run of bertjax's compiled train_step."""
    mesh = sharding.create_mesh(config.mesh_shape, devices=jax.devices()[:1])
    optimizer = optim.OptimizerSpec.from_config(config)
    tx = optim.create_optimizer(optimizer)
    model_config = BertConfig.from_config(config, vocab_size)
    state, setup = create_train_state(
        model_config, tx, mesh, config.logical_axis_rules, config.seed
    )
    initial = hf.params_to_hf(jax.device_get(state.params))
    schedule = optim.learning_rate_schedule(optimizer)
    step_fn = train_step.compile_train_step(setup, tx, schedule, mesh)
    dropout_key = jax.random.key(config.seed + 1)
    rows, start, first_step = [], time.perf_counter(), 0.0
    for batch in batches:
        state, step_metrics = step_fn(
            state, sharding.global_batch_from_local(batch, mesh), dropout_key
        )
        host = jax.device_get(step_metrics)
        rows.append({
            **losses.summarize(host),
            "grad_norm": float(host["grad_norm"]),
            "learning_rate": float(host["learning_rate"]),
        })  # fmt: skip
        first_step = first_step or time.perf_counter() - start
    final = hf.params_to_hf(jax.device_get(state.params))
    return initial, Trajectory(_columns(rows), final, time.perf_counter() - start, first_step)


def _columns(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    return {name: np.array([row[name] for row in rows]) for name in METRICS}


def torch_model(
    initial: dict[str, np.ndarray], model_config: BertConfig, pad_id: int
) -> transformers.BertForPreTraining:
    """transformers' BertForPreTraining (fp32, eager attention) holding `initial`."""
    fields = hf.hf_config(model_config, pad_token_id=pad_id)
    config = transformers.BertConfig(**fields, attn_implementation="eager")
    model = transformers.BertForPreTraining(config)
    model.load_state_dict({name: torch.from_numpy(a.copy()) for name, a in initial.items()})
    return model.train()  # dropout probabilities are 0: train mode only matters for the record


def is_decayed(name: str, recipe: TorchRecipe) -> bool:
    """BERT's rule on Hugging Face names: decay weight matrices and embeddings, not LayerNorm
    parameters or biases (unless the recipe is deliberately wrong)."""
    if recipe.decay_layer_norm_and_bias:
        return True
    return name.endswith(".weight") and ".LayerNorm." not in name


def torch_optimizer(
    model: torch.nn.Module, recipe: TorchRecipe
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with decayed and undecayed parameter groups, and warmup + linear decay."""
    named = list(model.named_parameters())  # tied decoder weight and bias appear once
    decayed = [p for n, p in named if is_decayed(n, recipe)]
    undecayed = [p for n, p in named if not is_decayed(n, recipe)]
    groups = [
        {"params": decayed, "weight_decay": recipe.weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=recipe.learning_rate, betas=(recipe.b1, recipe.b2), eps=recipe.eps
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, recipe))


def lr_factor(step: int, recipe: TorchRecipe) -> float:
    """Multiplier of the peak rate at update `step` (0-based): 0 -> 1 over the warmup steps, then
    linearly to 0 at num_train_steps."""
    if step < recipe.warmup_steps:
        return step / recipe.warmup_steps
    decay_steps = max(recipe.num_train_steps - recipe.warmup_steps, 1)
    return max(0.0, 1.0 - (step - recipe.warmup_steps) / decay_steps)


def torch_loss(
    model: transformers.BertForPreTraining, batch: dict[str, np.ndarray]
) -> tuple[torch.Tensor, dict[str, float]]:
    """bertjax's objective, written out: cross-entropy of `prediction_logits` gathered at
    masked_lm_positions, averaged over masked_lm_weights, plus the NSP cross-entropy averaged
    over next_sentence_weights (1 per row when absent)."""
    t = {name: torch.from_numpy(np.array(value)) for name, value in batch.items()}
    out = model(
        input_ids=t["input_ids"].long(),
        token_type_ids=t["segment_ids"].long(),
        attention_mask=_attention_mask(t),
    )
    positions = t["masked_lm_positions"].long()
    vocab = out.prediction_logits.shape[-1]
    logits = out.prediction_logits.gather(1, positions[:, :, None].expand(-1, -1, vocab))
    labels, weights = t["masked_lm_ids"].long(), t["masked_lm_weights"]
    per_position = torch.nn.functional.cross_entropy(
        logits.reshape(-1, vocab), labels.reshape(-1), reduction="none"
    ).reshape(labels.shape)
    mlm_weight = weights.sum().clamp(min=1.0)
    mlm_loss = (per_position * weights).sum() / mlm_weight
    nsp_labels = t["next_sentence_labels"].long()
    nsp_weights = t.get("next_sentence_weights", torch.ones(nsp_labels.shape))
    per_row = torch.nn.functional.cross_entropy(
        out.seq_relationship_logits, nsp_labels, reduction="none"
    )
    nsp_loss = (per_row * nsp_weights).sum() / nsp_weights.sum().clamp(min=1.0)
    correct = (logits.argmax(-1) == labels).float()
    mlm_accuracy = (correct * weights).sum() / mlm_weight
    loss = mlm_loss + nsp_loss
    record = dict(loss=loss, mlm_loss=mlm_loss, nsp_loss=nsp_loss, mlm_accuracy=mlm_accuracy)
    return loss, {name: float(value.detach()) for name, value in record.items()}


def _attention_mask(t: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, L] padding mask; for packed rows [B, L, L]: the key is real and in the query's
    document (bertjax's rule)."""
    if "attention_segment_ids" not in t:
        return t["input_mask"].long()
    documents = t["attention_segment_ids"]
    same = documents[:, :, None] == documents[:, None, :]
    return (same & (t["input_mask"][:, None, :] == 1)).long()


def run_torch(
    initial: dict[str, np.ndarray],
    model_config: BertConfig,
    pad_id: int,
    recipe: TorchRecipe,
    batches: list[dict[str, np.ndarray]],
) -> Trajectory:
    """The hand-written PyTorch loop over `batches` from `initial`, on one CPU thread: for a
    model this small, OpenMP barriers across cores that other processes keep busy cost more than
    a second thread gains (measured 0.13 s vs 3.6 s per step on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = torch_model(initial, model_config, pad_id)
        optimizer, scheduler = torch_optimizer(model, recipe)
        rows, start, first_step = [], time.perf_counter(), 0.0
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss, row = torch_loss(model, batch)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            row.update(grad_norm=float(grad_norm), learning_rate=optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
            rows.append(row)
            first_step = first_step or time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    final = {name: v.detach().numpy().copy() for name, v in model.state_dict().items()}
    return Trajectory(_columns(rows), final, time.perf_counter() - start, first_step)


def has_gradient(name: str, packing: bool) -> bool:
    """False for tensors whose gradient is zero in exact arithmetic: the key biases (q.b_k
    shifts all of a query's scores alike, which softmax ignores) and, on packed rows (NSP weight
    0), the pooler and the NSP head. Only rounding moves the key biases (gradient noise, divided
    by Adam's eps) and only weight decay the others, where torch's factor (1 - lr * wd), rounded
    to float32, misstates each step's decay by up to 0.3% at the peak rate (drift 6e-4 in a
    decay-only simulation); their drift compares rounding with a displacement of its own size,
    so |Δ| is bounded instead."""
    if name.endswith("attention.self.key.bias"):
        return False
    return not (packing and name.startswith(("bert.pooler.", "cls.seq_relationship.")))


@dataclasses.dataclass
class TensorDiff:
    name: str
    has_gradient: bool
    max_abs: float  # max |bertjax - torch|
    relative: float  # ||bertjax - torch|| / ||torch||
    moved: float  # ||torch - initial|| / ||torch||: share of the final tensor due to training
    drift: float  # ||bertjax - torch|| / ||torch - initial||


def param_diffs(
    initial: dict[str, np.ndarray], ours: Trajectory, theirs: Trajectory, packing: bool
) -> list[TensorDiff]:
    """Per-tensor differences of the final parameters (tied duplicates left out)."""
    diffs = []
    for name in sorted(set(initial) - set(TIED)):
        a, b = ours.final_params[name].astype(np.float64), theirs.final_params[name]
        delta, moved = a - b, b - initial[name]
        diffs.append(TensorDiff(
            name=name,
            has_gradient=has_gradient(name, packing),
            max_abs=float(np.max(np.abs(delta))),
            relative=_ratio(delta, b),
            moved=_ratio(moved, b),
            drift=_ratio(delta, moved),
        ))  # fmt: skip
    return diffs


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    return float(np.linalg.norm(numerator) / max(np.linalg.norm(denominator), 1e-30))


def summary(ours: Trajectory, theirs: Trajectory, diffs: list[TensorDiff]) -> dict[str, float]:
    """The numbers the check and the report use."""
    loss_diff = np.abs(ours.metrics["loss"] - theirs.metrics["loss"])
    trained = [d for d in diffs if d.has_gradient]
    worst = max(trained, key=lambda d: d.drift)
    return {
        "steps": len(loss_diff),
        "max_abs_loss_diff": float(loss_diff.max()),
        "max_abs_loss_diff_step": int(loss_diff.argmax()),
        "max_abs_mlm_accuracy_diff": float(
            np.abs(ours.metrics["mlm_accuracy"] - theirs.metrics["mlm_accuracy"]).max()
        ),
        "max_rel_grad_norm_diff": float(
            np.max(np.abs(ours.metrics["grad_norm"] / theirs.metrics["grad_norm"] - 1))
        ),
        "first_loss": float(theirs.metrics["loss"][0]),
        "last_loss": float(theirs.metrics["loss"][-1]),
        "max_param_abs_diff": max(d.max_abs for d in diffs),
        "max_param_rel_diff": max(d.relative for d in trained),
        "max_param_drift": worst.drift,
        "max_param_drift_tensor": worst.name,
        "min_param_moved": min(d.moved for d in trained),
        "max_no_gradient_abs_diff": max(d.max_abs for d in diffs if not d.has_gradient),
        "bertjax_wall_seconds": ours.wall_seconds,
        "bertjax_first_step_seconds": ours.first_step_seconds,
        "torch_wall_seconds": theirs.wall_seconds,
    }


def failures(numbers: dict[str, float], tolerances: Tolerances) -> list[str]:
    """Which tolerances `numbers` break (empty: the two implementations agree)."""
    broken = []
    if not numbers["max_abs_loss_diff"] <= tolerances.loss:
        broken.append(f"max |Δloss| {numbers['max_abs_loss_diff']:.3g} > {tolerances.loss:.3g}")
    if not numbers["max_param_drift"] <= tolerances.param_drift:
        broken.append(
            f"param drift {numbers['max_param_drift']:.3g} ({numbers['max_param_drift_tensor']}) "
            f"> {tolerances.param_drift:.3g}"
        )
    if not numbers["max_no_gradient_abs_diff"] <= tolerances.no_gradient_abs:
        broken.append(
            f"|Δ| of tensors without gradient {numbers['max_no_gradient_abs_diff']:.3g} > "
            f"{tolerances.no_gradient_abs:.3g}"
        )
    return broken


@dataclasses.dataclass
class ParityRun:
    """Both sides' runs on one config, and their comparison."""

    config: ml_collections.ConfigDict
    batches: list[dict[str, np.ndarray]]
    model_config: BertConfig
    pad_id: int
    initial: dict[str, np.ndarray]  # Hugging Face names
    bertjax: Trajectory
    torch: Trajectory
    diffs: list[TensorDiff]
    numbers: dict[str, float]


def run_parity(steps: int, *, packing: bool = False, cache_dir: str = "") -> ParityRun:
    """Dumps the batches, runs both sides on them and compares."""
    config = parity_config(steps, packing=packing)
    config.cache_dir = cache_dir
    batches, vocab_size, pad_id = pipeline_batches(config)
    model_config = BertConfig.from_config(config, vocab_size)
    initial, ours = run_bertjax(config, vocab_size, batches)
    theirs = run_torch(initial, model_config, pad_id, recipe_from_config(config), batches)
    diffs = param_diffs(initial, ours, theirs, packing)
    return ParityRun(
        config, batches, model_config, pad_id, initial, ours, theirs, diffs,
        summary(ours, theirs, diffs),
    )  # fmt: skip


def perturbed(run: ParityRun, perturb: str) -> ParityRun:
    """`run` with its PyTorch side re-run under the deliberately wrong setting `perturb` (a key
    of PERTURBATIONS); the bertjax side is reused."""
    recipe = dataclasses.replace(recipe_from_config(run.config), **PERTURBATIONS[perturb])
    theirs = run_torch(run.initial, run.model_config, run.pad_id, recipe, run.batches)
    diffs = param_diffs(run.initial, run.bertjax, theirs, run.config.packing)
    return dataclasses.replace(
        run, torch=theirs, diffs=diffs, numbers=summary(run.bertjax, theirs, diffs)
    )


def print_report(run: ParityRun, tolerances: Tolerances, every: int) -> list[str]:
    """Per-step lines (every `every` steps), the per-tensor table and the summary; returns the
    broken tolerances."""
    ours, theirs = run.bertjax.metrics, run.torch.metrics
    print(f"{'step':>5} {'lr':>9} {'loss bertjax':>13} {'loss torch':>11} {'|Δloss|':>9} "
          f"{'mlm_acc j/t':>13} {'grad_norm j/t':>17}")  # fmt: skip
    for i in range(len(ours["loss"])):
        if i % every and i != len(ours["loss"]) - 1:
            continue
        print(f"{i:>5} {ours['learning_rate'][i]:>9.2e} {ours['loss'][i]:>13.6f} "
              f"{theirs['loss'][i]:>11.6f} {abs(ours['loss'][i] - theirs['loss'][i]):>9.2e} "
              f"{ours['mlm_accuracy'][i]:>6.3f}/{theirs['mlm_accuracy'][i]:.3f} "
              f"{ours['grad_norm'][i]:>8.4f}/{theirs['grad_norm'][i]:.4f}")  # fmt: skip
    print(f"\n{'tensor (Hugging Face name)':<58} {'max|Δ|':>9} {'rel':>9} {'moved':>7} "
          f"{'drift':>9}")  # fmt: skip
    for d in run.diffs:
        print(f"{d.name:<58} {d.max_abs:>9.2e} {d.relative:>9.2e} {d.moved:>7.3f} {d.drift:>9.2e}")
    n = run.numbers
    broken = failures(n, tolerances)
    rows = [
        ("steps", f"{n['steps']}"),
        ("loss first -> last (torch)", f"{n['first_loss']:.4f} -> {n['last_loss']:.4f}"),
        ("max |Δloss|", f"{n['max_abs_loss_diff']:.3g} at step {n['max_abs_loss_diff_step']} "
                        f"(tolerance {tolerances.loss:.3g})"),
        ("max |Δmlm_accuracy|", f"{n['max_abs_mlm_accuracy_diff']:.3g}"),
        ("max relative Δgrad_norm", f"{n['max_rel_grad_norm_diff']:.3g}"),
        ("max param |Δ|", f"{n['max_param_abs_diff']:.3g}"),
        ("max param ||Δ||/||torch||", f"{n['max_param_rel_diff']:.3g}"),
        ("max param drift ||Δ||/||moved||", f"{n['max_param_drift']:.3g} "
         f"({n['max_param_drift_tensor']}; tolerance {tolerances.param_drift:.3g})"),
        ("max |Δ| of tensors without gradient", f"{n['max_no_gradient_abs_diff']:.3g} "
         f"(tolerance {tolerances.no_gradient_abs:.3g})"),
        ("least moved ||torch - init||/||torch||", f"{n['min_param_moved']:.3g}"),
        ("bertjax wall (first step incl. compile)",
         f"{n['bertjax_wall_seconds']:.1f} s ({n['bertjax_first_step_seconds']:.1f} s)"),
        ("torch wall", f"{n['torch_wall_seconds']:.1f} s"),
        ("result", "PASS" if not broken else "FAIL: " + "; ".join(broken)),
    ]  # fmt: skip
    print()
    for label, value in rows:
        print(f"{label:<42} {value}")
    return broken


def write_outputs(run: ParityRun, out: Path, label: str) -> None:
    """OUT/<label>.json (numbers, per-step metrics, per-tensor diffs) and OUT/<label>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    record = {
        "numbers": run.numbers,
        "bertjax": {k: v.tolist() for k, v in run.bertjax.metrics.items()},
        "torch": {k: v.tolist() for k, v in run.torch.metrics.items()},
        "tensors": [dataclasses.asdict(d) for d in run.diffs],
    }
    (out / f"{label}.json").write_text(json.dumps(record, indent=1) + "\n")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    steps = np.arange(len(run.bertjax.metrics["loss"]))
    top.plot(steps, run.bertjax.metrics["loss"], label="bertjax train_step")
    top.plot(steps, run.torch.metrics["loss"], "--", label="PyTorch (transformers) loop")
    top.set_ylabel("loss (MLM + NSP)")
    top.legend()
    bottom.semilogy(steps, np.abs(run.bertjax.metrics["loss"] - run.torch.metrics["loss"]) + 1e-12)
    bottom.set_ylabel("|Δloss|")
    bottom.set_xlabel("step")
    fig.suptitle(f"Training parity: {label}")
    fig.savefig(out / f"{label}.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--packing", action="store_true", help="packed MLM-only rows, no NSP")
    parser.add_argument("--perturb", choices=sorted(PERTURBATIONS), default="",
                        help="a wrong PyTorch setting: the check must FAIL")  # fmt: skip
    parser.add_argument("--print_every", type=int, default=10)
    parser.add_argument("--out", help="directory for <label>.json and <label>.png")
    parser.add_argument("--cache_dir", default="", help="vocabulary cache ('' = ~/.cache/bertjax)")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")  # fmt: skip
    run = run_parity(args.steps, packing=args.packing, cache_dir=args.cache_dir)
    if args.perturb:
        run = perturbed(run, args.perturb)
    broken = print_report(run, Tolerances(), args.print_every)
    if args.out:
        label = ("packed" if args.packing else "nsp") + (f"-{args.perturb}" if args.perturb else "")
        write_outputs(run, Path(args.out), label)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
