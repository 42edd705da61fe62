"""How much of a document's text reaches an NSP instance when its "sentences" are long (text
without sentence ends: lowercased, unpunctuated or tokenised dumps, tables).

For each sentence length, one synthetic document of --tokens tokens cut into sentences of that
length (plus a second document, the random partners' source) goes through
`pretraining_examples.create_instances` with dupe_factor 1; every token id is unique, so the
share of the document's ids found in some row is the share of its text the model sees.

  python benchmarks/long_sentences.py
  python benchmarks/long_sentences.py --max_seq_length=512 --lengths=100,600,2000

Run with PYTHONPATH pointing at another checkout to measure that checkout's pair creation.
"""

import argparse

import numpy as np

from bertjax.data.pretraining_examples import create_instances


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000, help="tokens per document")
    parser.add_argument("--lengths", default="20,100,200,1000,4000,5000", help="sentence lengths")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--short_seq_prob", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def coverage(length: int, args: argparse.Namespace) -> tuple[int, float, float]:
    """(rows, share of the document's tokens in some row, mean real tokens per row)."""
    first = 1000  # ids below are left to [PAD], [CLS], [SEP]
    ids = np.arange(first, first + args.tokens)
    document = [ids[i : i + length].tolist() for i in range(0, args.tokens, length)]
    partner = (ids + args.tokens).reshape(-1, 20).tolist()  # random segments come from here
    rows = create_instances(
        [document, partner],
        max_seq_length=args.max_seq_length,
        short_seq_prob=args.short_seq_prob,
        dupe_factor=1,
        seed=args.seed,
        cls_id=1,
        sep_id=2,
        pad_id=0,
    )
    seen = np.unique(rows["input_ids"])
    seen = seen[(seen >= first) & (seen < first + args.tokens)]
    own = np.isin(rows["input_ids"], ids).any(axis=1)
    real = rows["input_mask"][own].sum(axis=1).mean()
    return int(own.sum()), len(seen) / args.tokens, float(real)


def main() -> None:
    args = _parse_args()
    print(f"max_seq_length {args.max_seq_length}, short_seq_prob {args.short_seq_prob}")
    print("| sentence length | rows from the document | its tokens in a row | tokens per row |")
    print("|---|---|---|---|")
    for length in (int(n) for n in args.lengths.split(",")):
        rows, share, real = coverage(length, args)
        print(f"| {length:,} | {rows:,} | {share:.1%} | {real:.1f} |")


if __name__ == "__main__":
    main()
