"""ELECTRA's whole objective in Hugging Face transformers, on a bertjax run's recipe and rows: the
independent reference for what bertjax's ELECTRA runs do (docs/electra.md, "the encoder
collapsed").

Hugging Face has the ELECTRA model classes but no pretraining loop, so this script is that loop,
written from the paper: an `ElectraForMaskedLM` generator (`generator_hidden_fraction` of the
width, width/64 heads, 4x feed-forward, the same depth) whose embeddings are the discriminator's
(`ElectraForPreTraining`; word, position and segment embeddings shared, the generator's output
tied to the word embeddings), samples from the generator (no gradient) at the masked positions,
loss = generator MLM + lambda x the discriminator's mean BCE over real tokens. The masked rows,
schedule, AdamW with bertjax's decay mask, global-norm clipping and the initial output bias are
the workdir's (`--config.objective=electra`). Transformers' ELECTRA is post-LayerNorm, so compare
with a bertjax run made with `--config.layer_norm_placement=post` (and matching position
embeddings). Every `--every` steps it prints, on the run's held-out rows (fixed masks, samples
drawn with a fixed seed), the generator's accuracy, the discriminator's ROC AUC, and the cosine and
effective rank of the discriminator's final token states (as benchmarks/representation_rank.py).

  python -m benchmarks.electra_reference --workdir=workdirs/electra_post --steps=200 --every=100
  python -m benchmarks.representation_rank workdirs/electra_post --steps=100,200   # bertjax's
"""

import argparse
import math
import time

import numpy as np

from benchmarks.discriminator_probe import hugging_face_config, hugging_face_inputs, torch_adamw
from benchmarks.representation_rank import token_stats
from bertjax import evaluate_checkpoints, evaluation, optim
from bertjax.config import from_config
from bertjax.data import pipeline
from bertjax.evaluation import replaced_token_auc
from bertjax.models.electra import generator_config


def build_models(model_config, generator_fraction: float, initial_replaced_fraction: float):
    """(generator ElectraForMaskedLM, discriminator ElectraForPreTraining) sharing embeddings."""
    import torch
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    torch.manual_seed(0)
    discriminator = ElectraForPreTraining(hugging_face_config(model_config))
    generator_size = generator_config(model_config, generator_fraction)
    generator = ElectraForMaskedLM(
        hugging_face_config(generator_size, embedding_size=model_config.hidden_size)
    )
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    prior = initial_replaced_fraction
    with torch.no_grad():
        discriminator.discriminator_predictions.dense_prediction.bias.fill_(
            math.log(prior / (1 - prior))
        )
    return generator, discriminator


def generator_logits(generator, batch: dict):
    """[B, P, V] logits at the masked positions (the head runs only there)."""
    import torch

    hidden = generator.electra(**hugging_face_inputs(batch["input_ids"], batch)).last_hidden_state
    positions = torch.as_tensor(np.asarray(batch["masked_lm_positions"]), dtype=torch.long)
    masked = torch.gather(hidden, 1, positions[:, :, None].expand(-1, -1, hidden.shape[-1]))
    return generator.generator_lm_head(generator.generator_predictions(masked))


def corrupt(batch: dict, sampled):
    """(corrupted ids [B, L], replaced [B, L] float): masked positions restored, then filled with
    the samples (padding slots, weight 0, leave the row as it is)."""
    import torch

    ids = torch.as_tensor(np.asarray(batch["input_ids"]), dtype=torch.long)
    positions = torch.as_tensor(np.asarray(batch["masked_lm_positions"]), dtype=torch.long)
    real = torch.as_tensor(np.asarray(batch["masked_lm_weights"])) > 0
    labels = torch.as_tensor(np.asarray(batch["masked_lm_ids"]), dtype=torch.long)
    original = ids.scatter(1, positions, torch.where(real, labels, ids.gather(1, positions)))
    corrupted = original.scatter(
        1, positions, torch.where(real, sampled, original.gather(1, positions))
    )
    return corrupted, (corrupted != original).float()


def objective(generator, discriminator, batch: dict, rtd_weight: float, sample_generator=None):
    """(loss, generator logits, discriminator logits [B, L], final states, replaced [B, L])."""
    import torch

    logits = generator_logits(generator, batch)
    weights = torch.as_tensor(np.asarray(batch["masked_lm_weights"]), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(batch["masked_lm_ids"]), dtype=torch.long)
    mlm = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    mlm = (mlm * weights).sum() / weights.sum().clamp(min=1.0)
    probabilities = torch.softmax(logits.detach(), dim=-1)
    sampled = torch.multinomial(
        probabilities.reshape(-1, probabilities.shape[-1]), 1, generator=sample_generator
    ).reshape(labels.shape)
    corrupted, replaced = corrupt(batch, sampled)
    out = discriminator(**hugging_face_inputs(corrupted, batch), output_hidden_states=True)
    tokens = torch.as_tensor(np.asarray(batch["input_mask"]), dtype=torch.float32)
    rtd = torch.nn.functional.binary_cross_entropy_with_logits(
        out.logits, replaced, reduction="none"
    )
    rtd = (rtd * tokens).sum() / tokens.sum()
    return mlm + rtd_weight * rtd, logits, out.logits, out.hidden_states[-1], replaced


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a bertjax ELECTRA pretraining workdir")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--rank_batches", type=int, default=4, help="held-out batches ranked")
    args = parser.parse_args()

    spec = from_config(evaluate_checkpoints.workdir_config(args.workdir))
    if not spec.objective.is_electra:
        raise SystemExit(f"{args.workdir} is not an ELECTRA run (--config.objective=electra)")
    if spec.model.layer_norm_placement != "post":
        raise SystemExit("transformers' ELECTRA is post-LayerNorm; give a run made with "
                         "--config.layer_norm_placement=post")  # fmt: skip
    prior = spec.masking.masked_lm_prob
    generator, discriminator = build_models(
        spec.model,
        spec.objective.generator_hidden_fraction,
        prior if spec.objective.discriminator_bias_init == "prior" else 0.5,
    )
    named = {id(p): (n, p) for m in (discriminator, generator) for n, p in m.named_parameters()}
    params = [p for _, p in named.values()]  # the shared embeddings once
    optimizer = spec.optimizer
    opt = torch_adamw(params, optimizer)
    schedule = optim.learning_rate_schedule(optimizer)
    data = pipeline.build_pretraining_data(spec.data, split="train")
    batches = pipeline.make_dataset(
        data.source, spec.masking, data.tokenizer, global_batch_size=spec.loop.batch_size,
        seed=spec.data.seed, process_index=0, process_count=1,
    ).as_numpy_iterator()  # fmt: skip
    held_out = evaluation.build_eval_set(spec).batches
    weight = spec.objective.discriminator_weight

    def evaluate() -> str:
        sampler = torch.Generator().manual_seed(0)
        correct = masked = 0.0
        scores, labels, states = [], [], []
        with torch.no_grad():
            for i, batch in enumerate(held_out):
                _, logits, rtd, hidden, replaced = objective(
                    generator, discriminator, batch, weight, sampler
                )
                w = np.asarray(batch["masked_lm_weights"])
                hit = logits.argmax(-1).numpy() == np.asarray(batch["masked_lm_ids"])
                correct, masked = correct + (hit * w).sum(), masked + w.sum()
                tokens = np.asarray(batch["input_mask"]) > 0
                scores.append(rtd.numpy()[tokens])
                labels.append(replaced.numpy()[tokens])
                if i < args.rank_batches:
                    states.append(hidden.numpy()[tokens])
        stats = token_stats(np.concatenate(states))
        auc = replaced_token_auc(np.concatenate(scores), np.concatenate(labels))
        cosine, rank = stats["token_cosine"], stats["token_effective_rank"]
        return (f"generator accuracy {correct / masked:.3f}, AUC {auc:.3f}, token cosine "
                f"{cosine:.3f}, effective rank {rank:.1f}")  # fmt: skip

    fraction = spec.objective.generator_hidden_fraction
    print(f"transformers ELECTRA (generator {fraction}, lambda {weight}) on the recipe and rows "
          f"of {args.workdir}; step 0: {evaluate()}", flush=True)  # fmt: skip
    start = time.time()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = float(schedule(step - 1))  # optax counts from 0
        loss = objective(generator, discriminator, next(batches), weight)[0]
        opt.zero_grad()
        loss.backward()
        if optimizer.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, optimizer.max_grad_norm)
        opt.step()
        if step % args.every == 0:
            print(f"step {step}: loss {loss.item():.3f}, {evaluate()} "
                  f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
