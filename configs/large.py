"""BERT-large (L24/H1024/A16, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/large.py --workdir=/tmp/bert-large --config.corpus='my/*.jsonl'
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(defaults(), "large")
