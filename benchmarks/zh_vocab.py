"""Chinese WordPiece vocabulary: [UNK] rate on held-out documents, the alphabet rule against the
trainer's old 1,000-character cut.

Trains `tokenizer.train_wordpiece_vocab` on the documents of a Chinese corpus that
`corpus.is_held_out` keeps in (default: ../shared/data/zh/pretrain, 5% held out by a hash of the
text, as `--config.eval_holdout_fraction` does), tokenizes the held-out documents and counts
[UNK] tokens; then the same with the alphabet cut to the 1,000 most frequent characters (what
the trainer kept before: `LIMIT_ALPHABET` and no `MIN_CHARACTER_COUNT`). Also prints how much of
the vocabulary single characters take, for comparison with bert-base-chinese (21,128 entries).

  python -m benchmarks.zh_vocab --corpus='../shared/data/zh/pretrain/*.jsonl' --vocab_size=21128
"""

import argparse
import tempfile
import time

from bertjax.data import corpus, tokenizer, vocab_files
from bertjax.data.tokenizer import WordPieceTokenizer, train_wordpiece_vocab


def unk_rate(vocab_path, texts: list[str]) -> tuple[float, int]:
    """Share of [UNK] among the tokens of `texts`, and the number of tokens."""
    wordpiece = WordPieceTokenizer(vocab_path, lowercase=True)
    unknown = total = 0
    for begin in range(0, len(texts), 64):
        for ids in wordpiece.encode(texts[begin : begin + 64]):
            unknown += ids.count(wordpiece.unk_id)
            total += len(ids)
    return unknown / total, total


def measure(train: list[str], held_out: list[str], vocab_size: int) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        vocab_path = train_wordpiece_vocab(train, vocab_size, True, out_dir)
        seconds = time.perf_counter() - start
        vocab = vocab_files.read_vocab(vocab_path)
        rate, tokens = unk_rate(vocab_path, held_out)
    singles = sum(len(t) == 1 for t in vocab)
    return {"vocab": len(vocab), "single": singles, "unk": rate, "tokens": tokens, "s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="../shared/data/zh/pretrain/*.jsonl")
    parser.add_argument("--vocab_size", type=int, default=21128)
    parser.add_argument("--holdout_fraction", type=float, default=0.05)
    args = parser.parse_args()
    train, held_out = [], []
    for text in corpus.read_documents(args.corpus):
        (held_out if corpus.is_held_out(text, args.holdout_fraction) else train).append(text)
    counts = tokenizer.character_counts(train, lowercase=True)
    print(f"{len(train)} training documents ({sum(map(len, train)):,} characters, "
          f"{len(counts):,} distinct), {len(held_out)} held out "
          f"({sum(map(len, held_out)):,} characters)")  # fmt: skip
    print("| alphabet | size | vocabulary | single characters | held-out [UNK] | train s |")
    print("|---|---|---|---|---|---|")
    rules = {
        "every frequent character (now)": tokenizer.MIN_CHARACTER_COUNT,
        f"{tokenizer.LIMIT_ALPHABET} most frequent (before)": 1 << 62,
    }
    for name, min_count in rules.items():
        tokenizer.MIN_CHARACTER_COUNT = min_count
        size = len(tokenizer.alphabet(counts, args.vocab_size))
        r = measure(train, held_out, args.vocab_size)
        print(f"| {name} | {size:,} | {r['vocab']:,} | {r['single']:,} | "
              f"{100 * r['unk']:.3f}% of {r['tokens']:,} | {r['s']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
