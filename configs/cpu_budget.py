"""Pretraining on a small CPU budget: the recipe that left the frequency plateau fastest in the
study of docs/results.md (held-out MLM accuracy against idle wall-clock time, 2-core CPU).

BERT-mini (L4/H256/A4) with relative positions that start local (`position_embedding_type=
"relative_key"`, `position_embedding_init="local"`: every head attends nearby from step 1),
pre-LN blocks, MLM-only packed rows of 128 tokens (no NSP), no dropout, AdamW at 2e-3 with a
short warm-up and linear decay to zero over the budget. Exports to Hugging Face
(RobertaPreLayerNormForMaskedLM with relative_key positions) exactly.

  bertjax train --config=configs/cpu_budget.py --workdir=workdirs/cpu_budget \\
    --config.corpus='my_corpus/*.jsonl' --config.num_train_steps=N

Set num_train_steps to what your budget allows: this machine's idle rate is in
docs/results.md (`python -m benchmarks.recipe_study --probe` measures yours).

Rotary positions with post-LN blocks (`--config.position_embedding_type=rotary
--config.position_embedding_init=normal --config.layer_norm_placement=post`) trained as well or
better at the same steps on English, a quarter cheaper per step, and export as Hugging Face's
RoFormer (docs/results.md, section 4); this config keeps the recipe its proofs were measured with.
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    config = set_model_size(defaults(), "mini")
    config.vocab_size = 16000
    config.packing = True
    config.dupe_factor = 5  # five packings of the corpus, each cut at other places
    config.layer_norm_placement = "pre"
    config.position_embedding_type = "relative_key"
    config.position_embedding_init = "local"
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0

    config.batch_size = 64
    config.num_train_steps = 3000
    config.warmup_steps = 150
    config.learning_rate = 2e-3

    config.eval_holdout_fraction = 0.01
    config.eval_every = 500
    config.eval_examples = 1024
    config.log_every = 50
    config.checkpoint_every = 500
    config.keep_checkpoints = 2
    return config
