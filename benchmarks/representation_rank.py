"""Whether a pretrained encoder's token representations have collapsed.

For each workdir (at its latest checkpoint, or at each `--steps`) and for a random
initialisation of the first workdir's architecture, encodes the first held-out batches of the
first workdir's run (its fixed evaluation rows) and prints, over a fixed sample of the real
tokens' final hidden states, the statistics of bertjax.representation (the mean cosine
similarity of token pairs, the effective rank of their unit vectors), and the mean cosine
similarity of the [CLS] states of different rows. A fine-tuning head reads these
states: an encoder whose states span a handful of directions starts below a random one.

  python -m benchmarks.representation_rank workdirs/electra_proof/pretrain workdirs/proof/pretrain
  python -m benchmarks.representation_rank workdirs/electra_proof/pretrain --steps=400,800
  python -m benchmarks.representation_rank workdirs/electra_proof/pretrain --by_layer
"""

import argparse

import numpy as np

from bertjax import checkpointing, evaluate_checkpoints, evaluation, representation
from bertjax.config import from_config
from bertjax.convert import model_dir
from bertjax.models.bert import create_model

SAMPLED_TOKENS = 2000  # token pairs: 2k x 2k similarities; the rank is stable at this size


def statistics_of(states: np.ndarray) -> dict[str, float]:
    """bertjax.representation's token_cosine and token_effective_rank of rows [N, H]."""
    weights = np.ones(states.shape[:1], np.float32)[None]
    return representation.token_state_stats(representation.token_state_sums(states[None], weights))


def representation_stats(bert, batches: list[dict], by_layer: bool = False) -> dict[str, float]:
    """token_cosine, token_effective_rank and cls_cosine of the final states; with `by_layer`
    also `layer_ranks`, the token effective rank of the embeddings' output and of each layer's."""
    tokens, cls, layers = [], [], []
    for batch in batches:
        encoded = bert(
            batch["input_ids"],
            batch["segment_ids"],
            batch["input_mask"],
            attention_segment_ids=batch.get("attention_segment_ids"),
            deterministic=True,
        )
        real = batch["input_mask"] > 0
        states = np.asarray(encoded["sequence_output"])
        tokens.append(states[real])
        cls.append(states[:, 0])
        layers.append([np.asarray(hidden)[real] for hidden in encoded["hidden_states"]])
    stats = {**token_stats(np.concatenate(tokens)),
             "cls_cosine": statistics_of(np.concatenate(cls))["token_cosine"]}  # fmt: skip
    if by_layer:
        stats["layer_ranks"] = [
            token_stats(np.concatenate(layer))["token_effective_rank"]
            for layer in zip(*layers, strict=True)
        ]
    return stats


def token_stats(tokens: np.ndarray) -> dict[str, float]:
    """token_cosine and token_effective_rank of a fixed sample of the real tokens' states
    `tokens` [N, H] (held-out evaluation reports them over all its tokens)."""
    rows = np.random.default_rng(0).choice(len(tokens), min(SAMPLED_TOKENS, len(tokens)), False)
    return statistics_of(tokens[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdirs", nargs="+", help="pretraining workdirs or imported models")
    parser.add_argument("--steps", default="", help="comma-separated checkpoint steps")
    parser.add_argument("--batches", type=int, default=4, help="held-out batches encoded")
    parser.add_argument("--by_layer", action="store_true",
                        help="also the rank after the embeddings and after each layer")  # fmt: skip
    args = parser.parse_args()

    spec = from_config(evaluate_checkpoints.workdir_config(args.workdirs[0]))
    batches = evaluation.build_eval_set(spec).batches[: args.batches]
    steps = [int(s) for s in args.steps.split(",") if s] or [None]

    def report(label: str, bert) -> None:
        stats = representation_stats(bert, batches, args.by_layer)
        layers = ""
        if args.by_layer:  # hidden states before the final LayerNorm of a pre-LN encoder
            ranks = " / ".join(f"{rank:.1f}" for rank in stats["layer_ranks"])
            layers = f", rank after embeddings / each layer {ranks}"
        print(f"{label}: token cosine {stats['token_cosine']:.3f}, effective rank "
              f"{stats['token_effective_rank']:.1f}, [CLS] cosine {stats['cls_cosine']:.3f}"
              f"{layers}", flush=True)  # fmt: skip

    for workdir in args.workdirs:
        for step in steps:
            model = model_dir.load_model(workdir, step)
            report(f"{workdir} step {step or 'latest'}", model.bert)
    _, metadata = checkpointing.open_workdir(args.workdirs[0])
    report("random init", create_model(model_dir.model_config(metadata), 0).bert)


if __name__ == "__main__":
    main()
