"""BERT-mini (L4/H256/A4) pretrained on ../shared/data/pretrain for the downstream proof.

The run behind docs/results.md: 24 MB of English (8 JSON Lines files), an uncased 16k WordPiece
vocabulary trained on it, NSP pairs of 128 tokens, 1% of the documents held out for the
fixed-mask evaluation (every 200 steps). Sized to finish within an hour on an idle 2-core CPU
(~0.85 steps/s):

  bertjax train --config=configs/proof_mini.py --workdir=workdirs/proof_mini

No dropout: the run sees each sentence about once (underfitting, not overfitting), and dropout
costs ~15% of the step on this CPU (measured); fine-tuning adds BERT's 0.1 back
(configs/finetune.py). The first proof run (dropout 0.1, 1,600 steps) is in docs/results.md.
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    config = set_model_size(defaults(), "mini")
    config.corpus = "../shared/data/pretrain/*.jsonl"
    config.vocab_size = 16000  # a 24 MB corpus cannot fill 30k pieces with useful statistics
    config.dupe_factor = 2
    config.eval_holdout_fraction = 0.01
    config.eval_every = 200
    config.eval_examples = 1024
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0

    config.batch_size = 32
    config.num_train_steps = 2600
    config.warmup_steps = 260
    config.learning_rate = 1e-3  # small models tolerate (and need, in few steps) a high rate

    config.log_every = 20
    config.checkpoint_every = 200
    config.keep_checkpoints = 2
    config.keep_checkpoint_period = 200  # keep every checkpoint: `bertjax evaluate` each one
    return config
