"""How fast ELECTRA's discriminator learns from context alone, without a generator.

The discriminator of a pretraining workdir's recipe (its `bert` encoder and replaced-token head,
freshly initialised) is trained by itself on the run's training rows, with the masked positions
replaced by draws from the training tokens' unigram distribution: what a generator on the
frequency plateau produces, and the easiest replacements to find after the first ~100 steps of
an ELECTRA run. Token identity then says nothing (every token is replaced at the same rate), so
only the context can. Every `--every` steps it prints the held-out ROC AUC, the loss over the
base-rate loss (the run's held-out rows, fixed replacements) and the effective rank of the
final token states (benchmarks/representation_rank.py; collapse). Compare with the step at which the
same encoder trained as a masked LM passes the unigram accuracy (docs/electra.md).

`--framework=transformers` trains Hugging Face's `ElectraForPreTraining` of the same size on the
same corrupted batches with the same schedule, AdamW, decay mask and clipping: the independent
reference for how fast this task is learnt (it has no pre-LayerNorm, so compare with
`--model_override=layer_norm_placement=post` and the matching position embeddings).

  python -m benchmarks.discriminator_probe --workdir=workdirs/electra_proof/pretrain --steps=400
  python -m benchmarks.discriminator_probe --workdir=workdirs/electra_proof/pretrain \
      --model_override=layer_norm_placement=post --model_override=position_embedding_init=normal
  python -m benchmarks.discriminator_probe --workdir=workdirs/electra_proof/pretrain \
      --framework=transformers
"""

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.representation_rank import token_stats
from bertjax import evaluate_checkpoints, evaluation, losses, optim
from bertjax.config import from_config
from bertjax.convert import electra as electra_export
from bertjax.data import pipeline
from bertjax.evaluation import replaced_token_auc
from bertjax.models.electra import create_electra, replace_masked_tokens
from bertjax.unigram import TOKEN_COUNTS_FILE

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


def bertjax_trainer(model_config, spec, optimizer, head_bias=None):
    """(train_step(ids, replaced, batch), outputs(ids, batch) -> (logits [B, L], final states
    [B, L, H]) as numpy) of a fresh bertjax discriminator trained with `optimizer`; `head_bias`
    replaces its initial output bias (default: the prior, logit of the masked fraction)."""
    model = create_electra(model_config, spec.objective.generator_hidden_fraction, 1.0, seed=0)
    if head_bias is not None:
        model.discriminator_predictions.dense_prediction.bias.value = jnp.full((1,), head_bias)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optim.create_optimizer(optimizer)
    state = {"params": params, "opt_state": tx.init(params)}

    def mean_loss(params, ids, replaced, rows):
        logits = nnx.merge(graphdef, params).discriminator_logits(ids, rows)
        sums = losses.replaced_token_sums(logits, replaced, rows["input_mask"], 1.0)
        return sums["rtd_loss_sum"] / sums["rtd_weight"]

    @jax.jit
    def update(params, opt_state, ids, replaced, rows):
        grads = jax.grad(mean_loss)(params, ids, replaced, rows)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def outputs_of(params, ids, rows):
        model = nnx.merge(graphdef, params)
        states = model.discriminator_states(ids, rows)
        return model.discriminator_predictions(states), states

    def train_step(ids, replaced, batch):
        state["params"], state["opt_state"] = update(
            state["params"], state["opt_state"], ids, replaced, rows_of(batch)
        )

    def outputs(ids, batch):
        return jax.device_get(outputs_of(state["params"], ids, rows_of(batch)))

    return train_step, outputs


def hugging_face_config(model_config, embedding_size: int | None = None):
    """transformers' ElectraConfig of a bertjax model config (`embedding_size`: the embeddings'
    width when it differs from hidden_size, as in ELECTRA's generator)."""
    from transformers import ElectraConfig

    return ElectraConfig(
        vocab_size=model_config.vocab_size,
        embedding_size=embedding_size or model_config.hidden_size,
        hidden_size=model_config.hidden_size,
        num_hidden_layers=model_config.num_hidden_layers,
        num_attention_heads=model_config.num_attention_heads,
        intermediate_size=model_config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=model_config.hidden_dropout_prob,
        attention_probs_dropout_prob=model_config.attention_probs_dropout_prob,
        max_position_embeddings=model_config.max_position_embeddings,
        type_vocab_size=model_config.type_vocab_size,
        initializer_range=model_config.initializer_range,
        layer_norm_eps=model_config.layer_norm_eps,
        position_embedding_type=model_config.position_embedding_type,
    )


def hugging_face_inputs(ids, batch: dict) -> dict:
    """transformers' keyword arguments for bertjax rows `ids` [B, L] (segments and masks from
    `batch`; packed rows get the block-diagonal [B, L, L] attention mask)."""
    import torch

    mask = np.asarray(batch["input_mask"]) > 0
    segments = np.asarray(batch.get("attention_segment_ids", batch["input_mask"]))
    allowed = (segments[:, :, None] == segments[:, None, :]) & mask[:, None, :]
    return {
        "input_ids": torch.as_tensor(np.array(ids), dtype=torch.long),  # a writable copy
        "token_type_ids": torch.as_tensor(np.array(batch["segment_ids"]), dtype=torch.long),
        "attention_mask": torch.as_tensor(allowed, dtype=torch.long),
    }


def torch_adamw(parameters: list, optimizer):
    """torch's AdamW with bertjax's recipe `optimizer` (an OptimizerSpec): its peak rate, betas,
    epsilon, and weight decay on kernels and embeddings only (bertjax's decay mask)."""
    import torch

    decayed = [p for p in parameters if p.dim() >= 2]  # kernels, embeddings
    other = [p for p in parameters if p.dim() < 2]  # LayerNorm, biases
    return torch.optim.AdamW(
        [{"params": decayed, "weight_decay": optimizer.weight_decay},
         {"params": other, "weight_decay": 0.0}],
        lr=float(optimizer.learning_rate), betas=(optimizer.adam_b1, optimizer.adam_b2),
        eps=optimizer.adam_eps,
    )  # fmt: skip


def transformers_trainer(model_config, optimizer, start_from=None, head_bias=None):
    """The same as `bertjax_trainer` with Hugging Face's `ElectraForPreTraining` (PyTorch, post-
    LayerNorm), torch's AdamW with the same decay mask, schedule and clipping; its own
    initialisation, or bertjax's ELECTRA `start_from` (its discriminator exported); `head_bias`
    replaces the replaced-token output bias."""
    import torch
    from transformers import ElectraForPreTraining

    if model_config.layer_norm_placement != "post":
        raise SystemExit(
            "transformers' ELECTRA is post-LayerNorm; compare with "
            "--model_override=layer_norm_placement=post"
        )
    torch.manual_seed(0)
    model = ElectraForPreTraining(hugging_face_config(model_config))
    if start_from is not None:
        params = nnx.state(start_from, nnx.Param).to_pure_dict()
        tensors = electra_export.discriminator_tensors(jax.device_get(params))
        missing, unexpected = model.load_state_dict(
            {k: torch.as_tensor(np.array(v)) for k, v in tensors.items()}, strict=False
        )
        assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    if head_bias is not None:
        with torch.no_grad():
            model.discriminator_predictions.dense_prediction.bias.fill_(head_bias)
    opt = torch_adamw(list(model.parameters()), optimizer)
    schedule = optim.learning_rate_schedule(optimizer)
    steps = {"done": 0}

    def train_step(ids, replaced, batch):
        for group in opt.param_groups:
            group["lr"] = float(schedule(steps["done"]))  # optax counts from 0 as well
        logits = model(**hugging_face_inputs(ids, batch)).logits
        weights = torch.as_tensor(np.asarray(batch["input_mask"]), dtype=torch.float32)
        per_token = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.as_tensor(np.array(replaced)), reduction="none"
        )
        loss = (per_token * weights).sum() / weights.sum()
        opt.zero_grad()
        loss.backward()
        if optimizer.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optimizer.max_grad_norm)
        opt.step()
        steps["done"] += 1

    def outputs_of(ids, batch):
        with torch.no_grad():
            out = model(**hugging_face_inputs(ids, batch), output_hidden_states=True)
            return out.logits.numpy(), out.hidden_states[-1].numpy()

    return train_step, outputs_of


def model_overrides(pairs: list[str], model_config):
    """`field=value` strings applied to the recipe's model config (values typed like the field)."""
    changes = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(model_config, name):
            raise SystemExit(f"--model_override {pair!r}: the model config has no field {name!r}")
        kind = type(getattr(model_config, name))
        changes[name] = value.lower() in ("1", "true") if kind is bool else kind(value)
    return dataclasses.replace(model_config, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="an ELECTRA (or BERT) pretraining workdir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--learning_rate", type=float, default=None, help="default: the run's")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--framework", choices=("bertjax", "transformers"), default="bertjax")
    parser.add_argument(
        "--same_init", action="store_true",
        help="transformers: start from bertjax's initial discriminator (exported) instead of "
        "Hugging Face's own initialisation",
    )  # fmt: skip
    parser.add_argument("--head_bias", type=float, help="the output bias to start at")
    parser.add_argument(
        "--model_override", action="append", default=[], help="FIELD=VALUE of the model config"
    )
    args = parser.parse_args()

    spec = from_config(evaluate_checkpoints.workdir_config(args.workdir))
    counts = np.load(f"{args.workdir}/{TOKEN_COUNTS_FILE}").astype(np.float64)
    probabilities = counts / counts.sum()
    model_config = model_overrides(
        args.model_override, dataclasses.replace(spec.model, vocab_size=len(counts))
    )
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
    optimizer = spec.optimizer  # the run's recipe: schedule, AdamW, decay mask, clipping
    if args.learning_rate:
        optimizer = dataclasses.replace(optimizer, learning_rate=args.learning_rate)
    if args.framework == "transformers":
        start = None
        if args.same_init:
            start = create_electra(model_config, spec.objective.generator_hidden_fraction, 1.0, 0)
        train_step, outputs_of = transformers_trainer(
            model_config, optimizer, start, args.head_bias
        )
    else:
        train_step, outputs_of = bertjax_trainer(model_config, spec, optimizer, args.head_bias)

    def evaluate() -> tuple[float, float, float]:
        scores, labels, states = [], [], []
        for batch, ids, replaced in held_out:
            tokens = batch["input_mask"] > 0
            logits, hidden = outputs_of(ids, batch)
            scores.append(logits[tokens])
            states.append(hidden[tokens])
            labels.append(np.asarray(replaced)[tokens])
        scores, labels = np.concatenate(scores), np.concatenate(labels)
        p = labels.mean()
        base = -(p * np.log(p) + (1 - p) * np.log(1 - p))
        loss = np.mean(np.logaddexp(0, scores) - labels * scores)
        rank = token_stats(np.concatenate(states))["token_effective_rank"]
        return replaced_token_auc(scores, labels), loss / base, rank

    rng, start = np.random.default_rng(0), time.time()
    print(
        f"{args.framework} discriminator of {args.workdir} alone, unigram replacements, peak lr "
        f"{optimizer.learning_rate}, overrides {args.model_override or 'none'}"
    )
    for step in range(1, args.steps + 1):
        batch = next(batches)
        ids, replaced = unigram_corruption(batch, probabilities, rng)
        train_step(ids, replaced, batch)
        if step % args.every == 0:
            auc, ratio, rank = evaluate()
            print(f"step {step}: held-out AUC {auc:.3f}, loss / base-rate loss {ratio:.3f}, "
                  f"effective rank of the token states {rank:.1f} ({time.time() - start:.0f} s)",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
