"""Instances built in memory -> an infinite, resumable tf.data stream of masked batches.

Every batch is a pure function of (seed, global example index): example i of the run is
instance ``index_shuffle(i % N, epoch = i // N)``, masked with a seed folded from i. So epochs
see fresh orders and fresh masks (dynamic masking), processes read disjoint slices of each
global batch without coordination, and resuming at a step replays exactly what an
uninterrupted run would have seen. No iterator state needs checkpointing, and resuming costs
the same at any step.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from bertjax.data import seeds
from bertjax.data.sources import MaskExample
from bertjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class InMemoryInstances:
    """Instance arrays [N, ...] (`pretraining_examples.create_instances` or
    `packing.pack_documents`): input_ids, input_mask, segment_ids, next_sentence_labels, and for
    packed rows attention_segment_ids and next_sentence_weights."""

    arrays: dict[str, np.ndarray]

    @property
    def packed(self) -> bool:
        return "attention_segment_ids" in self.arrays

    def __len__(self) -> int:
        return len(self.arrays["input_ids"])

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
        """Row r of step s on process p is global example i = s * global_batch_size
        + p * local_batch + r, with local_batch = global_batch_size // process_count."""
        num_instances = len(self)
        if num_instances == 0:
            raise UserError("no pretraining instances to stream; check --config.corpus")
        local_batch = global_batch_size // process_count
        table = {
            key: tf.constant(value, tf.float32 if key.endswith("weights") else tf.int32)
            for key, value in self.arrays.items()
        }
        shuffle_base = tf.constant([seed, seeds.IN_MEMORY_SHUFFLE], tf.int64)
        mask_base = tf.constant([seed, seeds.IN_MEMORY_MASK], tf.int64)
        last_index = tf.constant(num_instances - 1, tf.int64)
        fold_in = tf.random.experimental.stateless_fold_in

        def example(local_index: tf.Tensor) -> dict[str, tf.Tensor]:
            step, row = local_index // local_batch, local_index % local_batch
            index = step * global_batch_size + process_index * local_batch + row
            epoch_seed = fold_in(shuffle_base, index // num_instances)
            instance = tf.random.experimental.index_shuffle(
                index % num_instances, seed=epoch_seed, max_index=last_index
            )
            features = {key: tf.gather(value, instance) for key, value in table.items()}
            return mask_example(features, fold_in(mask_base, index))

        # Dataset.counter is an infinite int64 range: this process's k-th example overall.
        dataset = tf.data.Dataset.counter(start=start_step * local_batch)
        dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(local_batch, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)
