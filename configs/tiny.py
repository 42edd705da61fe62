"""BERT-tiny (L2/H128/A2, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/tiny.py --workdir=/tmp/bert-tiny --config.corpus='my/*.jsonl'
"""

import ml_collections

from bertjax.config import defaults, set_model_size


def get_config() -> ml_collections.ConfigDict:
    return set_model_size(defaults(), "tiny")
