"""BERT-mini (L4/H256/A4, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/mini.py --workdir=/tmp/bert-mini --config.corpus='my/*.jsonl'
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(defaults(), "mini")
