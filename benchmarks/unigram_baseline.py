"""The frequency-only baseline of a pretraining config's held-out MLM numbers.

Builds the config's training and held-out data (dupe_factor 1), counts the training tokens and
prints, over the held-out tokens: the cross-entropy of a unigram model (add-0.5 smoothed token
frequencies) and the accuracy of always predicting the most frequent token. A model whose
held-out MLM loss and accuracy sit near these has learned token frequencies, little context.

  python -m benchmarks.unigram_baseline --config=configs/proof_mini.py
"""

import argparse

import numpy as np

from bertjax.config import from_config, load_config
from bertjax.data import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/proof_mini.py")
    config = load_config(parser.parse_args().config)
    config.dupe_factor = 1
    spec = from_config(config)
    train = pipeline.build_pretraining_data(spec.data)
    held_out = pipeline.build_pretraining_data(spec.data, split="eval")
    tokenizer = train.tokenizer
    special = [tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id]

    def tokens(data) -> np.ndarray:
        arrays = data.source.arrays
        ids = arrays["input_ids"][arrays["input_mask"] == 1]
        return ids[~np.isin(ids, special)]

    train_ids, held_out_ids = tokens(train), tokens(held_out)
    counts = np.bincount(train_ids, minlength=tokenizer.vocab_size) + 0.5
    probs = counts / counts.sum()
    print(f"{len(train_ids)} training tokens, {len(held_out_ids)} held-out tokens")
    print(f"unigram cross-entropy on held-out tokens: {-np.log(probs[held_out_ids]).mean():.3f}")
    print(f"most-frequent-token accuracy: {(held_out_ids == probs.argmax()).mean():.3f}")


if __name__ == "__main__":
    main()
