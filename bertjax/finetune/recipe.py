"""The fine-tuning recipe as a fine-tune reads it: its fields (with the values of runs recorded
before a field existed), their checks (one-line errors before any data is read), and the
recipe a workdir records so that finished seeds are only reused by the same fine-tune.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax
import ml_collections

from bertjax import paths, sharding
from bertjax.command_flags import FINETUNE_CONFIG
from bertjax.config import field_changes, load_config
from bertjax.errors import UserError
from bertjax.models.config import TRAINING_DTYPES
from bertjax.specs import require_known_fields

# Recipe fields added after runs were recorded and config files written, with the value those
# runs used (and a config file without the field gets).
FIELDS_ADDED_LATER = {"pooling": "cls", "layerwise_lr_decay": 1.0, "save_model": True,
                      "select_epoch": "last", "dev_fraction": 0.0, "dev_file": "",
                      "multilabel_threshold": 0.5, "column_names": "",
                      "null_score_diff_threshold": 0.0, "text_encoding": "",
                      "choices_field": "", "spans_field": "", "grad_accum_steps": 1,
                      "sequence_head": "pooler", "checkpoint_every": 1000}  # fmt: skip
SELECT_EPOCH = ("last", "best")
POOLINGS = ("cls", "mean")  # bertjax/finetune/model.py's pooled heads
SEQUENCE_HEADS = ("pooler", "gelu")
# Fields that do not change what a seed computes: a finished seed is reused whatever they are.
NOT_RECIPE = ("seeds", "save_model", "log_every", "checkpoint_every")


def field(config: ml_collections.ConfigDict, name: str):
    """A recipe field added later: the config's value, or the one runs before it used."""
    return config.get(name, FIELDS_ADDED_LATER[name])


def claim_workdir(workdir: Path, task_name, init, init_step, random_init, config) -> None:
    """Records what this workdir fine-tunes; finished seeds are only reused for the same
    task, init (and its checkpoint step: a pretraining that has saved a later checkpoint since
    is another init) and recipe (config.seeds may differ: more seeds extend a run). Before any
    seed has started (an attempt that stopped on bad task data) another fine-tune may take it."""
    recipe = FIELDS_ADDED_LATER | json.loads(config.to_json_best_effort())
    for name in NOT_RECIPE:
        recipe.pop(name, None)
    settings = {"task": task_name, "init": str(paths.as_path(init)), "init_step": init_step,
                "random_init": random_init, "config": recipe}  # fmt: skip
    path = workdir / "finetune_settings.json"
    if path.exists() and any(workdir.glob("seed_*")):
        saved = _read_settings(path)
        saved["config"] = FIELDS_ADDED_LATER | saved["config"]  # a run from before a field
        for name in NOT_RECIPE:
            saved["config"].pop(name, None)
        saved["init"] = str(paths.as_path(saved["init"]))  # older runs kept ".." in the path
        saved.setdefault("init_step", init_step)  # not recorded before 2026-12-04: unknown
        different = sorted(k for k in settings if saved.get(k) != settings[k])
        if different:
            raise UserError(
                f"{workdir} holds a fine-tune with other {', '.join(different)}"
                f"{_config_changes(saved['config'], settings['config'])}; pass a new "
                "--workdir (its finished seeds would not be comparable)"
            )
    paths.write_text_atomically(path, json.dumps(settings, indent=2) + "\n")


def _read_settings(path) -> dict:
    """A fine-tune's saved settings; UserError when unreadable (what its seeds were trained
    with cannot be checked)."""
    try:
        saved = json.loads(path.read_text())
    except ValueError as e:
        saved = f"{e}"
    if isinstance(saved, dict) and isinstance(saved.get("config"), dict) and "init" in saved:
        return saved
    raise UserError(
        f"{path} is damaged ({saved if isinstance(saved, str) else 'not a settings object'}), "
        "so what its finished seeds were trained with is unknown; remove it to go on with this "
        "run's settings (the seeds are kept), or pass a new --workdir"
    )


def _config_changes(saved: dict, wanted: dict) -> str:
    """' (learning_rate 5e-05 -> 0.001, ...)': the recipe fields a resumed fine-tune changes."""
    changed = field_changes(saved, wanted)
    return f" ({', '.join(changed)})" if changed else ""


def parse_seeds(seeds: str) -> list[int]:
    try:
        values = [int(s) for s in str(seeds).split(",") if s.strip()]
    except ValueError:
        raise UserError(f"seeds={seeds!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not values:
        raise UserError("seeds is empty; set --config.seeds=0,1,2")
    return values


# Fields a fine-tuning config may add to the default file's: the mesh (`sharding.MeshSpec`) and
# the log interval of a log file.
OPTIONAL_FIELDS = ("mesh_shape", "dcn_mesh_shape", "logical_axis_rules", "log_every")


def check_known_fields(config: ml_collections.ConfigDict, default_fields) -> None:
    """UserError for a field of `config` that neither the default config (`default_fields`, the
    keys of configs/finetune.py's) nor FIELDS_ADDED_LATER or OPTIONAL_FIELDS has."""
    known = set(default_fields) | set(FIELDS_ADDED_LATER) | set(OPTIONAL_FIELDS)
    require_known_fields(config, known, "fine-tuning config")


def check_fields(config: ml_collections.ConfigDict) -> None:
    """`check_known_fields` against configs/finetune.py's fields, where that file is (a source
    checkout, as --config's default): a misspelt field was ignored by `trainer.finetune` called
    from Python (the recipe's default used, the typo recorded), refused only by the CLI."""
    if os.path.isfile(FINETUNE_CONFIG):
        check_known_fields(config, load_config(FINETUNE_CONFIG).keys())
    for name, value in config.items():  # learning_rate=inf fine-tuned to NaN and saved it
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{name}={value} must be a finite number; set --config.{name}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises a one-line UserError for a field the recipe does not know (`check_fields`), for
    the first recipe field out of its range (`check_values`), or for batches the devices do not
    split."""
    check_values(config)
    _check_batches(config)


def check_values(config: ml_collections.ConfigDict) -> None:
    """`validate`'s checks that need no device: the command line runs them before TensorFlow
    loads and JAX starts, so a misspelt or out-of-range field is refused in seconds."""
    check_fields(config)
    decay = field(config, "layerwise_lr_decay")
    select, fraction = field(config, "select_epoch"), field(config, "dev_fraction")
    dev_file, threshold = field(config, "dev_file"), field(config, "multilabel_threshold")
    choices = {"select_epoch": SELECT_EPOCH, "pooling": POOLINGS,
               "sequence_head": SEQUENCE_HEADS}  # fmt: skip
    checks = (
        *(
            (
                field(config, name) in allowed,
                f"{name}={field(config, name)!r} must be one of {', '.join(allowed)}",
            )
            for name, allowed in choices.items()
        ),
        (0 <= fraction < 1, f"dev_fraction={fraction} must be in [0, 1), e.g. 0.1"),
        (
            not (fraction and dev_file),
            "dev_fraction and dev_file both set; the dev split is one of them",
        ),
        (
            select == "last" or fraction or dev_file,
            "select_epoch=best chooses on a dev split: set --config.dev_fraction=0.1 (a part of "
            "the training data) or --config.dev_file=F (choosing on the eval split would "
            "overstate its score)",
        ),
        (
            config.dtype in TRAINING_DTYPES,
            f"dtype={config.dtype!r} must be one of {', '.join(TRAINING_DTYPES)} (float16 "
            "would need loss scaling)",
        ),
        (config.learning_rate > 0, f"learning_rate={config.learning_rate} must be positive"),
        (
            0 < decay <= 1,
            f"layerwise_lr_decay={decay} must be in (0, 1]: 1 is off, ELECTRA fine-tunes with 0.8",
        ),
        (config.num_epochs > 0, f"num_epochs={config.num_epochs} must be positive"),
        (config.batch_size > 0, f"batch_size={config.batch_size} must be positive"),
        (0 <= config.warmup_fraction < 1, "warmup_fraction must be in [0, 1), e.g. 0.1"),
        (
            0 < threshold < 1,
            f"multilabel_threshold={threshold} must be in (0, 1): a label is predicted where "
            "its probability is over it (0.5 by default)",
        ),
        (config.max_seq_length >= 8, f"max_seq_length={config.max_seq_length} must be >= 8"),
        (
            isinstance(every := field(config, "checkpoint_every"), int) and every >= 0,
            f"checkpoint_every={every!r} must be a whole number of steps >= 0 (0: save only when "
            "stopped)",
        ),
        *(
            (0 <= config[name] < 1, f"{name}={config[name]} must be in [0, 1), e.g. 0.1")
            for name in ("hidden_dropout_prob", "attention_probs_dropout_prob")
        ),
    )
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def _batch_shards(config: ml_collections.ConfigDict) -> int:
    """data x fsdp of the config's mesh over every device; of a mesh of fewer devices (the
    Python API's `devices`; over every device compile_task says it does not fit), as given."""
    mesh = sharding.MeshSpec.from_config(config)
    try:
        return mesh.batch_shards(jax.device_count())
    except UserError:
        return max(1, int(mesh.mesh_shape.get("data", 1))) * max(
            1, int(mesh.mesh_shape.get("fsdp", 1))
        )


def _check_batches(config: ml_collections.ConfigDict) -> None:
    """UserError where the batches (and microbatches) do not split over the mesh's batch shards
    (data x fsdp of the config's mesh over every device: the rule `steps.compile_task` builds
    with; with tensor parallelism, fewer than the devices)."""
    shards = _batch_shards(config)
    what = f"the {shards} data-parallel shards (data x fsdp)"
    for name in ("batch_size", "eval_batch_size"):
        if config[name] <= 0 or config[name] % shards:
            raise UserError(
                f"{name}={config[name]} must be a positive multiple of {what}; "
                f"change --config.{name}"
            )
    steps = field(config, "grad_accum_steps")
    if not isinstance(steps, int) or steps < 1 or config.batch_size % (steps * shards):
        raise UserError(
            f"grad_accum_steps={steps} must be >= 1 and split batch_size={config.batch_size} into "
            f"microbatches of a multiple of {what}; change --config.grad_accum_steps"
        )
