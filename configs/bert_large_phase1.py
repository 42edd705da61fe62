"""BERT-large (L24/H1024/A16), phase 1 of the original recipe: 900k steps at sequence 128.

The same schedule as configs/bert_base_phase1.py (Devlin et al. 2018 train both sizes alike):
256 sequences per step, 128 tokens, at most 20 masked positions, Adam with weight decay 0.01,
peak learning rate 1e-4 after 10k warmup steps, linear decay to zero. Phase 2 is
configs/bert_large_phase2.py.

  bertjax train --config=configs/bert_large_phase1.py --workdir=gs://BUCKET/runs/bert_large_phase1 \
    --distributed --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

LAMB variant (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes"): BERT-large with LAMB at batch 65,536 for this phase and 32,768 for phase 2, 8,599
steps in all (commonly quoted as 7,038 at sequence 128 + 1,563 at 512). The paper's learning
rates and warmup for that run are NOT restated here: they were not verified for this repository,
so take them from the paper before running it. The fields it changes:

  config.optimizer = "lamb"
  config.batch_size = 65_536
  config.num_train_steps = 7_038
  config.learning_rate = ...  # from the paper
  config.warmup_steps = ...   # from the paper
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(load_config(Path(__file__).with_name("bert_base_phase1.py")), "large")
