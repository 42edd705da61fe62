"""BERT-base, phase 1 of the original recipe (Devlin et al. 2018): 900k steps at sequence 128.

The recipe pretrains for 1M steps of 256 sequences: 90% of the steps at 128 tokens with at most
20 masked positions (this config), the last 10% at 512 tokens with at most 80
(configs/bert_base_phase2.py, which starts from this run's parameters). Adam with decoupled weight
decay 0.01, peak learning rate 1e-4 after 10k warmup steps, then linear decay to zero.

Every worker of a pod runs (launch/tpu_pretrain.sh starts it on all of them; docs/launch.md):

  bertjax train --config=configs/bert_base_phase1.py --workdir=gs://BUCKET/runs/bert_base_phase1 \
    --distributed --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

The corpus is a placeholder that must be overridden: the sample corpus in the package is far too
small for this schedule.
"""

import ml_collections

from bertjax.config import defaults, set_model_size

# Not a bucket (bucket names are lower case), so a forgotten override fails at once.
CORPUS_PLACEHOLDER = "gs://YOUR_BUCKET/corpus/*.jsonl.gz"


def get_config() -> ml_collections.ConfigDict:
    config = set_model_size(defaults(), "base")
    config.corpus = CORPUS_PLACEHOLDER
    config.vocab_size = 30522  # the size of the published uncased BERT vocabulary
    config.max_seq_length = 128
    config.max_predictions_per_seq = 20
    config.max_position_embeddings = 512  # phase 2 reuses these embeddings at sequence 512

    config.optimizer = "adamw"
    config.batch_size = 256
    config.num_train_steps = 900_000
    config.warmup_steps = 10_000
    config.learning_rate = 1e-4
    config.weight_decay = 0.01

    config.log_every = 1_000
    config.checkpoint_every = 10_000
    config.keep_checkpoints = 3
    config.keep_checkpoint_period = 100_000  # keep every 100k-step checkpoint for later study
    return config
