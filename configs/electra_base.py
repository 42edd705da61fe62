"""ELECTRA-Base (Clark et al. 2020, Table 6): 766k steps of 256 rows of 512 tokens.

12 layers, hidden 768, 12 heads, feed-forward 3072, embeddings as wide as the encoder, a
generator a third as wide (256, 4 heads, feed-forward 1024) sharing them, the discriminator's
loss weighted 50; 15% of tokens masked (at most 79 a row); Adam with decoupled weight decay 0.01,
peak 2e-4 after 10k warm-up steps, linear decay to zero; dropout 0.1; packed rows, no
next-sentence task. Every worker of a pod runs (launch/tpu_pretrain.sh starts it on all of them;
docs/launch.md):

  bertjax train --config=configs/electra_base.py --workdir=gs://BUCKET/runs/electra_base \\
    --distributed --config.corpus='gs://BUCKET/corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR

The corpus is a placeholder that must be overridden.
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config, set_electra_size

# Not a bucket (bucket names are lower case), so a forgotten override fails at once.
CORPUS_PLACEHOLDER = "gs://YOUR_BUCKET/corpus/*.jsonl.gz"


def get_config() -> ml_collections.ConfigDict:
    config = load_config(Path(__file__).with_name("electra_small.py"))  # its recipe, then:
    set_electra_size(config, "base")
    config.corpus = CORPUS_PLACEHOLDER
    config.max_seq_length = 512
    config.max_predictions_per_seq = 79  # ELECTRA's int((0.15 + 0.005) * 512)
    config.batch_size = 256
    config.num_train_steps = 766_000
    config.learning_rate = 2e-4
    return config
