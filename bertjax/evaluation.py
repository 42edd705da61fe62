"""Held-out evaluation of pretraining: MLM loss/accuracy and NSP accuracy with fixed masks.

The evaluation set is the first `eval_examples` examples (whole batches) of the stream that
`pipeline.make_dataset` makes from the held-out instances with `eval_seed`: every example is a
pure function of (eval_seed, index), so the same positions are masked, with the same
replacements, every time. Numbers therefore compare across checkpoints, runs and meshes. The
held-out instances come from `eval_corpus`, or from the documents of `corpus` held out by
`eval_holdout_fraction` (which training then never sees).

During training `eval_every` runs it periodically; `bertjax evaluate --workdir=DIR`
(`evaluate_checkpoints`) runs it on a workdir's checkpoints (one, or all of them for a curve).

Next to the model's numbers it reports what token frequencies alone score on the same masked
positions (a unigram model of the training tokens, `token_counts.npy` in the workdir) and how
many distinct tokens the model predicts there: a model whose loss sits within
`PLATEAU_MARGIN_NATS` of the unigram loss, predicting few distinct tokens, has learned
frequencies and little context (the "frequency plateau"), and training warns about it.

tf.data (`pipeline`) and ml_collections are imported where the held-out data and configs are
read, so the training loop imports this module on machines that have neither.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import numpy as np
import scipy.stats
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from bertjax import losses, representation, sharding, unigram
from bertjax.config import RunSpec
from bertjax.data import masking_spec
from bertjax.errors import UserError
from bertjax.train_state import StateSetup

if TYPE_CHECKING:
    from bertjax.data import pipeline

EvalStep = Callable[[dict, dict], tuple[dict, dict]]
# Held-out MLM loss less than this far below the unigram loss, past warm-up, is reported as the
# frequency plateau. Measured: runs stuck on it gain 0.6-0.9 nats (docs/results.md).
PLATEAU_MARGIN_NATS = 1.0
# ELECTRA's held-out AUC below this, past warm-up, is reported: runs whose discriminator stayed
# at the base rate measured 0.53-0.56, one that detects from context 0.70-0.76 (docs/electra.md).
DETECTION_AUC_FLOOR = 0.6
# Held-out masks are BERT's whatever the run trains with (rate, cap, 80/10/10), so numbers
# compare across recipes: 15% of the tokens, capped at 20 per 128 (BERT's 20 / 80 at 128 / 512).
EVAL_MASKED_LM_PROB = 0.15
EVAL_PREDICTIONS_PER_TOKEN = 20 / 128


@dataclasses.dataclass
class EvalSet:
    """This process's slices of the fixed evaluation batches, as host numpy arrays, and the
    training token counts of the unigram baseline (None: no baseline). The baseline is scored on
    the global rows the eval step returns, not on these slices, so every process reports the
    whole set's."""

    batches: list[dict[str, np.ndarray]]
    num_examples: int  # over all processes
    counts: np.ndarray | None = None


def build_eval_set(
    spec: RunSpec,
    data: pipeline.PretrainingData | None = None,
    counts: np.ndarray | None = None,
) -> EvalSet:
    """Reads the held-out corpus and materialises the fixed batches (see the module docstring).

    `data`: held-out PretrainingData already built (`build_pretraining_data(spec.data, "eval")`).
    `counts`: training token counts (`unigram.training_token_counts`) for the unigram baseline.
    """
    if not spec.data.has_eval_data:
        raise UserError(
            "no held-out data: set --config.eval_corpus=FILES or --config.eval_holdout_fraction"
            "=0.01 (documents of the corpus kept out of training)"
        )
    from bertjax.data import pipeline  # deferred: tf.data

    data = data or pipeline.build_pretraining_data(spec.data, split="eval")
    batch_size = _eval_batch_size(spec, len(data.source))
    num_batches = min(spec.loop.eval_examples, len(data.source)) // batch_size
    masking = dataclasses.replace(
        spec.masking,
        masked_lm_prob=EVAL_MASKED_LM_PROB,
        max_predictions_per_seq=eval_max_predictions(spec.data.max_seq_length),
        mask_token_prob=masking_spec.MASK_PROB,
        random_token_prob=masking_spec.RANDOM_PROB,
    )
    dataset = pipeline.make_dataset(
        data.source,
        masking,
        data.tokenizer,
        global_batch_size=batch_size,
        seed=spec.loop.eval_seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    batches = list(dataset.take(num_batches).as_numpy_iterator())
    if not any(batch["masked_lm_weights"].any() for batch in batches):
        logging.warning(
            "The held-out batches hold no masked position: every token is special or [UNK] (see "
            "the [UNK] warning); their masked-LM numbers will read 0"
        )
    return EvalSet(batches=batches, num_examples=num_batches * batch_size, counts=counts)


def _eval_batch_size(spec: RunSpec, available: int) -> int:
    """`eval_batch_size`, or, where the held-out data has fewer instances, the most of them a
    batch can hold that the data-parallel shards and the processes divide (a warning says so);
    UserError where not even that many are held out."""
    wanted = spec.loop.eval_batch_size
    if available >= wanted:
        return wanted
    unit = math.lcm(spec.mesh.batch_shards(jax.device_count()), jax.process_count())
    if available < unit:
        raise UserError(
            f"the held-out data has {available} instances, fewer than the {unit} an evaluation "
            "batch needs; hold out more documents (--config.eval_holdout_fraction)"
        )
    logging.warning(
        "The held-out data has %d instances, fewer than eval_batch_size=%d: evaluating one "
        "batch of %d", available, wanted, available // unit * unit,
    )  # fmt: skip
    return available // unit * unit


def eval_max_predictions(max_seq_length: int) -> int:
    """The held-out cap on masked positions per row: 20 per 128 tokens, rounded up."""
    return math.ceil(EVAL_PREDICTIONS_PER_TOKEN * max_seq_length)


def compile_eval_step(setup: StateSetup) -> EvalStep:
    """jit((params, batch) -> (metric sums, {"mlm_predictions": predicted ids [B, P], the
    batch's masked_lm_ids, masked_lm_weights and input_mask, plus ELECTRA's "rtd_logits" and
    "replaced" [B, L]})) without dropout, replicated, params as the state has them."""
    mesh = setup.mesh

    def eval_step(params: dict, batch: dict) -> tuple[dict, dict]:
        outputs = setup.pretraining_outputs(params, batch)
        # Returned replicated with the fields they are read against, so every process reads
        # whole global rows (its own batch arrays are not addressable across hosts).
        kept = {"mlm_predictions": jax.numpy.argmax(outputs["mlm_logits"], axis=-1)}
        kept |= {k: batch[k] for k in ("masked_lm_ids", "masked_lm_weights", "input_mask")}
        if "rtd_logits" in outputs:  # ELECTRA: per-token scores for the detection AUC
            kept |= {"rtd_logits": outputs["rtd_logits"], "replaced": outputs["replaced"]}
        sums = losses.pretraining_sums(outputs, batch)
        sums |= representation.token_state_sums(outputs["sequence_output"], batch["input_mask"])
        return sums, kept

    return jax.jit(
        eval_step,
        in_shardings=(setup.shardings.params, sharding.batch_sharding(mesh)),
        out_shardings=NamedSharding(mesh, PartitionSpec()),
    )


def evaluate(params: dict, eval_set: EvalSet, eval_step: EvalStep, mesh) -> dict[str, float]:
    """Means over the whole evaluation set: loss, mlm_loss, mlm_accuracy, nsp_loss and
    nsp_accuracy (BERT) or the rtd_* metrics and rtd_auc (ELECTRA); mlm_distinct_predictions
    (distinct tokens the model predicts at the masked positions, against mlm_distinct_labels
    there); token_cosine and token_effective_rank of the final states (bertjax.representation);
    and the set's unigram baseline if it has one."""
    total, predicted, labels, scores, replaced = None, [], [], [], []
    for local in eval_set.batches:
        batch = sharding.global_batch_from_local(local, mesh)
        sums, kept = jax.device_get(eval_step(params, batch))
        total = sums if total is None else jax.tree.map(np.add, total, sums)
        real = kept["masked_lm_weights"] > 0
        predicted.append(kept["mlm_predictions"][real])
        labels.append(kept["masked_lm_ids"][real])
        if "rtd_logits" in kept:
            tokens = kept["input_mask"] > 0
            scores.append(kept["rtd_logits"][tokens])
            replaced.append(kept["replaced"][tokens])
    result = losses.summarize(total) | representation.token_state_stats(total)
    result["mlm_distinct_predictions"] = len(np.unique(np.concatenate(predicted)))
    labels = np.concatenate(labels)  # the global rows' masked originals, on every process
    result["mlm_distinct_labels"] = len(np.unique(labels))
    if scores:
        result["rtd_auc"] = replaced_token_auc(np.concatenate(scores), np.concatenate(replaced))
    if eval_set.counts is not None:
        result.update(unigram.unigram_baseline(labels, eval_set.counts))
    return result


def replaced_token_auc(scores: np.ndarray, replaced: np.ndarray) -> float:
    """ROC AUC of the discriminator's logits: the chance that a replaced token scores above an
    original one (ties count half; 0.5 = no detection). It moves before the 0.5 threshold flags
    anything, which precision and recall do not show. NaN without both kinds of token."""
    scores = np.asarray(scores, np.float64)  # float32 ranks lose digits of U at 10^5 tokens
    positive, negative = scores[replaced > 0], scores[replaced == 0]
    if not len(positive) or not len(negative):
        return float("nan")
    u_statistic = scipy.stats.mannwhitneyu(positive, negative).statistic
    return float(u_statistic / (len(positive) * len(negative)))


def periodic_evaluator(spec: RunSpec, setup: StateSetup, counts: np.ndarray | None, writer):
    """(params, step) -> evaluates on the held-out set, writes its `eval_*` metrics line with
    `writer`, logs it and any plateau or detection warning; None when eval_every is 0."""
    if not spec.loop.eval_every:
        return None
    eval_set = build_eval_set(spec, counts=counts)
    eval_step = compile_eval_step(setup)
    logging.info("Evaluating every %d steps on %d held-out examples with fixed masks",
                 spec.loop.eval_every, eval_set.num_examples)  # fmt: skip

    def evaluate_at(params: dict, step: int) -> None:
        held_out = evaluate(params, eval_set, eval_step, setup.mesh)
        writer.write(step, {f"eval_{name}": value for name, value in held_out.items()})
        logging.info("Step %d held-out: %s", step,
                     ", ".join(f"{k} {v:.4f}" for k, v in held_out.items()))  # fmt: skip
        for warn in (plateau_warning, detection_warning):
            warning = warn(step, held_out, spec.optimizer.warmup_steps)
            if warning:
                logging.warning("%s", warning)

    return evaluate_at


def detection_warning(step: int, result: dict[str, float], warmup_steps: int) -> str | None:
    """ELECTRA: the warning for a run past warm-up whose discriminator's held-out AUC is below
    DETECTION_AUC_FLOOR (it flags replacements little better than chance), or None."""
    auc = result.get("rtd_auc", math.nan)
    if step <= warmup_steps or not auc < DETECTION_AUC_FLOOR:  # NaN: nothing to judge
        return None
    rank = result.get("token_effective_rank", math.nan)
    states = f", its token states' effective rank {rank:.1f}" if not math.isnan(rank) else ""
    return (
        f"step {step}: the discriminator's held-out AUC is {auc:.3f} (0.5 = chance; generator MLM "
        f"accuracy {result['mlm_accuracy']:.3f}{states}): it barely detects replaced tokens. At "
        "small budgets replaced-token detection learns context more slowly than a masked LM and "
        "its encoder can collapse (docs/electra.md); warm up longer (--config.warmup_steps: a "
        "third of the steps at lr 5e-4 kept detecting where 5% collapsed), start from a masked "
        "LM's encoder (--config.init_from=MLM_WORKDIR) or use --config.objective=bert"
    )


def plateau_warning(step: int, result: dict[str, float], warmup_steps: int) -> str | None:
    """The warning for a run past warm-up whose held-out MLM loss is still within
    PLATEAU_MARGIN_NATS of the unigram loss, or None."""
    if "unigram_mlm_loss" not in result or step <= warmup_steps:
        return None
    gain = result["unigram_mlm_loss"] - result["mlm_loss"]
    if gain >= PLATEAU_MARGIN_NATS:
        return None
    where = f"only {gain:.2f} nats below" if gain >= 0 else f"{-gain:.2f} nats above"
    return (
        f"step {step}: held-out MLM loss {result['mlm_loss']:.3f} is {where} "
        f"token frequencies alone ({result['unigram_mlm_loss']:.3f}; accuracy "
        f"{result['mlm_accuracy']:.3f} vs {result['unigram_mlm_accuracy']:.3f}, "
        f"{result['mlm_distinct_predictions']} distinct tokens predicted): still on the frequency "
        "plateau; train longer or use a recipe that leaves it (configs/cpu_budget.py, "
        "docs/results.md)"
    )
