"""Test setup: 8 forced host devices, so sharding code runs on a laptop.

The flag must be set before JAX is imported.
"""

import atexit
import os
import shutil
import tempfile

from tests import xla_flags
from tests.worker_crash import pytest_testnodedown  # noqa: F401  (a dead worker's signal)

os.environ.setdefault("XLA_FLAGS", xla_flags.host_flags(8))
os.environ.setdefault("PJRT_NPROC", xla_flags.client_threads(8))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The suite compiles the same tiny models many times, in this process and in the CLI
# subprocesses it starts: XLA's persistent cache (one fresh directory per session, inherited by
# the subprocesses) compiles each once. tests/test_reliability.py: 538 s without, 391 s with
# (2-core CPU, same load).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="bertjax-tests-xla-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")

# Orbax saves an array replicated over the suite's 8 forced CPU devices in 8 slices, one per
# device, each an eager jax slice (5,560 for a 12-step smoke run's 5 saves: 2.2 s of its 18 s,
# cProfile, 2-core CPU machine). The slices are all in this process's memory, so the test
# processes (not the CLI runs they start) write each array whole (what restores is the same).
# (Orbax already does this on GPUs; on TPU pods replica-parallel spreads a save over the hosts,
# so bertjax keeps Orbax's default.)
import logging  # noqa: E402

import orbax.checkpoint as ocp  # noqa: E402
from absl import logging as absl_logging  # noqa: E402


def _register_whole_array_writes() -> None:
    """Without Orbax's warning that the handler replaces its default; the absl logger's own
    level (NOTSET) is put back, not absl's set_verbosity (that pins one: caplog saw no INFO)."""
    absl_logger = absl_logging.get_absl_logger()
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True
        )
    finally:
        absl_logger.setLevel(level)


_register_whole_array_writes()
