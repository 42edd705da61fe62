"""Masked sequences per second out of the data pipeline, per masking kind, per core.

Builds the in-memory pretraining data of the sample corpus (or --corpus) at --seq_length,
then times `pipeline.make_dataset` batches on the host CPU: once with tf.data limited to one
thread (the per-core rate) and once with all cores; optionally also from prepared shards
(`bertjax prepare`), after timing `prepare` itself with each of --prepare_workers worker
processes (MB of input text/s, instances/s); optionally also from the raw text stream
(`--config.streaming`: read, tokenize, pair and mask on the fly; "1 thread" there is one
chunk-building thread and one tf.data thread). Prints the cores a host would need to feed
--target sequences/s: the target over sequences per CPU second (all threads' CPU time, so a
source whose one-thread run already keeps several threads busy is not overrated).

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

from bertjax.config import defaults, from_config  # noqa: E402
from bertjax.data import pipeline, prepare  # noqa: E402
from bertjax.data.corpus import SAMPLE_CORPUS  # noqa: E402
from bertjax.data.sources import prepared, text_stream  # noqa: E402


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=SAMPLE_CORPUS)
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


def _sequences_per_second(
    dataset: tf.data.Dataset, batch_size: int, seconds: float
) -> tuple[float, float]:
    """(sequences per wall second, sequences per CPU second of this process, all its threads)
    over batches taken for `seconds` after two warm-up batches (tracing, prefetch fill)."""
    iterator = iter(dataset)
    for _ in range(2):
        next(iterator)
    start, cpu_start, batches = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    sequences = batches * batch_size
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return sequences / wall, sequences / cpu


def _with_threads(dataset: tf.data.Dataset, threads: int | None) -> tf.data.Dataset:
    if threads is None:
        return dataset
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return dataset.with_options(options)


def _dataset(source, threads: int | None, *args, **kwargs) -> tf.data.Dataset:
    """make_dataset over `source` with tf.data (and the text stream's chunk builders) limited
    to `threads` (None: all cores)."""
    if isinstance(source, text_stream.TextStream):
        source = dataclasses.replace(source, num_workers=threads or 0)
    return _with_threads(pipeline.make_dataset(source, *args, **kwargs), threads)


def main() -> None:
    args = _parse_args()
    config = defaults()
    config.update(
        corpus=args.corpus,
        vocab_dir=args.vocab_dir,
        vocab_size=args.vocab_size,
        max_seq_length=args.seq_length,
        max_predictions_per_seq=args.max_predictions,
        dupe_factor=1,
    )
    start = time.perf_counter()
    spec = from_config(config)
    data = pipeline.build_pretraining_data(spec.data)
    num_instances = len(data.source)
    print(
        f"in-memory data: {num_instances} instances of {args.seq_length} tokens "
        f"in {time.perf_counter() - start:.1f} s; host: {os.cpu_count()} cores"
    )
    sources = {"in-memory": data.source}
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
            busy = sum(shard["seconds"] for shard in manifest["shards"])
            slowest = max(shard["seconds"] for shard in manifest["shards"])
            print(
                f"  shard builds: {busy:.1f} worker-s in all = {megabytes / busy:.2f} MB/s per "
                f"core after start-up; largest shard {slowest:.1f} s"
            )
        sources["prepared shards"] = prepared.load_prepared(out_dir)
    if args.text_stream:
        config.stream_chunk_documents = args.stream_chunk_documents
        vocab_dir = data.vocab_path.parent
        stream_data = from_config(config).data
        sources["raw text stream"] = text_stream.from_spec(stream_data, data.tokenizer, vocab_dir)

    header = ("1 thread", "all cores", "per CPU-s", "cores")
    print(f"{'source':<16} {'masking':<11} " + " ".join(f"{h:>10}" for h in header))
    for source_name, source in sources.items():
        for kind in args.masking.split(","):
            masking = dataclasses.replace(spec.masking, masking=kind)
            kwargs = dict(global_batch_size=args.batch_size, seed=0)
            (one, _), (every, per_cpu) = (
                _sequences_per_second(
                    _dataset(source, t, masking, data.tokenizer, **kwargs),
                    args.batch_size,
                    args.seconds,
                )
                for t in (1, None)
            )
            rates = (one, every, per_cpu, args.target / per_cpu)
            print(
                f"{source_name:<16} {kind:<11} "
                + " ".join(f"{r:>10,.0f}" for r in rates[:3])
                + f" {rates[3]:>10.1f}"
            )
    print(
        "(sequences/s; per CPU-s: sequences per CPU second used by all the process's threads "
        f"in the all-cores run; cores = {args.target:,.0f} / that rate)"
    )


if __name__ == "__main__":
    main()
