"""BERT-large (L24/H1024/A16, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/large.py --workdir=/tmp/bert-large --config.corpus='my/*.jsonl'
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
    return base.set_model_size(base.get_config(), "large")
