"""Defaults for every bertjax pretraining run: BERT-base, phase 1 (seq 128) of the BERT recipe.

The defaults live in the package (`bertjax.config.defaults`): each field is documented in one
line where its spec defines it (bertjax/config.py lists the specs). Every other config derives
from them and overrides a few fields. Any field can be overridden from the command line:

  bertjax train --config=configs/base.py --workdir=/tmp/bert --config.learning_rate=2e-4
"""

import ml_collections

from bertjax.config import defaults


def get_config() -> ml_collections.ConfigDict:
    return defaults()
