"""Test setup: forced host devices, so sharding code runs on a laptop (8; 1 on the workers
that run the tests not marked `multi_device`, see tests/device_split.py).

The flag must be set before JAX is imported.
"""

import atexit
import os
import shutil
import tempfile

import pytest
from xdist import plugin as xdist_plugin

from tests import device_split, xla_flags
from tests.worker_crash import pytest_testnodedown  # noqa: F401  (a dead worker's signal)

# Set before this process's first JAX import: 8 devices, 1 on a split run's 1-device workers.
SUITE_SETS_XLA_FLAGS = device_split.suite_sets_xla_flags(os.environ)
if SUITE_SETS_XLA_FLAGS:
    _devices = device_split.process_devices(os.environ)
    os.environ["XLA_FLAGS"] = xla_flags.host_flags(_devices)
    os.environ["PJRT_NPROC"] = xla_flags.client_threads(_devices)
os.environ.setdefault("PJRT_NPROC", xla_flags.client_threads(device_split.DEVICES))
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


def pytest_xdist_auto_num_workers(config):
    cores = xdist_plugin.pytest_xdist_auto_num_workers(config)  # xdist's own count
    return device_split.auto_workers(cores, config, SUITE_SETS_XLA_FLAGS)


def pytest_configure(config):
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller, before it starts the workers
        split = device_split.splits(config, SUITE_SETS_XLA_FLAGS)
        directory = tempfile.mkdtemp(prefix="bertjax-tests-marked-") if split else ""
        if directory:
            atexit.register(shutil.rmtree, directory, True)
        os.environ[device_split.SPLIT_VARIABLE] = directory


def pytest_collection_modifyitems(items):
    directory = os.environ.get(device_split.SPLIT_VARIABLE)
    if directory and "PYTEST_XDIST_WORKER" in os.environ:
        device_split.list_marked_items(items, directory, os.environ["PYTEST_XDIST_WORKER"])


def pytest_xdist_make_scheduler(config, log):
    if os.environ.get(device_split.SPLIT_VARIABLE):
        return device_split.MultiDeviceScheduling(config, log)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    device_split.one_device_hint(outcome.get_result())
