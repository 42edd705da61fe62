"""BERT-base, phase 2 of the original recipe (Devlin et al. 2018): 100k steps at sequence 512.

Starts from the parameters of a finished phase-1 run (configs/bert_base_phase1.py), with a fresh
optimizer state and step counter: 100k steps of 256 sequences of 512 tokens, at most 80 masked
positions each. `init_from` is a placeholder that must be overridden with the phase-1 workdir:

  bertjax train --config=configs/bert_base_phase2.py --workdir=gs://BUCKET/runs/bert_base_phase2 \
    --distributed --config.init_from=gs://BUCKET/runs/bert_base_phase1 \
    --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

Schedule: the paper decays one learning rate linearly over all 1M steps, so at the start of this
phase it would be ~1e-5. Phase 1's optimizer state is not carried over, so this phase warms up
again to 1e-4 over 10k steps and decays to zero (the "re-warm-up" that the LAMB paper also uses
for its second phase). To continue the paper's single schedule instead, add
--config.learning_rate=1e-5 --config.warmup_steps=1000.
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config

# Not a bucket (bucket names are lower case), so a forgotten override fails at once.
INIT_FROM_PLACEHOLDER = "gs://YOUR_BUCKET/runs/PHASE_1_WORKDIR"


def get_config() -> ml_collections.ConfigDict:
    config = load_config(Path(__file__).with_name("bert_base_phase1.py"))
    config.init_from = INIT_FROM_PLACEHOLDER  # phase-1 workdir; override on the command line
    config.max_seq_length = 512
    config.max_predictions_per_seq = 80

    config.batch_size = 256
    config.num_train_steps = 100_000
    config.warmup_steps = 10_000
    config.learning_rate = 1e-4

    config.checkpoint_every = 5_000
    config.keep_checkpoint_period = 0
    return config
