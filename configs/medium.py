"""BERT-medium (L8/H512/A8, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/medium.py --workdir=/tmp/bert-medium --config.corpus='my/*.jsonl'
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(defaults(), "medium")
