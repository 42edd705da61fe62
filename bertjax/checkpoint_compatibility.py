"""What a checkpoint must share with the run or command that reads it: the architecture and
objective fields saved in its metadata, compared before any array is read, each difference a
one-line UserError that names the field to set (resume: `check_compatible`, `--config.init_from`:
`check_init_architecture`), and the arrays its state holds (resume: `check_same_state_arrays`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orbax.checkpoint as ocp

from bertjax.errors import UserError

# Config fields that must match between a checkpoint and the run that restores it.
ARCHITECTURE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "embedding_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_placement",
    "position_embedding_type",
    "rope_theta",
)
# The pretraining objective's fields (bertjax/objectives.py), compared like the architecture's; a
# checkpoint that names no objective (older runs, `bertjax import`) holds BERT's parameters.
OBJECTIVE_FIELDS = ("objective", "generator_hidden_fraction")
COMPARED_FIELDS = ARCHITECTURE_FIELDS + OBJECTIVE_FIELDS


def saved_value(saved: dict, field: str):
    return saved.get(field, "bert" if field == "objective" else None)


def check_generator_layout(saved: dict, where: str) -> None:
    """UserError for an ELECTRA checkpoint whose generator is as wide as its shared embeddings,
    saved before `embedding_size` existed: its generator has an embeddings_project (H -> H)
    that bertjax now leaves out where the widths agree, as Hugging Face's ElectraModel does."""
    fraction, hidden = saved.get("generator_hidden_fraction"), saved.get("hidden_size")
    if (
        saved.get("objective") == "electra"
        and "embedding_size" not in saved
        and hidden is not None
        and round(hidden * fraction) == hidden
    ):
        raise UserError(
            f"{where} holds an ELECTRA checkpoint with a full-width generator "
            f"(generator_hidden_fraction={fraction}) saved with an H -> H generator projection "
            "that this bertjax no longer builds; use the bertjax release that wrote it"
        )


def check_compatible(saved_config: dict, config: Mapping[str, Any], where: str) -> None:
    """Raises a one-line UserError when the checkpoint's architecture differs from the config."""
    check_generator_layout(saved_config, where)
    for field in COMPARED_FIELDS:
        saved, wanted = saved_value(saved_config, field), config.get(field)
        if saved is not None and wanted is not None and saved != wanted:
            raise UserError(
                f"checkpoint in {where} has {field}={saved} but the config asks for {wanted}; "
                "use the original config or a new --workdir"
            )


def check_same_layout(saved: dict, wanted: dict, where: str) -> None:
    """Resuming needs the encoder layout the checkpoint was written with (init_from converts)."""
    saved_scan, wanted_scan = saved.get("scan_layers"), wanted.get("scan_layers")
    if saved_scan is not None and wanted_scan is not None and saved_scan != wanted_scan:
        raise UserError(
            f"checkpoint in {where} was written with scan_layers={saved_scan}; resume with "
            f"--config.scan_layers={saved_scan} (or start a new --workdir with "
            f"--config.init_from={where.removesuffix('/checkpoints')} to convert)"
        )


def check_init_architecture(
    init_from: str, saved: dict, model_fields: dict, grown_from: int | None
) -> None:
    """UserError naming the config field to set when `init_from`'s saved architecture differs
    from the run's (its vocabulary may be smaller by a growth from `grown_from`)."""
    for field in ARCHITECTURE_FIELDS:
        value, wanted = saved_value(saved, field), model_fields.get(field)
        if field == "vocab_size" and grown_from is not None and value == grown_from:
            continue
        if value is not None and wanted is not None and value != wanted:
            fix = (
                f"--config.vocab_dir={init_from} (its vocab.txt)"
                if field == "vocab_size"
                else f"--config.{field}={value}"
            )
            raise UserError(
                f"--config.init_from={init_from} has {field}={value} but the config asks "
                f"for {wanted}; set {fix}"
            )


# Config fields that decide which arrays the optimizer state holds (not its shapes: the model's
# architecture fields decide those). A resume that changes one cannot read the checkpoint.
OPTIMIZER_STATE_FIELDS = ("optimizer", "max_grad_norm")


def _state_array_names(state: Any) -> set[str]:
    """Orbax's names of the arrays a (saved or abstract) state holds ("opt_state/1/0/mu/...")."""
    return set(ocp.tree.to_flat_dict(state, sep="/"))


def check_same_state_arrays(
    saved_tree: Any, abstract_state: Any, saved_config: dict, where: str, step: int
) -> None:
    """A one-line UserError, before any array is read, when the checkpoint at `step` holds other
    arrays (`saved_tree`, Orbax's metadata) than this run's state: its optimizer settings
    changed (adamw <-> lamb, gradient clipping on <-> off). Such a checkpoint is intact; it was
    set aside as unreadable, every step in turn, and the run started over."""
    wanted, saved = _state_array_names(abstract_state), _state_array_names(saved_tree)
    missing, extra = sorted(wanted - saved), sorted(saved - wanted)
    if not missing and not extra:
        return
    settings = " ".join(
        f"--config.{field}={saved_config[field]}"
        for field in OPTIMIZER_STATE_FIELDS
        if field in saved_config
    )
    raise UserError(
        f"checkpoint at step {step} in {where} holds other arrays than this run's training "
        f"state ({len(extra)} saved ones it lacks, {len(missing)} of its own missing, e.g. "
        f"{(extra or missing)[0]}): resume with the optimizer settings it was saved with "
        f"({settings or 'its config'}), or start a new --workdir with "
        f"--config.init_from={where.removesuffix('/checkpoints')}"
    )
