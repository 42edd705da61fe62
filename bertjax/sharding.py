"""Device mesh from config, logical-axis rules, and global batch arrays built from per-process data.

Parameters and activations name their axes ('batch', 'embed', 'mlp', 'heads', 'vocab', ...);
`MeshSpec.logical_axis_rules` (the config field `logical_axis_rules`, a list a config file sets: the
command line cannot override a list) alone decides which mesh axis ('data', 'fsdp', 'tensor') each
name is split over, so moving between data parallel, FSDP and tensor parallel is a config edit.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from bertjax.errors import UserError
from bertjax.specs import ConfigSpec, require

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_SPEC = PartitionSpec(("data", "fsdp"))
# Logical axis name -> mesh axes. Parameters and activations name their axes; only this table
# decides how they are split.
DEFAULT_LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("norm", None),
    ("type_vocab", None),
    ("position", None),
    ("classes", None),
    ("layers", None),  # the stacked-layer axis of scan_layers
)


@dataclasses.dataclass(frozen=True)
class MeshSpec(ConfigSpec):
    """How the devices are laid out and how logical axes map onto them (config fields)."""

    # Mesh axis sizes; -1 takes the devices the other axes leave. Product must equal device count.
    mesh_shape: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"data": -1, "fsdp": 1, "tensor": 1}
    )
    # Multi-slice TPU (or multi-process CPU): slices along each axis, joined by the data-center
    # network; mesh_shape is then the shape inside one slice. Usually only "data" is > 1.
    dcn_mesh_shape: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"data": 1, "fsdp": 1, "tensor": 1}
    )
    logical_axis_rules: Sequence = DEFAULT_LOGICAL_AXIS_RULES

    def __post_init__(self):
        object.__setattr__(self, "mesh_shape", dict(self.mesh_shape))
        object.__setattr__(self, "dcn_mesh_shape", dict(self.dcn_mesh_shape or {}))
        rules = tuple(
            (name, tuple(axes) if isinstance(axes, list | tuple) else axes)
            for name, axes in self.logical_axis_rules
        )
        object.__setattr__(self, "logical_axis_rules", rules)
        _check_mesh_shape(self.mesh_shape)
        dcn_axis_sizes(self.dcn_mesh_shape)
        for name, axes in rules:
            named = axes if isinstance(axes, tuple) else (axes,)
            require(
                all(axis is None or axis in MESH_AXES for axis in named),
                f"logical_axis_rules maps {name!r} to {axes!r}; use mesh axes of {MESH_AXES} "
                "or None",
            )

    def axis_sizes(self, num_devices: int) -> dict[str, int]:
        """Whole-mesh size of each axis over `num_devices`; UserError when they do not fit."""
        sizes = total_axis_sizes(self.mesh_shape, self.dcn_mesh_shape, num_devices)
        return dict(zip(MESH_AXES, sizes, strict=True))

    def batch_shards(self, num_devices: int) -> int:
        """How many ways a global batch is split over `num_devices`: data x fsdp."""
        sizes = self.axis_sizes(num_devices)
        return sizes["data"] * sizes["fsdp"]

    def create_mesh(self, devices: Sequence[jax.Device] | None = None) -> Mesh:
        return create_mesh(self.mesh_shape, devices, self.dcn_mesh_shape)


def _check_mesh_shape(mesh_shape: Mapping[str, int]) -> None:
    """The checks of a mesh shape that need no device count."""
    unknown = set(mesh_shape) - set(MESH_AXES)
    if unknown:
        raise UserError(f"mesh_shape has unknown axes {sorted(unknown)}; use only {MESH_AXES}")
    sizes = [int(mesh_shape.get(axis, 1)) for axis in MESH_AXES]
    if sizes.count(-1) > 1:
        raise UserError(f"mesh_shape {dict(mesh_shape)} has more than one -1; set all but one axis")
    if any(size == 0 or size < -1 for size in sizes):
        raise UserError(f"mesh_shape {dict(mesh_shape)} has a size < 1; use positive sizes or -1")


def mesh_axis_sizes(mesh_shape: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Resolves the config's {'data': -1, 'fsdp': 1, 'tensor': 1} into sizes whose product is
    `num_devices`; at most one axis may be -1 (it takes the devices the others leave)."""
    _check_mesh_shape(mesh_shape)
    sizes = [int(mesh_shape.get(axis, 1)) for axis in MESH_AXES]
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if num_devices % known:
            raise UserError(
                f"mesh_shape {dict(mesh_shape)}: {num_devices} devices are not divisible by "
                f"{known}; change the fixed axis sizes"
            )
        sizes[sizes.index(-1)] = num_devices // known
    elif known != num_devices:
        raise UserError(
            f"mesh_shape {dict(mesh_shape)} covers {known} devices but {num_devices} are "
            f"available; make the product equal {num_devices} or set one axis to -1"
        )
    return tuple(sizes)


def dcn_axis_sizes(dcn_mesh_shape: Mapping[str, int] | None) -> tuple[int, ...]:
    """Slices (granules joined by the data-center network) along each mesh axis; default 1s."""
    dcn_mesh_shape = dict(dcn_mesh_shape or {})
    unknown = set(dcn_mesh_shape) - set(MESH_AXES)
    if unknown:
        raise UserError(f"dcn_mesh_shape has unknown axes {sorted(unknown)}; use only {MESH_AXES}")
    sizes = tuple(int(dcn_mesh_shape.get(axis, 1)) for axis in MESH_AXES)
    if any(size < 1 for size in sizes):
        raise UserError(f"dcn_mesh_shape {dcn_mesh_shape} has a size < 1; use positive sizes")
    return sizes


def total_axis_sizes(
    mesh_shape: Mapping[str, int], dcn_mesh_shape: Mapping[str, int] | None, num_devices: int
) -> tuple[int, ...]:
    """Whole-mesh size of each axis: ICI size (within a slice) x DCN size (across slices)."""
    dcn = dcn_axis_sizes(dcn_mesh_shape)
    slices = int(np.prod(dcn))
    if num_devices % slices:
        raise UserError(
            f"dcn_mesh_shape {dict(dcn_mesh_shape or {})} asks for {slices} slices but "
            f"{num_devices} devices do not split evenly into them"
        )
    ici = mesh_axis_sizes(mesh_shape, num_devices // slices)
    return tuple(i * d for i, d in zip(ici, dcn, strict=True))


def create_mesh(
    mesh_shape: Mapping[str, int],
    devices: Sequence[jax.Device] | None = None,
    dcn_mesh_shape: Mapping[str, int] | None = None,
) -> Mesh:
    """A ('data', 'fsdp', 'tensor') mesh over `devices` (default: all devices of all processes).

    `mesh_shape` is the shape inside one slice (ICI) and `dcn_mesh_shape` how many slices lie
    along each axis (multi-slice TPU, or multi-process CPU where each process is a granule), so
    the slow network only carries the axes named there (usually 'data').
    """
    devices = list(jax.devices() if devices is None else devices)
    dcn = dcn_axis_sizes(dcn_mesh_shape)
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if int(np.prod(dcn)) == 1:
        sizes = mesh_axis_sizes(mesh_shape, len(devices))
        # Auto axes: XLA's sharding propagation places intermediates; parameters and batches
        # are placed explicitly through jit in/out shardings.
        return jax.make_mesh(sizes, MESH_AXES, axis_types=axis_types, devices=devices)
    ici = mesh_axis_sizes(mesh_shape, len(devices) // int(np.prod(dcn)))
    process_is_granule = check_dcn_slices(dcn_mesh_shape, devices)
    grid = mesh_utils.create_hybrid_device_mesh(
        ici, dcn, devices, process_is_granule=process_is_granule
    )
    return Mesh(grid, MESH_AXES, axis_types=axis_types)


def check_dcn_slices(
    dcn_mesh_shape: Mapping[str, int] | None, devices: Sequence[jax.Device]
) -> bool:
    """UserError unless the product of `dcn_mesh_shape` is the number of slices `devices` form:
    TPU slices (their slice_index), else processes (one slice, or CPU and GPU, where each
    process is one). Returns whether processes are the slices."""
    wanted = int(np.prod(dcn_axis_sizes(dcn_mesh_shape)))
    if wanted == 1:
        return False
    slices = len({getattr(device, "slice_index", 0) for device in devices})
    process_is_granule = slices < wanted
    found = len({device.process_index for device in devices}) if process_is_granule else slices
    if found != wanted:
        unit = "processes" if process_is_granule else "TPU slices"
        raise UserError(
            f"dcn_mesh_shape {dict(dcn_mesh_shape or {})} asks for {wanted} slices, but the run "
            f"has {found} ({unit}; on GPUs and CPUs each process is a slice: with one process "
            f"per GPU, one per GPU); make its product {found}, e.g. "
            f"--config.dcn_mesh_shape.data={found}"
        )
    return process_is_granule


def logical_to_mesh_shardings(logical_specs: Any, mesh: Mesh, rules: Sequence) -> Any:
    """Maps a tree of logical PartitionSpecs (e.g. P('embed', 'mlp')) to NamedShardings."""
    return nn.logical_to_mesh_sharding(logical_specs, mesh, [tuple(rule) for rule in rules])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batch dimension split over data and fsdp axes; everything else replicated."""
    return NamedSharding(mesh, BATCH_SPEC)


def global_batch_from_local(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict:
    """Assembles this process's rows into global jax.Arrays sharded along the batch axis.

    Each process passes only the rows it read; the global batch size is the sum over processes.
    """
    sharding = batch_sharding(mesh)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in local_batch.items()
    }


def describe_shardings(params: Any) -> list[str]:
    """One line per parameter: path, shape, and how it is split over the mesh."""
    lines = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        spec = leaf.sharding.spec if isinstance(leaf.sharding, NamedSharding) else leaf.sharding
        lines.append(f"{name} {tuple(leaf.shape)} {spec}")
    return lines
