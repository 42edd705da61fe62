"""Prepared shards (`prepare`, ``prepared_dir``) -> a deterministic, resumable stream of masked
batches.

Process p of P reads only shards p, p + P, p + 2P, ...: disjoint, and together all shards.
Its k-th example overall is a pure function of (seed, p, k), so resuming at a step replays
exactly what an uninterrupted run would have read:

* epoch e of process p (N_p = its record count): its shards in an order drawn from
  (seed, p, e), read round-robin (``interleave``, deterministic), then shuffled in blocks of
  SHUFFLE_BLOCK records, each block with a permutation drawn from (seed, p, e, block);
* example k is record k mod N_p of epoch k // N_p, masked with a seed folded from (seed, p, k).

Resuming at step s starts at epoch k // N_p and skips k mod N_p records of it (reading, not parsing,
them: O(records per epoch) at most, whatever the step). Unlike the in-memory stream, the global
batch is not one global permutation: each process shuffles its own shards.
"""

import dataclasses
import json
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from etils import epath

from bertjax import paths
from bertjax.data import prepare, seeds
from bertjax.data.sources import MaskExample
from bertjax.errors import UserError

SHUFFLE_BLOCK = 4096  # records permuted together; ~1.5 MB of serialized 128-token rows
_CYCLE_LENGTH = 8  # shards read round-robin at a time
# the settings every manifest has (`prepare._checked_settings`); later ones are optional
REQUIRED_SETTINGS = ("max_seq_length", "packing", "lowercase", "seed", "dupe_factor")


@dataclasses.dataclass(frozen=True)
class PreparedCorpus:
    """A directory written by `prepare.run_prepare`: its shard files and manifest."""

    directory: epath.Path
    manifest: dict

    @property
    def files(self) -> list[str]:
        return [str(self.directory / shard["file"]) for shard in self.manifest["shards"]]

    @property
    def counts(self) -> list[int]:
        return [shard["instances"] for shard in self.manifest["shards"]]

    @property
    def settings(self) -> dict:
        return self.manifest["settings"]

    @property
    def vocab_dir(self) -> epath.Path:
        return self.directory / prepare.VOCAB_SUBDIR

    @property
    def heldout_file(self) -> epath.Path:
        """The documents held out of the shards (``eval_holdout_fraction`` > 0 only)."""
        return self.directory / prepare.HELDOUT_FILE

    @property
    def packed(self) -> bool:
        return self.settings["packing"]

    @property
    def segmented(self) -> bool:
        """Whether records carry a word segmenter's ``word_starts``."""
        return bool(self.settings.get("word_segmenter"))

    def __len__(self) -> int:
        return self.manifest["num_instances"]

    def dataset(
        self,
        *,
        global_batch_size: int,
        seed: int,
        start_step: int,
        process_index: int,
        process_count: int,
        mask_example: MaskExample,
    ) -> tf.data.Dataset:
        """Infinite stream of this process's batches from its shards (see module doc)."""
        local_batch = global_batch_size // process_count
        shards = process_shards(self, process_index, process_count)
        files = tf.constant([self.files[s] for s in shards])
        records_per_epoch = sum(self.counts[s] for s in shards)
        first = start_step * local_batch
        first_epoch, skip = divmod(first, records_per_epoch)
        fold_in = tf.random.experimental.stateless_fold_in
        stream_base = fold_in(tf.constant([seed, seeds.PREPARED_ORDER], tf.int64), process_index)
        mask_base = fold_in(tf.constant([seed, seeds.PREPARED_MASK], tf.int64), process_index)
        parse = parse_fn(self.settings["max_seq_length"], self.packed, self.segmented)

        def example(index, serialized):
            return mask_example(parse(serialized), fold_in(mask_base, index))

        epochs = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
        records = epochs.flat_map(lambda epoch: _epoch_records(files, stream_base, epoch))
        dataset = records.skip(skip).enumerate(start=first)
        dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(local_batch, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)


def load_prepared(directory: str | os.PathLike) -> PreparedCorpus:
    """Reads and checks a prepared directory (local or gs://): its manifest, and each file it
    names at the size it was written; UserError if incomplete or damaged."""
    directory = paths.as_path(directory)
    prepared = PreparedCorpus(directory, _read_manifest(directory))
    files = [(epath.Path(f), s.get("bytes"), s["instances"]) for f, s in zip(
        prepared.files, prepared.manifest["shards"], strict=True
    )]  # fmt: skip
    if prepared.settings.get("eval_holdout_fraction"):
        files.append((prepared.heldout_file, prepared.manifest.get("heldout_bytes"), 1))
    files.append((prepared.vocab_dir / prepare.VOCAB_FILE, None, 1))
    for path, size, records in files:
        problem = _file_problem(path, size, records)
        if problem:
            raise UserError(f"prepared file {str(path)!r} {problem}; prepare the corpus again")
    return prepared


def _read_manifest(directory: epath.Path) -> dict:
    manifest_path = directory / prepare.MANIFEST_FILE
    if not manifest_path.is_file():
        raise UserError(
            f"{str(directory)!r} has no {prepare.MANIFEST_FILE}; run `bertjax prepare` into it "
            "(an interrupted prepare leaves no manifest)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:  # not UTF-8 or not JSON
        problem = f"it is not JSON: {e}"
    else:
        problem = _manifest_problem(manifest)
    if problem:
        raise UserError(f"{str(manifest_path)!r} is damaged ({problem}); prepare the corpus again")
    if manifest.get("format_version") != prepare.FORMAT_VERSION:
        raise UserError(f"{str(directory)!r} was prepared by another version; prepare it again")
    return manifest


def _manifest_problem(manifest) -> str:
    """What a manifest lacks that reading its shards needs ("" if nothing)."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    shards, settings = manifest.get("shards"), manifest.get("settings")
    if not isinstance(shards, list) or not shards:
        return "no list of shards"
    for i, shard in enumerate(shards):
        if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)):
            return f"shard {i} names no file"
        if not _is_count(shard.get("instances")):
            return f"shard {i} has no instance count"
    if not _is_count(manifest.get("num_instances")):
        return "no instance count"
    if not isinstance(settings, dict):
        return "no settings"
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        return f"no {missing[0]} in its settings"
    if not (_is_count(settings["max_seq_length"]) and isinstance(settings["packing"], bool)):
        return "its max_seq_length or packing is not a number or a boolean"
    return ""


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _file_problem(path: epath.Path, size: int | None, records: int) -> str:
    """Why `path` cannot be read as written ("" if it can): missing, or not `size` bytes (None:
    manifests written before sizes were recorded: only an empty file that should hold
    `records` is caught)."""
    if not path.is_file():
        return "is missing"
    actual = path.stat().length
    if size is not None and actual != size:
        return f"is {actual:,} bytes, not the {size:,} it was written with: it was cut or changed"
    if size is None and records and not actual:
        return "is empty"
    return ""


def process_shards(prepared: PreparedCorpus, process_index: int, process_count: int) -> list[int]:
    """Indices of the shards process `process_index` reads (non-empty ones only)."""
    shards = [
        s
        for s in range(process_index, len(prepared.files), process_count)
        if prepared.counts[s] > 0
    ]
    if not shards:
        raise UserError(
            f"process {process_index} of {process_count} gets no prepared shard with instances; "
            f"prepare with --num_shards >= {process_count} (and enough documents per shard)"
        )
    return shards


def parse_fn(
    max_seq_length: int, packed: bool, segmented: bool = False
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """serialized tf.train.Example -> padded instance features (as in-memory instances)."""
    spec = {
        "input_ids": tf.io.VarLenFeature(tf.int64),
        "segment_ids": tf.io.VarLenFeature(tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    if packed:
        spec["attention_segment_ids"] = tf.io.VarLenFeature(tf.int64)
    if segmented:
        spec["word_starts"] = tf.io.VarLenFeature(tf.int64)

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        record = tf.io.parse_single_example(serialized, spec)

        def padded(name, value=0):
            values = tf.cast(tf.sparse.to_dense(record[name]), tf.int32)
            padding = [[0, max_seq_length - tf.shape(values)[0]]]
            values = tf.pad(values, padding, constant_values=value)
            return tf.ensure_shape(values, [max_seq_length])

        length = tf.shape(record["input_ids"].values)[0]
        features = {
            "input_ids": padded("input_ids"),
            "input_mask": tf.cast(tf.range(max_seq_length) < length, tf.int32),
            "segment_ids": padded("segment_ids"),
            "next_sentence_labels": tf.cast(record["next_sentence_labels"][0], tf.int32),
        }
        if packed:
            features["attention_segment_ids"] = padded("attention_segment_ids")
            features["next_sentence_weights"] = tf.constant(0.0, tf.float32)
        if segmented:
            # 1 on padding, as the in-memory rows have it (only marked tokens are 0)
            features["word_starts"] = padded("word_starts", value=1)
        return features

    return parse


def read_instances(prepared: PreparedCorpus, shards: list[int] | None = None) -> dict:
    """The instances of `shards` (default all), in file order, as numpy arrays in memory."""
    files = [prepared.files[s] for s in (range(len(prepared.files)) if shards is None else shards)]
    parse = parse_fn(prepared.settings["max_seq_length"], prepared.packed, prepared.segmented)
    dataset = tf.data.TFRecordDataset(files).map(parse).batch(65536)
    batches = list(dataset.as_numpy_iterator())
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def _epoch_records(files: tf.Tensor, base_seed: tf.Tensor, epoch: tf.Tensor) -> tf.data.Dataset:
    """Serialized records of one epoch: shuffled shard order, then shuffled blocks."""
    epoch_seed = tf.random.experimental.stateless_fold_in(base_seed, epoch)
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.size(files)), seed=epoch_seed)
    records = tf.data.Dataset.from_tensor_slices(tf.gather(files, order)).interleave(
        tf.data.TFRecordDataset,
        cycle_length=_CYCLE_LENGTH,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )

    def shuffle_block(block_index, block):
        seed = tf.random.experimental.stateless_fold_in(epoch_seed, block_index)
        return tf.random.experimental.stateless_shuffle(block, seed=seed)

    blocks = records.batch(SHUFFLE_BLOCK).enumerate().map(shuffle_block)
    return blocks.unbatch()
