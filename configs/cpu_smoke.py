"""CPU smoke pretraining: BERT-tiny (L2/H128/A2) on the embedded public-domain corpus.

Trains an 8k uncased WordPiece vocabulary from the corpus (cached), builds NSP sentence pairs,
masks them dynamically, and runs 1,000 sharded AdamW steps with checkpoints, metrics and
TensorBoard. Relative positions that start local and no dropout (docs/results.md: what leaves
the frequency plateau on a small budget) make it learn visibly: training MLM accuracy ~0.29 at
the end, and its export fills "The president of the [MASK] States" with "united" (0.78).
Finishes in a few minutes on a 2-core laptop CPU:

  bertjax train --config=configs/cpu_smoke.py --workdir=workdirs/cpu_smoke

Add --config.eval_holdout_fraction=0.02 --config.eval_every=250 to hold out 2% of the documents
and see held-out MLM accuracy next to the unigram baseline (0.27 against 0.03 at step 1,000).
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    config = set_model_size(defaults(), "tiny")
    config.vocab_size = 8000
    config.max_seq_length = 128
    config.max_predictions_per_seq = 20
    config.dupe_factor = 3
    config.position_embedding_type = "relative_key"
    config.position_embedding_init = "local"
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0

    config.batch_size = 32
    config.num_train_steps = 1000
    config.warmup_steps = 100
    config.learning_rate = 2e-3  # small models train well at higher rates than BERT-base's 1e-4

    config.log_every = 50
    config.checkpoint_every = 200
    config.keep_checkpoints = 2
    return config
