"""Masked sequences per second out of the data pipeline, per masking kind, per core.

Builds the in-memory pretraining data of the sample corpus (or --corpus) at --seq_length,
then times `pipeline.make_dataset` batches on the host CPU: once with tf.data limited to one
thread (the per-core rate) and once with all cores; optionally also from prepared shards
(`bertjax prepare`), after timing `prepare` itself with each of --prepare_workers worker
processes (MB of input text/s, instances/s); optionally also from the raw text stream
(`--config.streaming`: read, tokenize, pair and mask on the fly; "1 thread" there is one
chunk-building thread and one tf.data thread). Prints the cores a host would need to feed
--target sequences/s.

  python benchmarks/data_throughput.py                       # token, whole_word, span
  python benchmarks/data_throughput.py --prepared --masking=token \
      --corpus='../shared/data/pretrain/*.jsonl' --prepare_workers=1,2
  python benchmarks/data_throughput.py --text_stream --masking=token --stream_chunk_documents=64
"""

import argparse
import dataclasses
import glob
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tensorflow as tf  # noqa: E402

from bertjax.data import pipeline, prepare, streaming, text_stream  # noqa: E402
from configs import base  # noqa: E402


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=base.SAMPLE_CORPUS)
    parser.add_argument("--vocab_dir", default="", help="'' = train (and cache) one")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--max_predictions", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed per measurement")
    parser.add_argument("--masking", default="token,whole_word,span")
    parser.add_argument("--prepared", action="store_true", help="also time prepared shards")
    parser.add_argument("--prepare_workers", default="1,2", help="prepare timed with each")
    parser.add_argument("--text_stream", action="store_true", help="also time the text stream")
    parser.add_argument("--stream_chunk_documents", type=int, default=2048)
    parser.add_argument("--target", type=float, default=17_000.0, help="sequences/s to feed")
    return parser.parse_args()


def _sequences_per_second(dataset: tf.data.Dataset, batch_size: int, seconds: float) -> float:
    """Batches taken for `seconds` after two warm-up batches (tracing, prefetch fill)."""
    iterator = iter(dataset)
    for _ in range(2):
        next(iterator)
    start, batches = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * batch_size / (time.perf_counter() - start)


def _with_threads(dataset: tf.data.Dataset, threads: int | None) -> tf.data.Dataset:
    if threads is None:
        return dataset
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return dataset.with_options(options)


def _dataset(instances, threads: int | None, **kwargs) -> tf.data.Dataset:
    """make_dataset over `instances` with tf.data (and the text stream's chunk builders) limited
    to `threads` (None: all cores)."""
    if isinstance(instances, text_stream.TextStream):
        instances = dataclasses.replace(instances, num_workers=threads or 0)
    return _with_threads(pipeline.make_dataset(instances, **kwargs), threads)


def main() -> None:
    args = _parse_args()
    config = base.get_config()
    config.update(
        corpus=args.corpus,
        vocab_dir=args.vocab_dir,
        vocab_size=args.vocab_size,
        max_seq_length=args.seq_length,
        max_predictions_per_seq=args.max_predictions,
        dupe_factor=1,
    )
    start = time.perf_counter()
    data = pipeline.build_pretraining_data(config)
    num_instances = len(data.instances["input_ids"])
    print(
        f"in-memory data: {num_instances} instances of {args.seq_length} tokens "
        f"in {time.perf_counter() - start:.1f} s; host: {os.cpu_count()} cores"
    )
    sources = {"in-memory": data.instances}
    if args.prepared:
        megabytes = sum(os.path.getsize(f) for f in glob.glob(args.corpus)) / 1e6
        for workers in (int(w) for w in args.prepare_workers.split(",")):
            out_dir = tempfile.mkdtemp(prefix="bertjax-prepared-")
            start = time.perf_counter()
            manifest = prepare.run_prepare(
                args.corpus,
                data.vocab_path.parent,
                out_dir,
                max_seq_length=args.seq_length,
                dupe_factor=1,
                num_shards=8,
                num_workers=workers,
            )
            elapsed = time.perf_counter() - start
            print(
                f"prepare, {workers} worker process(es): {megabytes:.1f} MB of input files, "
                f"{manifest['num_instances']} instances, {manifest['num_tokens']} tokens in "
                f"{elapsed:.1f} s = {megabytes / elapsed:.2f} MB/s, "
                f"{manifest['num_instances'] / elapsed:,.0f} instances/s, "
                f"{manifest['num_tokens'] / elapsed:,.0f} tokens/s (worker start-up included)"
            )
        sources["prepared shards"] = streaming.load_prepared(out_dir)
    if args.text_stream:
        config.stream_chunk_documents = args.stream_chunk_documents
        vocab_dir = data.vocab_path.parent
        sources["raw text stream"] = text_stream.from_config(config, data.tokenizer, vocab_dir)

    print(f"{'source':<16} {'masking':<11} {'1 thread':>10} {'all cores':>10} {'cores':>6}")
    for source_name, instances in sources.items():
        for kind in args.masking.split(","):
            config.masking = kind
            kwargs = pipeline.masking_kwargs(data.tokenizer, config)
            kwargs.update(global_batch_size=args.batch_size, seed=0)
            one, every = (
                _sequences_per_second(
                    _dataset(instances, t, **kwargs), args.batch_size, args.seconds
                )
                for t in (1, None)
            )
            print(
                f"{source_name:<16} {kind:<11} {one:>10,.0f} {every:>10,.0f} "
                f"{args.target / one:>6.1f}"
            )
    print(f"(sequences/s; cores = {args.target:,.0f} / the 1-thread rate)")


if __name__ == "__main__":
    main()
