"""The suite's split of its devices over pytest-xdist workers (tests/device_split.py): which
process has how many devices, and which worker the scheduler gives which tests."""

import os
import types

import jax
import pytest

from tests import device_split
from tests.device_split import MultiDeviceScheduling, process_devices

SPLIT = {device_split.SPLIT_VARIABLE: "/tmp/marked"}


def test_only_a_split_runs_other_workers_have_one_device():
    assert process_devices({**SPLIT, "PYTEST_XDIST_WORKER": "gw0"}) == 8
    assert process_devices({**SPLIT, "PYTEST_XDIST_WORKER": "gw2"}) == 1
    assert process_devices({device_split.SPLIT_VARIABLE: "", "PYTEST_XDIST_WORKER": "gw2"}) == 8
    assert process_devices({}) == 8  # -n 0, or the controller


def test_a_users_xla_flags_are_kept_in_every_process():
    assert not device_split.suite_sets_xla_flags({"XLA_FLAGS": "--xla_dump_to=/tmp/d"})
    assert device_split.suite_sets_xla_flags({})
    worker = {"XLA_FLAGS": "--from-the-controller", "PYTEST_XDIST_WORKER": "gw1"}
    assert device_split.suite_sets_xla_flags({**worker, **SPLIT})
    assert not device_split.suite_sets_xla_flags({**worker, device_split.SPLIT_VARIABLE: ""})


def options(workers: int, dist: str = "loadfile"):
    return types.SimpleNamespace(option=types.SimpleNamespace(tx=["popen"] * workers, dist=dist))


def test_a_run_splits_with_three_workers_dealing_out_files_and_its_own_xla_flags():
    assert device_split.splits(options(3), suite_sets_xla_flags=True)
    assert not device_split.splits(options(2), suite_sets_xla_flags=True)
    assert not device_split.splits(options(3, "load"), suite_sets_xla_flags=True)
    assert not device_split.splits(options(3), suite_sets_xla_flags=False)
    assert device_split.auto_workers(2, options(0), True) == 3  # a core each, and gw0
    assert device_split.auto_workers(1, options(0), True) == 1  # too few to split: as xdist
    assert device_split.auto_workers(2, options(0, "load"), True) == 2
    assert device_split.auto_workers(2, options(0), False) == 2


def test_this_process_has_the_devices_its_worker_is_given():
    assert jax.device_count() == process_devices(os.environ)


class FakeNode:
    def __init__(self, name: str):
        self.gateway = types.SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


COLLECTION = [
    "tests/test_a.py::test_1",
    "tests/test_a.py::test_mesh",
    "tests/test_b.py::test_1",
    "tests/test_b.py::test_2",
    "tests/test_c.py::test_mesh",
]
MARKED = {"tests/test_a.py::test_mesh", "tests/test_c.py::test_mesh"}


def scheduled(names: list[str]) -> tuple[MultiDeviceScheduling, dict[str, FakeNode]]:
    config = types.SimpleNamespace(getvalue=lambda name: ["popen"] * len(names))
    scheduler = MultiDeviceScheduling(config)
    scheduler.marked = MARKED
    nodes = {name: FakeNode(name) for name in names}
    for node in nodes.values():
        scheduler.add_node(node)
        scheduler.add_node_collection(node, COLLECTION)
    scheduler.schedule()
    return scheduler, nodes


def sent(node: FakeNode) -> list[str]:
    return sorted(COLLECTION[i] for i in node.sent)


def test_gw0_is_given_the_marked_tests_and_the_others_the_rest():
    scheduler, nodes = scheduled(["gw1", "gw2", "gw0"])  # workers come up in any order
    assert sent(nodes["gw0"]) == sorted(MARKED)
    assert sent(nodes["gw1"]) + sent(nodes["gw2"]) == COLLECTION[2:4] + COLLECTION[:1]
    assert not scheduler.workqueue
    assert all(node.shutting_down for node in nodes.values())  # nothing more to give


def test_a_worker_with_nothing_it_may_run_shuts_down_and_gw0_is_never_dropped():
    scheduler, nodes = scheduled(["gw3", "gw2", "gw1", "gw0"])  # more workers than files
    assert nodes["gw0"].sent and sum(bool(node.sent) for node in nodes.values()) == 3
    assert all(node.shutting_down for node in nodes.values())


def test_when_gw0_dies_its_tests_go_to_another_worker_instead_of_waiting():
    scheduler, nodes = scheduled(["gw0", "gw1"])
    scheduler.remove_node(nodes["gw0"])
    replacement = FakeNode("gw2")
    scheduler.add_node(replacement)
    scheduler.add_node_collection(replacement, COLLECTION)
    scheduler.schedule()
    assert sent(replacement) == sorted(MARKED)


def test_marked_tests_are_listed_for_the_controller(tmp_path):
    items = [types.SimpleNamespace(nodeid=name, get_closest_marker=lambda _, m=name in MARKED: m)
             for name in COLLECTION]  # fmt: skip
    device_split.list_marked_items(items, str(tmp_path), "gw1")
    assert device_split.read_marked(str(tmp_path), "gw1") == MARKED
    assert device_split.read_marked(str(tmp_path), "gw7") == set()  # listed nothing


@pytest.mark.multi_device
def test_a_marked_test_runs_with_eight_devices():
    assert jax.device_count() == 8
