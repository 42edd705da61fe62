"""Instance sources: where a run's pretraining instances come from, all behind one interface.

* `in_memory.InMemoryInstances`: instances built in memory from the whole corpus (the default);
* `prepared.PreparedCorpus`: shards written offline by `bertjax prepare` (``prepared_dir``);
* `text_stream.TextStream`: raw text read, tokenized and paired per process (``streaming``).

Each is built with everything it needs and exposes `InstanceSource.dataset`: this process's
batches from a global step on, as a pure function of (seed, process, example index), so resuming
is a start step and `pipeline.make_dataset` never asks which source it has.
"""

from collections.abc import Callable
from typing import Protocol

import tensorflow as tf

# (instance features, [2] seed) -> the output features of one masked example
MaskExample = Callable[[dict[str, tf.Tensor], tf.Tensor], dict[str, tf.Tensor]]


class InstanceSource(Protocol):
    """What `pipeline.make_dataset` needs from a source of pretraining instances."""

    @property
    def packed(self) -> bool:
        """Whether the instances are packed MLM-only rows (`packing`), not NSP pairs."""
        ...

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
        """Infinite stream of this process's batches of global_batch_size // process_count rows,
        from global step `start_step` on, each example masked by `mask_example`."""
        ...
