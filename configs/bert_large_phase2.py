"""BERT-large (L24/H1024/A16), phase 2 of the original recipe: 100k steps at sequence 512.

The same schedule as configs/bert_base_phase2.py, starting from the parameters of a finished
configs/bert_large_phase1.py run; `init_from` is a placeholder that must be overridden:

  bertjax train --config=configs/bert_large_phase2.py --workdir=gs://BUCKET/runs/bert_large_phase2 \
    --distributed --config.init_from=gs://BUCKET/runs/bert_large_phase1 \
    --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

LAMB variant (You et al. 2019; see configs/bert_large_phase1.py): batch 32,768 for 1,563 steps
with "re-warm-up"; learning rate and warmup from the paper (not verified here):

  config.optimizer = "lamb"
  config.batch_size = 32_768
  config.num_train_steps = 1_563
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(load_config(Path(__file__).with_name("bert_base_phase2.py")), "large")
