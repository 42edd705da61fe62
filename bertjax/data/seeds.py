"""The random streams of the data path, each in its own domain, so that no two ever share a seed.

Every random choice of the training stream (instance order, masks, file order, pairing) is a pure
function of the run's seed, a domain below and integers such as the process, epoch, chunk and
example index. Keeping the domains in one table keeps them distinct.
"""

import numpy as np

IN_MEMORY_SHUFFLE = 0  # in-memory instances: epoch permutations (`sources.in_memory`)
IN_MEMORY_MASK = 1  # in-memory instances: the mask of example i
PREPARED_ORDER = 2  # prepared shards: shard order and block shuffles (`sources.prepared`)
PREPARED_MASK = 3  # prepared shards: the mask of a process's example k
TEXT_FILE_ORDER = 4  # text stream: a process's file order per epoch (`sources.text_stream`)
TEXT_CHUNK = 5  # text stream: pairing and row order of one chunk
TEXT_MASK = 6  # text stream: the mask of a process's example k


def derive_seed(*parts: int) -> int:
    """A 64-bit seed that is a pure function of integer parts (negative ones allowed)."""
    state = np.random.SeedSequence([part % 2**64 for part in parts]).generate_state(1, np.uint64)
    return int(state[0])
