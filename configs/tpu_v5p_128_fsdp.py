"""BERT-large phase 1 on a TPU v5p-128 slice (64 chips, 16 hosts), bfloat16, fully sharded (FSDP).

Parameters and optimizer state are split over all 64 chips along the 'fsdp' mesh axis (the rule
table maps 'embed' to it); each chip also takes 1/64 of the batch. The launcher creates the slice
and starts the run on all 16 hosts (docs/launch.md; v5p zones: us-east5-a, us-central1-a):

  TPU_NAME=bert-large-v5p ZONE=us-east5-a ACCELERATOR_TYPE=v5p-128 SPOT=1 \
  CONFIG=configs/tpu_v5p_128_fsdp.py WORKDIR=gs://BUCKET/runs/bert_large_v5p VOCAB_FILE=vocab.txt \
    launch/tpu_pretrain.sh --config.corpus='gs://BUCKET/corpus/*.jsonl.gz'

which runs on every host:

  bertjax train --config=configs/tpu_v5p_128_fsdp.py --workdir=gs://BUCKET/runs/bert_large_v5p \
    --distributed --config.vocab_dir=../bertjax-vocab \
    --config.corpus='gs://BUCKET/corpus/*.jsonl.gz'

Schedule: the sequences of the recipe's phase 1 (256 x 900k = 230.4M) in batches of 4,096, i.e.
56,250 steps, with the learning rate scaled by the square root of the batch ratio (1e-4 x 4). That
is a rule of thumb, not a published setting: tune it. Memory is no constraint here: parameters and
AdamW state (~4 GB in float32) shard to ~63 MB per chip; 64 sequences per chip leave most of the
95 GB of HBM free, so the batch can grow (keep it divisible by 64).

Checkpoints: a step is ~1.05e15 FLOPs (6 x 335M parameters x 524,288 tokens), ~0.1 s at 40% of
64 x 459 TFLOP/s (estimated, not measured), so checkpoint_every=2,000 loses a few minutes of work
to a Spot preemption; re-running the launcher resumes from the latest checkpoint.
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config


def get_config() -> ml_collections.ConfigDict:
    config = load_config(Path(__file__).with_name("bert_large_phase1.py"))
    config.dtype = "bfloat16"
    config.mesh_shape = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "tensor": 1})

    config.batch_size = 4096
    config.num_train_steps = 56_250
    config.warmup_steps = 2_000
    config.learning_rate = 4e-4

    config.log_every = 200
    config.checkpoint_every = 2_000
    config.keep_checkpoints = 2
    config.keep_checkpoint_period = 0
    return config
