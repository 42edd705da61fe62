"""BERT-tiny (L2/H128/A2, feed-forward 4H) on the defaults of configs/base.py.

bertjax train --config=configs/tiny.py --workdir=/tmp/bert-tiny --config.corpus='my/*.jsonl'
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
    return base.set_model_size(base.get_config(), "tiny")
