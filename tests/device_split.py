"""The suite's devices: one pytest-xdist worker with 8 forced CPU devices runs the tests marked
`multi_device` (the meshes, the 8-device comparisons), the other workers run everything else on
1 device, as most users' runs on one accelerator do.

Why: on 8 forced devices the trainer's default mesh splits every batch 8 ways, and on a 2-core
machine each step then runs 8 partitions and their collectives. The 1,386 tests that pass on one
device took 3,114 s on 8 and 2,413 s on 1 (tests' summed time, two runs of 2026-12-08); the 58 that
need 8 devices took 442 s. The whole default suite, the same hour: 27 min 43 s on 2 workers with 8
devices each, 25 min 12 s and 26 min 52 s split (runs before and after it). pytest-xdist gives
every worker the same setup, so this module gives `gw0` the 8 devices and a scheduler that sends it
the marked tests and nothing else; `-n auto` adds that worker to one per core (it exits once the
marked tests are done, leaving a worker per core).

The split is on only where the suite sets XLA_FLAGS itself, files are dealt out (`--dist=loadfile`)
and there are at least 3 workers; otherwise every process has 8 devices, as before. It is
deterministic: a test that needs a mesh but is not marked fails on every split run. What the split
gives up: the unmarked end-to-end tests (CLI runs, resumes, fine-tunes) no longer run data-parallel
over 8 devices; the marked ones test meshes on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from xdist.scheduler import LoadFileScheduling

MARKER = "multi_device"
MULTI_DEVICE_WORKER = "gw0"
MULTI_DEVICE_UNIT = "<the tests marked multi_device>"  # the scheduler's name for their work unit
DEVICES = 8  # every process's forced CPU devices where the suite is not split
# Set by the controller of a split run: a directory where each worker lists the marked tests it
# collected (the controller's scheduler sees node ids only, and pytest 9 ids cannot be renamed
# as xdist's loadgroup renames them).
SPLIT_VARIABLE = "BERTJAX_TESTS_DEVICE_SPLIT"
MIN_WORKERS = 3  # the 8-device worker and at least two 1-device ones


def process_devices(environ: Mapping[str, str]) -> int:
    """Forced CPU devices of this test process: 1 on a split run's workers other than gw0,
    else 8 (gw0, an unsplit run, `-n 0`)."""
    worker = environ.get("PYTEST_XDIST_WORKER")
    split = bool(environ.get(SPLIT_VARIABLE))
    return 1 if split and worker and worker != MULTI_DEVICE_WORKER else DEVICES


def suite_sets_xla_flags(environ: Mapping[str, str]) -> bool:
    """Whether this process sets XLA_FLAGS (from `process_devices`): the controller (or `-n 0`
    run) where the user set none, a worker whose controller split the run. A user's XLA_FLAGS
    (devices, dumps) reach every process as they are."""
    if "PYTEST_XDIST_WORKER" in environ:
        return bool(environ.get(SPLIT_VARIABLE))
    return "XLA_FLAGS" not in environ


def _can_split(config: pytest.Config, suite_sets_xla_flags: bool) -> bool:
    """The suite owns XLA_FLAGS (the user set none) and files are dealt out to workers."""
    return suite_sets_xla_flags and getattr(config.option, "dist", "no") == "loadfile"


def splits(config: pytest.Config, suite_sets_xla_flags: bool) -> bool:
    """Whether this run's workers are split: it can be, and there are enough workers."""
    workers = len(getattr(config.option, "tx", None) or [])
    return _can_split(config, suite_sets_xla_flags) and workers >= MIN_WORKERS


def auto_workers(cores: int, config: pytest.Config, suite_sets_xla_flags: bool) -> int:
    """`-n auto`: one worker per core, plus the 8-device worker where the run can split."""
    cores = max(cores, 1)
    can_split = _can_split(config, suite_sets_xla_flags) and cores + 1 >= MIN_WORKERS
    return cores + 1 if can_split else cores


def list_marked_items(items: list[pytest.Item], directory: str, worker: str) -> None:
    """Writes the node ids of this worker's `multi_device` tests to `directory`/`worker`, before
    the worker reports its collection (so before the controller schedules)."""
    marked = [item.nodeid for item in items if item.get_closest_marker(MARKER)]
    path = Path(directory) / worker
    path.with_suffix(".part").write_text("".join(f"{nodeid}\n" for nodeid in marked))
    path.with_suffix(".part").replace(path)


def read_marked(directory: str, worker: str) -> set[str]:
    """The marked tests `worker` listed; none where it listed nothing (a collection error,
    which the run reports itself)."""
    path = Path(directory) / worker
    return set(path.read_text().splitlines()) if path.is_file() else set()


class MultiDeviceScheduling(LoadFileScheduling):
    """`--dist=loadfile` with the tests marked `multi_device` as one work unit that only gw0 is
    given, and gw0 given nothing else. Should gw0 die, its replacement has 1 device: the
    unit then goes to any worker and its tests fail there rather than wait for ever."""

    marked: set[str] | None = None  # the marked tests' node ids, read at the first schedule()

    def _split_scope(self, nodeid: str) -> str:
        return MULTI_DEVICE_UNIT if nodeid in self.marked else super()._split_scope(nodeid)

    def _may_run(self, node, scope: str) -> bool:
        if not any(n.gateway.id == MULTI_DEVICE_WORKER for n in self.nodes):
            return True
        return (node.gateway.id == MULTI_DEVICE_WORKER) == (scope == MULTI_DEVICE_UNIT)

    def _assign_work_unit(self, node) -> None:
        scope = next((s for s in self.workqueue if self._may_run(node, s)), None)
        if scope is None:  # all that is left is for the other kind of worker
            node.shutdown()
            return
        self.workqueue.move_to_end(scope, last=False)  # the base class assigns the first unit
        super()._assign_work_unit(node)

    def schedule(self) -> None:
        """The base class's, without its shutting down of the workers beyond the number of
        work units (it could shut down gw0): a worker with nothing it may run shuts down."""
        assert self.collection_is_completed
        if self.collection is None:
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            node, self.collection = next(iter(self.registered_collections.items()))
            if self.marked is None:
                self.marked = read_marked(os.environ[SPLIT_VARIABLE], node.gateway.id)
            units: dict[str, dict[str, bool]] = {}
            for nodeid in self.collection:
                units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            for scope, unit in sorted(units.items(), key=lambda item: -len(item[1])):
                self.workqueue[scope] = unit
        for _ in range(2):  # a worker starts with two units where it can (as the base class)
            for node in self.nodes:
                self._reschedule(node)


def one_device_hint(report: pytest.TestReport) -> None:
    """A failed test on a 1-device worker says so, and how to give a test 8 devices."""
    if report.failed and process_devices(os.environ) == 1:
        report.sections.append((
            "devices",
            f"this worker has 1 device ({__name__}): mark a test that needs a mesh "
            f"@pytest.mark.{MARKER}",
        ))  # fmt: skip
