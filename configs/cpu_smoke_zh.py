"""Chinese CPU smoke pretraining: BERT-tiny on the embedded 西游记 with whole-word masking.

The Chinese twin of configs/cpu_smoke.py: trains a WordPiece vocabulary on the public-domain
Journey to the West that ships in the package (every character seen 3 times gets its own token:
3,579, short of cpu_smoke's 8k target, as the log says, since BERT's tokenizer splits every CJK
character; cached), splits the 101 chapters at 。！？… and closing quotes, segments each
sentence into words with rjieba and masks whole words the Chinese-BERT-wwm way (all characters of
a chosen word, one 80/10/10 choice per word), then runs cpu_smoke's 1,000 sharded AdamW steps. A
few minutes on a 2-core CPU:

  bertjax train --config=configs/cpu_smoke_zh.py --workdir=workdirs/cpu_smoke_zh
"""

from pathlib import Path

import ml_collections

from bertjax.config import load_config
from bertjax.data.corpus import SAMPLE_CORPUS_ZH


def get_config() -> ml_collections.ConfigDict:
    config = load_config(Path(__file__).with_name("cpu_smoke.py"))  # BERT-tiny, 8k vocab target
    config.corpus = SAMPLE_CORPUS_ZH
    config.word_segmenter = "rjieba"  # Chinese words travel with the tokens (word_starts)
    config.masking = "whole_word"
    return config
