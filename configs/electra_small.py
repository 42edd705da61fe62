"""ELECTRA-Small (Clark et al. 2020, Table 6): the replaced-token-detection recipe the paper
trains on one GPU (1M steps of 128 rows of 128 tokens; 4 days on a V100 there).

12 layers, hidden 256, 4 heads, feed-forward 1024, 128-wide embeddings projected to 256 (Hugging
Face's `embeddings_project`), a generator a quarter as wide (64, 1 head, feed-forward 256) that
shares the embeddings, the discriminator's loss weighted 50; 15% of tokens masked (at most 19 a
row: ELECTRA's int((0.15 + 0.005) * 128)); Adam with decoupled weight decay 0.01, peak 5e-4 after
10k warm-up steps, linear decay to zero; dropout 0.1; packed rows, no next-sentence task. The run
exports as Hugging Face's ElectraForPreTraining (the discriminator: the encoder to fine-tune) and
ElectraForMaskedLM (the generator) (docs/electra.md):

  bertjax train --config=configs/electra_small.py --workdir=runs/electra_small \\
    --config.corpus='my_corpus/*.jsonl.gz' --config.vocab_dir=VOCAB_DIR --config.dtype=bfloat16

The corpus is a placeholder that must be overridden. On a much shorter schedule warm up for
longer than 1% of it: docs/electra.md shows a 145-step warm-up collapsing the discriminator's
encoder in a 2,918-step run.
"""

import ml_collections

from bertjax.config import defaults, set_electra_size

# Not a file anyone has, so a forgotten override fails at once.
CORPUS_PLACEHOLDER = "YOUR_CORPUS/*.jsonl.gz"


def get_config() -> ml_collections.ConfigDict:
    config = set_electra_size(defaults(), "small")
    config.corpus = CORPUS_PLACEHOLDER
    config.vocab_size = 30522  # the size of the published uncased BERT vocabulary ELECTRA uses
    config.max_seq_length = 128
    config.masked_lm_prob = 0.15
    config.max_predictions_per_seq = 19

    config.batch_size = 128
    config.num_train_steps = 1_000_000
    config.warmup_steps = 10_000
    config.learning_rate = 5e-4
    config.weight_decay = 0.01

    config.log_every = 1_000
    config.checkpoint_every = 10_000
    config.keep_checkpoints = 3
    config.keep_checkpoint_period = 100_000
    return config
