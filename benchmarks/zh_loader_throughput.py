"""Chinese whole-word masking against token masking: what the word segmenter costs the loader.

Two runs of the same Chinese corpus (default: the 西游记 sample in the package), vocabulary and
shapes: token masking without a segmenter, and whole-word masking with
``--config.word_segmenter=rjieba`` (each sentence cut into words by rjieba when it is
tokenized; the words travel as ``word_starts`` to the masker). For each it prints the time to
build the in-memory instances (sentence split, tokenize, segment, pair: where the segmenter
runs), then masked sequences/s out of `pipeline.make_dataset` from memory (segmented once) and,
with --text_stream, from the raw text stream (segmented on the fly, every pass), as
benchmarks/data_throughput.py measures them: tf.data limited to one thread, all cores, and
sequences per CPU-second of all the process's threads.

  python -m benchmarks.zh_loader_throughput --text_stream
  python -m benchmarks.zh_loader_throughput --corpus='../shared/data/zh/pretrain/*.jsonl'
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks.data_throughput import _dataset, _sequences_per_second  # noqa: E402
from bertjax.config import defaults, from_config  # noqa: E402
from bertjax.data import pipeline  # noqa: E402
from bertjax.data.corpus import SAMPLE_CORPUS_ZH  # noqa: E402
from bertjax.data.sources import text_stream  # noqa: E402

VARIANTS = {"token": "", "whole_word": "rjieba"}  # masking: word segmenter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=SAMPLE_CORPUS_ZH)
    parser.add_argument("--vocab_dir", default="", help="'' = train (and cache) one")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--max_predictions", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed per measurement")
    parser.add_argument("--text_stream", action="store_true", help="also time the text stream")
    parser.add_argument("--stream_chunk_documents", type=int, default=16)
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    rows = []
    for masking, segmenter in VARIANTS.items():
        config = defaults()
        config.update(
            corpus=args.corpus,
            vocab_dir=args.vocab_dir,
            vocab_size=args.vocab_size,
            max_seq_length=args.seq_length,
            max_predictions_per_seq=args.max_predictions,
            dupe_factor=1,
            masking=masking,
            word_segmenter=segmenter,
            stream_chunk_documents=args.stream_chunk_documents,
        )
        spec = from_config(config)
        start = time.perf_counter()
        data = pipeline.build_pretraining_data(spec.data)
        print(
            f"{masking} ({segmenter or 'no segmenter'}): {len(data.source)} instances built in "
            f"{time.perf_counter() - start:.1f} s (split, tokenize, segment, pair)",
            flush=True,
        )
        sources = {"in-memory": data.source}
        if args.text_stream:
            vocab_dir = data.vocab_path.parent
            sources["text stream"] = text_stream.from_spec(spec.data, data.tokenizer, vocab_dir)
        for name, source in sources.items():
            kwargs = dict(global_batch_size=args.batch_size, seed=0)
            (one, _), (every, per_cpu) = (
                _sequences_per_second(
                    _dataset(source, threads, spec.masking, data.tokenizer, **kwargs),
                    args.batch_size,
                    args.seconds,
                )
                for threads in (1, None)
            )
            rows.append((name, masking, segmenter or "-", one, every, per_cpu))
    print("\n| source | masking | segmenter | 1 thread | all cores | per CPU-s |")
    print("|---|---|---|---|---|---|")
    for name, masking, segmenter, *rates in rows:
        cells = " | ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name} | {masking} | {segmenter} | {cells} |")
    print("(masked sequences of --seq_length per second)")


if __name__ == "__main__":
    main()
