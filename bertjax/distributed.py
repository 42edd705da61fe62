"""Multi-process (multi-host) start-up: `jax.distributed.initialize` before any JAX computation.

On Cloud TPU VM pods and under SLURM, JAX finds the coordinator, process count and process id
itself; elsewhere (or to override) they are given explicitly. On CPU the processes exchange
collectives through gloo.
"""

import os

import jax
from absl import logging

from bertjax.errors import UserError

# Local devices the launcher gave this process (launch/gpu_slurm.sh); checked when set.
EXPECTED_LOCAL_DEVICES = "BERTJAX_LOCAL_DEVICES"


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to the run; all arguments None = auto-detect (TPU pod, SLURM, ...)."""
    explicit = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise UserError(
            "give all of --coordinator_address, --num_processes and --process_id, or none of "
            "them (auto-detection on TPU pods and SLURM)"
        )
    # CPU processes need a collectives backend; accelerators bring their own (this is ignored).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    except (ValueError, RuntimeError) as e:
        raise UserError(
            f"jax.distributed.initialize failed ({' '.join(str(e).split())[:200]}); on a "
            "machine that is not a TPU pod or SLURM job pass --coordinator_address, "
            "--num_processes and --process_id"
        ) from e
    logging.info(
        "Process %d of %d, %d local / %d global devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )  # fmt: skip
    check_local_devices(jax.local_device_count(), os.environ.get(EXPECTED_LOCAL_DEVICES))


def check_local_devices(found: int, expected: str | None) -> None:
    """Refuses a process that sees another number of devices than its launcher gave it
    (`BERTJAX_LOCAL_DEVICES`, set by launch/gpu_slurm.sh): under SLURM, JAX's own detection
    would otherwise give each process the one GPU of its local rank, and a process per node
    would train on one GPU of eight without a word."""
    if expected and not expected.isdigit():
        raise UserError(f"{EXPECTED_LOCAL_DEVICES}={expected!r} must be a device count")
    if expected and found != int(expected):
        raise UserError(
            f"process {jax.process_index()} sees {found} local device(s) but its launcher gave it "
            f"{expected} ({EXPECTED_LOCAL_DEVICES}); set JAX_LOCAL_DEVICE_IDS to this process's "
            "GPUs (launch/gpu_slurm.sh does) and check SLURM's --gpus-per-node"
        )
