"""How fast ELECTRA's discriminator learns from context alone, without a generator.

The discriminator of a pretraining workdir's recipe (its `bert` encoder and replaced-token head,
freshly initialised) is trained by itself on the run's training rows, with the masked positions
replaced by draws from the training tokens' unigram distribution: what a generator on the
frequency plateau produces, and the easiest replacements to find after the first ~100 steps of
an ELECTRA run. Token identity then says nothing (every token is replaced at the same rate), so
only the context can. Every `--every` steps it prints the held-out ROC AUC and the loss over the
base-rate loss (the run's held-out rows, fixed replacements). Compare with the step at which the
same encoder trained as a masked LM passes the unigram accuracy (docs/electra.md).

  python -m benchmarks.discriminator_probe --workdir=workdirs/electra_proof/pretrain --steps=400
"""

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bertjax import evaluation, optim
from bertjax.config import from_config
from bertjax.data import pipeline
from bertjax.evaluation import TOKEN_COUNTS_FILE, replaced_token_auc
from bertjax.models.electra import create_electra, replace_masked_tokens

ROW_FIELDS = ("segment_ids", "input_mask", "attention_segment_ids")


def unigram_corruption(batch: dict, probabilities: np.ndarray, rng: np.random.Generator):
    """(corrupted ids [B, L], replaced [B, L] float32): the row's masked positions restored and
    then filled with unigram draws (a draw equal to the original is not a replacement)."""
    sampled = rng.choice(len(probabilities), size=batch["masked_lm_ids"].shape, p=probabilities)
    original, corrupted = replace_masked_tokens(
        *(jnp.asarray(batch[k]) for k in ("input_ids", "masked_lm_positions", "masked_lm_ids")),
        jnp.asarray(batch["masked_lm_weights"]),
        jnp.asarray(sampled, jnp.int32),
    )
    return corrupted, (corrupted != original).astype(jnp.float32)


def rows_of(batch: dict) -> dict:
    return {k: jnp.asarray(batch[k]) for k in ROW_FIELDS if k in batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="an ELECTRA (or BERT) pretraining workdir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--learning_rate", type=float, default=None, help="default: the run's")
    parser.add_argument("--every", type=int, default=50)
    args = parser.parse_args()

    spec = from_config(evaluation.workdir_config(args.workdir))
    counts = np.load(f"{args.workdir}/{TOKEN_COUNTS_FILE}").astype(np.float64)
    probabilities = counts / counts.sum()
    model_config = dataclasses.replace(spec.model, vocab_size=len(counts))
    data = pipeline.build_pretraining_data(spec.data, split="train")
    batches = pipeline.make_dataset(
        data.source, spec.masking, data.tokenizer, global_batch_size=spec.loop.batch_size,
        seed=spec.data.seed, process_index=0, process_count=1,
    ).as_numpy_iterator()  # fmt: skip
    eval_rng = np.random.default_rng(1)
    held_out = [
        (b, *unigram_corruption(b, probabilities, eval_rng))
        for b in evaluation.build_eval_set(spec).batches
    ]

    model = create_electra(model_config, spec.objective.generator_hidden_fraction, 1.0, seed=0)
    graphdef, params = nnx.split(model, nnx.Param)
    optimizer = spec.optimizer  # the run's recipe: schedule, AdamW, decay mask, clipping
    if args.learning_rate:
        optimizer = dataclasses.replace(optimizer, learning_rate=args.learning_rate)
    tx = optim.create_optimizer(optimizer)
    opt_state = tx.init(params)

    def mean_loss(params, ids, replaced, rows):
        logits = nnx.merge(graphdef, params).discriminator_logits(ids, rows)
        weights = rows["input_mask"].astype(jnp.float32)
        per_token = optax.sigmoid_binary_cross_entropy(logits, replaced)
        return jnp.sum(per_token * weights) / jnp.sum(weights)

    @jax.jit
    def train_step(params, opt_state, ids, replaced, rows):
        grads = jax.grad(mean_loss)(params, ids, replaced, rows)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def logits_of(params, ids, rows):
        return nnx.merge(graphdef, params).discriminator_logits(ids, rows)

    def evaluate(params) -> tuple[float, float]:
        scores, labels = [], []
        for batch, ids, replaced in held_out:
            tokens = batch["input_mask"] > 0
            scores.append(np.asarray(logits_of(params, ids, rows_of(batch)))[tokens])
            labels.append(np.asarray(replaced)[tokens])
        scores, labels = np.concatenate(scores), np.concatenate(labels)
        p = labels.mean()
        base = -(p * np.log(p) + (1 - p) * np.log(1 - p))
        loss = np.mean(np.logaddexp(0, scores) - labels * scores)
        return replaced_token_auc(scores, labels), loss / base

    rng, start = np.random.default_rng(0), time.time()
    print(
        f"discriminator of {args.workdir} alone, unigram replacements, peak lr "
        f"{optimizer.learning_rate}"
    )
    for step in range(1, args.steps + 1):
        batch = next(batches)
        ids, replaced = unigram_corruption(batch, probabilities, rng)
        params, opt_state = train_step(params, opt_state, ids, replaced, rows_of(batch))
        if step % args.every == 0:
            auc, ratio = evaluate(params)
            print(f"step {step}: held-out AUC {auc:.3f}, loss / base-rate loss {ratio:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
