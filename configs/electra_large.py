"""ELECTRA-Large (Clark et al. 2020, Table 6): 400k steps of 2,048 rows of 512 tokens.

24 layers, hidden 1024, 16 heads, feed-forward 4096, embeddings as wide as the encoder, a
generator a quarter as wide (256, 4 heads, feed-forward 1024) sharing them, the discriminator's
loss weighted 50; 25% of tokens masked (Large's rate; at most 130 a row); Adam with decoupled
weight decay 0.01, peak 2e-4 after 10k warm-up steps, linear decay to zero; dropout 0.1; packed
rows, no next-sentence task. Every worker of a pod runs (launch/tpu_pretrain.sh; docs/launch.md):

  bertjax train --config=configs/electra_large.py --workdir=gs://BUCKET/runs/electra_large \\
    --distributed --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

The corpus is a placeholder that must be overridden. Where 2,048 rows do not fit the slice's
memory, `--config.grad_accum_steps` splits each step into microbatches.
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config, set_electra_size


def get_config() -> ml_collections.ConfigDict:
    config = load_config(Path(__file__).with_name("electra_base.py"))  # its recipe, then:
    set_electra_size(config, "large")
    config.masked_lm_prob = 0.25
    config.max_predictions_per_seq = 130  # ELECTRA's int((0.25 + 0.005) * 512)
    config.batch_size = 2048
    config.num_train_steps = 400_000
    return config
