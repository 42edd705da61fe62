import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from bertjax import sharding
from bertjax.errors import UserError

pytestmark = pytest.mark.multi_device  # meshes of 8 devices


@pytest.mark.parametrize(
    "shape, devices, expected",
    [
        ({"data": -1, "fsdp": 1, "tensor": 1}, 8, (8, 1, 1)),
        ({"data": 2, "fsdp": -1, "tensor": 2}, 8, (2, 2, 2)),
        ({"data": 1, "fsdp": 8, "tensor": 1}, 8, (1, 8, 1)),
        ({"data": -1}, 1, (1, 1, 1)),
    ],
)
def test_mesh_axis_sizes(shape, devices, expected):
    assert sharding.mesh_axis_sizes(shape, devices) == expected


@pytest.mark.parametrize(
    "shape, match",
    [
        ({"data": -1, "fsdp": -1}, "more than one -1"),
        ({"data": 3}, "covers 3 devices but 8"),
        ({"data": -1, "fsdp": 3}, "not divisible by 3"),
        ({"data": 0}, "size < 1"),
        ({"pipeline": 2}, "unknown axes"),
    ],
)
def test_mesh_axis_sizes_errors(shape, match):
    with pytest.raises(UserError, match=match):
        sharding.mesh_axis_sizes(shape, 8)


@pytest.mark.parametrize(
    "shape, dcn, expected",
    [
        ({"data": 2, "fsdp": 2, "tensor": 2}, {}, 4),
        ({"data": 1, "fsdp": -1, "tensor": 2}, {}, 4),
        ({"data": -1, "fsdp": 1, "tensor": 8}, {}, 1),
        ({"data": 1, "fsdp": 2, "tensor": 2}, {"data": 2}, 4),
    ],
)
def test_a_batch_is_split_over_data_and_fsdp_and_not_tensor(shape, dcn, expected):
    """FSDP shards the batch as data parallelism does; tensor parallelism does not."""
    spec = sharding.MeshSpec(mesh_shape=shape, dcn_mesh_shape={"data": 1, **dcn})
    assert spec.batch_shards(8) == expected


def test_logical_rules_map_names_to_mesh_axes():
    mesh = sharding.create_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    rules = [("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", "tensor"), ("kv", None)]
    specs = {"dense": PartitionSpec("embed", "mlp"), "bias": PartitionSpec("kv")}
    shardings = sharding.logical_to_mesh_shardings(specs, mesh, rules)
    assert shardings["dense"].spec == PartitionSpec("fsdp", "tensor")
    assert shardings["bias"].spec == PartitionSpec(None)


def test_global_batch_from_local_is_sharded_over_batch_axis():
    mesh = sharding.create_mesh({"data": 4, "fsdp": 2, "tensor": 1})
    local = {"input_ids": np.arange(16 * 3, dtype=np.int32).reshape(16, 3)}
    batch = sharding.global_batch_from_local(local, mesh)
    array = batch["input_ids"]
    assert array.shape == (16, 3)
    assert len(array.sharding.device_set) == 8
    assert array.addressable_shards[0].data.shape == (2, 3)  # 16 rows over 8 batch shards
    np.testing.assert_array_equal(np.asarray(array), local["input_ids"])


def test_create_mesh_on_device_subset():
    mesh = sharding.create_mesh({"data": -1}, devices=jax.devices()[:1])
    assert mesh.devices.shape == (1, 1, 1)


def test_total_axis_sizes_multiply_ici_by_dcn():
    assert sharding.total_axis_sizes({"data": -1, "fsdp": 2}, {"data": 4}, 16) == (8, 2, 1)
    with pytest.raises(UserError, match="asks for 3 slices"):
        sharding.total_axis_sizes({"data": -1}, {"data": 3}, 8)
    with pytest.raises(UserError, match="unknown axes"):
        sharding.total_axis_sizes({"data": -1}, {"pod": 2}, 8)
