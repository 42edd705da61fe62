"""Masked training batches as .npy files: written where TensorFlow is (the run's own tf.data
pipeline, `export_batches`), read with numpy alone (`load_batch_files`), so an accelerator
machine without TensorFlow trains on exactly the batches the pipeline makes.

A directory holds ``batches.json`` (the manifest, written last: its presence marks a complete
directory) and one ``FEATURE.npy`` per feature of `pipeline.make_dataset`, shaped
[num_batches, batch_size, ...] and stored in the narrowest dtype that holds its values (ids in
uint16 below 65,536 tokens, masks and 0/1 weights in uint8: ~600 bytes per 128-token row
instead of ~1.8 kB); reading restores the training dtypes (int32, float32). The run's vocabulary
(``vocab.txt``, and ``sentencepiece.model`` for a SentencePiece one) is copied beside them.

Batches are global batches of process 0 of 1; process p of P reads rows
[p B/P, (p + 1) B/P) of each. Step s reads batch s mod num_batches: a run longer than the export
cycles through it, and resuming at step s is an index.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from bertjax.errors import UserError

MANIFEST_FILE = "batches.json"
FORMAT_VERSION = 1


def storage_dtype(values: np.ndarray) -> np.dtype:
    """The narrowest dtype that holds `values` exactly: uint8/uint16/int8/int16/int32 for
    integers, uint8 for floats that are all 0 or 1, else the dtype itself."""
    if values.size == 0:
        return values.dtype
    if np.issubdtype(values.dtype, np.floating):
        if np.isin(values, (0.0, 1.0)).all():
            return np.dtype(np.uint8)
        return values.dtype
    low, high = int(values.min()), int(values.max())
    for candidate in (np.uint8, np.int8, np.uint16, np.int16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return values.dtype


def write_batches(
    batches: Iterable[dict[str, np.ndarray]],
    directory: str | Path,
    num_batches: int,
    *,
    metadata: dict | None = None,
) -> dict:
    """Writes the first `num_batches` of `batches` (dicts of equally shaped arrays) to
    `directory`; returns the manifest (`metadata` is stored in it under "metadata")."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST_FILE).unlink(missing_ok=True)
    stacked: dict[str, np.ndarray] = {}
    count = 0
    for index, batch in zip(range(num_batches), batches, strict=False):
        for name, value in batch.items():
            value = np.asarray(value)
            if name not in stacked:
                stacked[name] = np.empty((num_batches, *value.shape), value.dtype)
            stacked[name][index] = value
        count = index + 1
    if count < num_batches:
        raise UserError(f"the pipeline gave {count} batches, fewer than the {num_batches} asked")
    features = {}
    for name, values in stacked.items():
        stored = storage_dtype(values)
        np.save(directory / f"{name}.npy", values.astype(stored))
        features[name] = {"dtype": str(values.dtype), "stored_dtype": str(stored)}
    first = next(iter(stacked.values()))
    manifest = {
        "format_version": FORMAT_VERSION,
        "num_batches": num_batches,
        "batch_size": int(first.shape[1]),
        "max_seq_length": int(stacked["input_ids"].shape[2]),
        "max_predictions_per_seq": int(stacked["masked_lm_positions"].shape[2]),
        "features": features,
        "metadata": metadata or {},
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclasses.dataclass(frozen=True)
class BatchFiles:
    """A directory written by `write_batches`, its arrays memory-mapped."""

    directory: Path
    manifest: dict
    arrays: dict[str, np.ndarray]

    @property
    def num_batches(self) -> int:
        return self.manifest["num_batches"]

    @property
    def batch_size(self) -> int:
        return self.manifest["batch_size"]

    @property
    def max_seq_length(self) -> int:
        return self.manifest["max_seq_length"]

    @property
    def vocab_size(self) -> int:
        return self.manifest["metadata"]["vocab_size"]

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict:
        """This process's rows of the batch of global step `step`, in the training dtypes."""
        rows = self.batch_size // process_count
        start = process_index * rows
        index = step % self.num_batches
        return {
            name: np.asarray(values[index, start : start + rows]).astype(
                self.manifest["features"][name]["dtype"]
            )
            for name, values in self.arrays.items()
        }

    def stream(self, start_step: int = 0, process_index: int = 0, process_count: int = 1):
        """The batches from `start_step` on, with the `as_numpy_iterator()` the training loop
        reads tf.data datasets through."""
        if self.batch_size % process_count:
            raise UserError(
                f"{self.directory} holds batches of {self.batch_size} rows, which do not split "
                f"over {process_count} processes; export a batch size divisible by it"
            )
        return _Stream(self, start_step, process_index, process_count)


@dataclasses.dataclass(frozen=True)
class _Stream:
    files: BatchFiles
    start_step: int
    process_index: int
    process_count: int

    def as_numpy_iterator(self) -> Iterator[dict[str, np.ndarray]]:
        step = self.start_step
        while True:
            yield self.files.batch(step, self.process_index, self.process_count)
            step += 1


def load_batch_files(directory: str | Path) -> BatchFiles:
    """Reads and checks a directory of `write_batches`; UserError when incomplete."""
    directory = Path(directory).expanduser()
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise UserError(
            f"{str(directory)!r} has no {MANIFEST_FILE}; export batches into it first "
            "(benchmarks/gpu_check.sh --build-carry)"
        )
    again = "export the batches again"
    try:
        manifest = json.loads(manifest_path.read_text())
        features = list(manifest["features"])
        shape = (manifest["num_batches"], manifest["batch_size"])
    except (ValueError, TypeError, KeyError) as e:  # not JSON, or not a batches manifest
        raise UserError(f"{str(manifest_path)!r} is damaged ({e!r}); {again}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{str(directory)!r} was written by another version; export it again")
    arrays = {}
    for name in features:
        path = directory / f"{name}.npy"
        if not path.is_file():
            raise UserError(f"batch file {str(path)!r} is missing; {again}")
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except ValueError as e:  # cut short: its header promises more bytes than it holds
            raise UserError(f"batch file {str(path)!r} is damaged ({e}); {again}") from None
        if arrays[name].shape[:2] != shape:
            raise UserError(
                f"batch file {str(path)!r} holds {arrays[name].shape[:2]} batches x rows, "
                f"its manifest {shape}; {again}"
            )
    return BatchFiles(directory, manifest, arrays)


def export_batches(spec, directory: str | Path, num_batches: int) -> dict:
    """Runs `spec`'s own data pipeline (vocabulary, instances, masking: what `bertjax train`
    would feed its first `num_batches` steps, as process 0 of 1) and writes the batches to
    `directory`. Needs TensorFlow. `spec` is a `config.RunSpec`. Returns the manifest."""
    from bertjax.data import pipeline, vocab  # deferred: tf.data, only where batches are made

    data = pipeline.build_pretraining_data(spec.data)
    dataset = pipeline.make_dataset(
        data.source,
        spec.masking,
        data.tokenizer,
        global_batch_size=spec.loop.batch_size,
        seed=spec.data.seed,
    )
    metadata = {
        "vocab_size": int(data.tokenizer.vocab_size),
        "packed": bool(data.source.packed),
        "seed": spec.data.seed,
        "corpus": spec.data.corpus if not spec.data.prepared_dir else spec.data.prepared_dir,
        "masking": dataclasses.asdict(spec.masking),
    }
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    for source in vocab.vocab_files(data.vocab_path):  # vocab.txt (+ sentencepiece.model)
        (directory / source.name).write_bytes(source.read_bytes())  # local or gs://
    return write_batches(dataset.as_numpy_iterator(), directory, num_batches, metadata=metadata)
