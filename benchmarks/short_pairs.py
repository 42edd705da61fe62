"""How steady the share of short NSP pairs is over seeds, for a corpus as it is cut into documents
and for the same text with each source file made one document (a corpus of books, one per file).

`short_seq_prob` asks for that share of pairs at a random, shorter length (fine-tuning's short
inputs); this prints, per seed, the rows `pretraining_examples.create_instances` makes, their
real-token share and the share of rows under --short_below tokens, then min-max over seeds.

  python benchmarks/short_pairs.py                                    # the sample corpus
  python benchmarks/short_pairs.py --corpus='my_corpus/*.jsonl' --seeds=4

Run with PYTHONPATH pointing at another checkout to measure that checkout's pair creation.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

from bertjax.config import defaults, from_config  # noqa: E402
from bertjax.data import corpus, documents, vocab  # noqa: E402
from bertjax.data.pretraining_examples import create_instances  # noqa: E402


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=corpus.SAMPLE_CORPUS)
    parser.add_argument("--vocab_dir", default="", help="'' = train (and cache) one")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--short_seq_prob", type=float, default=0.1)
    parser.add_argument("--dupe_factor", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--short_below", type=int, default=100, help="a row under this is short")
    return parser.parse_args()


def _row_stats(instances: dict[str, np.ndarray], short_below: int) -> tuple[int, float, float]:
    """(rows, real-token share, share of rows with fewer than short_below real tokens)."""
    lengths = instances["input_mask"].sum(axis=1)
    return (
        len(lengths),
        float(instances["input_mask"].mean()),
        float((lengths < short_below).mean()),
    )


def _one_document_per_file(docs: list, doc_sources: list[str]) -> list:
    """The documents of each source joined, in order, into one document."""
    joined: dict[str, list] = {}
    for source, doc in zip(doc_sources, docs, strict=True):
        joined.setdefault(source, []).extend(doc)
    return list(joined.values())


def main() -> None:
    args = _parse_args()
    config = defaults()
    config.update(corpus=args.corpus, vocab_dir=args.vocab_dir, vocab_size=args.vocab_size)
    data = from_config(config).data
    tokenizer = vocab.load_tokenizer(vocab.build_or_load_vocab(data), data.lowercase)
    doc_sources: list[str] = []
    texts = list(corpus.read_documents(args.corpus, data.text_field, sources=doc_sources))
    lengths: list[list[int]] = []
    docs, _ = documents.tokenize_documents(texts, tokenizer, sentence_lengths=lengths)
    # tokenize_documents drops documents without sentences; keep the sources of the others.
    doc_sources = [s for s, doc in zip(doc_sources, lengths, strict=True) if doc]
    if len(doc_sources) != len(docs):
        raise SystemExit("a document tokenized to nothing; this benchmark needs non-empty ones")
    layouts = {
        f"as given ({len(docs)} documents)": docs,
        f"one document per file ({len(set(doc_sources))})": _one_document_per_file(
            docs, doc_sources
        ),
    }
    special = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    print(
        f"max_seq_length {args.max_seq_length}, short_seq_prob {args.short_seq_prob}, "
        f"dupe_factor {args.dupe_factor}, short = under {args.short_below} tokens"
    )
    for name, layout in layouts.items():
        if len(layout) < 2:
            print(f"{name}: skipped (NSP pairs need 2 documents)")
            continue
        start = time.perf_counter()
        rows = []
        for seed in range(args.seeds):
            instances = create_instances(
                layout,
                max_seq_length=args.max_seq_length,
                short_seq_prob=args.short_seq_prob,
                dupe_factor=args.dupe_factor,
                seed=seed,
                **special,
            )
            rows.append(_row_stats(instances, args.short_below))
            count, real, short = rows[-1]
            print(
                f"  {name}, seed {seed}: {count} rows, {100 * real:.1f}% real tokens, "
                f"{100 * short:.1f}% short"
            )
        table = np.array(rows)
        print(
            f"{name}: rows {table[:, 0].min():.0f}-{table[:, 0].max():.0f}, real tokens "
            f"{100 * table[:, 1].min():.1f}-{100 * table[:, 1].max():.1f}%, short rows "
            f"{100 * table[:, 2].min():.1f}-{100 * table[:, 2].max():.1f}% "
            f"(mean {100 * table[:, 2].mean():.1f}%) over {args.seeds} seeds "
            f"in {time.perf_counter() - start:.0f} s"
        )


if __name__ == "__main__":
    main()
