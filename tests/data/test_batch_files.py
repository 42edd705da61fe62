"""Carried batch files (`bertjax.data.batch_files`): each process reads its own rows of a global
batch, as the training loop's per-process input does (tests/test_tf_free.py trains from them)."""

import numpy as np
import pytest

from bertjax.data import batch_files
from bertjax.errors import UserError

ROWS, LENGTH, PREDICTIONS, BATCHES = 8, 6, 2, 3


def numbered_batch(index: int) -> dict[str, np.ndarray]:
    """Batch `index`: every token of row r is index * 100 + r (which row a process got shows)."""
    rows = index * 100 + np.arange(ROWS, dtype=np.int32)
    return {
        "input_ids": np.repeat(rows[:, None], LENGTH, axis=1),
        "masked_lm_positions": np.zeros((ROWS, PREDICTIONS), np.int32),
    }


@pytest.fixture
def files(tmp_path):
    batch_files.write_batches((numbered_batch(i) for i in range(BATCHES)), tmp_path, BATCHES)
    return batch_files.load_batch_files(tmp_path)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_each_process_reads_its_own_consecutive_rows(files, process_count):
    share = ROWS // process_count
    for step in range(BATCHES + 1):  # the batches repeat after the last
        rows = [files.batch(step, p, process_count)["input_ids"][:, 0]
                for p in range(process_count)]  # fmt: skip
        expected = (step % BATCHES) * 100 + np.arange(ROWS)
        np.testing.assert_array_equal(np.concatenate(rows), expected)
        assert all(len(r) == share for r in rows)


def test_a_stream_starts_at_its_step_with_the_process_rows(files):
    stream = files.stream(start_step=1, process_index=1, process_count=2).as_numpy_iterator()
    first, second = next(stream), next(stream)
    np.testing.assert_array_equal(first["input_ids"][:, 0], 100 + np.arange(4, 8))
    np.testing.assert_array_equal(second["input_ids"][:, 0], 200 + np.arange(4, 8))
    assert first["input_ids"].dtype == np.int32


def test_rows_that_do_not_split_over_the_processes_are_one_line(files):
    with pytest.raises(UserError, match="batches of 8 rows, which do not split over 3 processes"):
        files.stream(process_count=3)
