"""BERT-small (L4/H512/A8, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/small.py --workdir=/tmp/bert-small --config.corpus='my/*.jsonl'
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(defaults(), "small")
