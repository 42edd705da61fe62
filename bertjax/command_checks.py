"""The usage checks of the `bertjax` commands (bertjax/commands.py), run after parsing and before
TensorFlow loads and JAX starts: a bad flag combination or config is one line within seconds.
`(flags, positional arguments)` checks see the command line; `(flags)` ones read --config's file
(the library's own checks of it, 4-8 s instead of ~16)."""

from __future__ import annotations

from absl import flags

from bertjax.command_flags import DATA_READING_FLAGS
from bertjax.errors import UserError

FILL_MASK_NEEDS = 'fill-mask needs --workdir=DIR and one or more "texts with [MASK]"'


def train_flags(fv: flags.FlagValues, arguments: list[str]) -> None:
    explicit = (fv.coordinator_address, fv.num_processes, fv.process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise UserError(
            "give all of --coordinator_address, --num_processes and --process_id, or none of "
            "them (auto-detection on TPU pods and SLURM: --distributed)"
        )
    address = fv.coordinator_address
    host, colon, port = (address or "").rpartition(":")
    if address is not None and not (host and colon and port.isdigit()):
        raise UserError(
            f"--coordinator_address={address} must be HOST:PORT, process 0's address and a "
            "free port, e.g. 10.0.0.2:8476"
        )


def train_config(fv: flags.FlagValues) -> None:
    from bertjax import config
    from bertjax.data import corpus

    corpus.check_local_patterns(config.from_config(fv.config).data)


def evaluate_flags(fv: flags.FlagValues, arguments: list[str]) -> None:
    if fv.all_steps and fv.step is not None:
        raise UserError("pass --step=N or --all_steps, not both")
    given = [f"--{name}" for _, name, *_ in DATA_READING_FLAGS if fv[name].present]
    if given and not fv.data:
        raise UserError(f"{given[0]} says how to read --data=FILES; pass them, or leave it out")


def finetune_config(fv: flags.FlagValues) -> None:
    from bertjax.finetune import recipe

    recipe.check_values(fv.config)


def fill_mask_arguments(fv: flags.FlagValues, arguments: list[str]) -> None:
    if not arguments:
        raise UserError(FILL_MASK_NEEDS)
