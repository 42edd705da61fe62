"""Continue a run's pretraining, on other text or for longer: the run's own config (RUN/config.json:
architecture, vocabulary, masking, recipe), its latest parameters (`init_from`), a fresh optimizer
and step 0. Domain- or task-adaptive pretraining (Gururangan et al. 2020, "Don't Stop
Pretraining") gives it the domain's text, or a task's own training text, as the corpus:

  bertjax train --config=configs/continue_from.py:workdirs/zh --workdir=workdirs/zh_reviews \\
    --config.corpus='reviews/*.jsonl' --config.num_train_steps=700 --config.warmup_steps=70 \\
    --config.learning_rate=5e-4

Everything not overridden is RUN's, its corpus and schedule included: without new values the rate
warms up again to RUN's peak over RUN's num_train_steps. The architecture and vocabulary are RUN's,
so `init_from`'s checks pass; changing one of them is refused as for any `init_from`. RUN is a local
path or a gs:// URI. A run trained from `bertjax prepare` shards continues on them: for other text
pass `--config.prepared_dir=` (empty) with `--config.corpus`, or shards prepared from that text.
"""

import ml_collections

from bertjax.errors import UserError


def get_config(run: str = "") -> ml_collections.ConfigDict:
    if not run:
        raise UserError(
            "name the run to continue after a colon: --config=configs/continue_from.py:WORKDIR"
        )
    from bertjax.config import vocab_dir_size
    from bertjax.evaluate_checkpoints import workdir_config  # RUN/config.json, RUN's vocabulary

    config = workdir_config(run)
    config.init_from = run
    config.vocab_size = vocab_dir_size(run)  # what RUN's vocabulary holds, not what it asked for
    return config
