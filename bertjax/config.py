"""A run's config, read once: `from_config(config) -> RunSpec`, every default, the model sizes.

A run is configured by a flat `ml_collections.ConfigDict` (config files in configs/ build one on
`defaults()` and override a few fields; `--config.NAME=VALUE` overrides any). The code below
`train.py` never sees it: `from_config` reads it into typed frozen specs, each with its fields'
defaults and one-line comments, and each checking its own fields:

  model      `models.config.BertConfig`       architecture and compute settings
  data       `data.spec.DataSpec`             corpus, vocabulary, instances, held-out documents
  masking    `data.masking_spec.MaskingSpec`  masked-LM unit and budget
  optimizer  `optim.OptimizerSpec`            update rule and schedule
  mesh       `sharding.MeshSpec`              device mesh and logical axis rules
  loop       `LoopSpec` (here)                batch, steps, logging, checkpoints, evaluation
  objective  `objectives.ObjectiveSpec`       BERT's masked LM or ELECTRA's replaced tokens

This module is the one place where a config is validated: the specs' own checks run as they are
built, then `from_config` checks what spans several of them, and `check_runnable` what depends on
this machine and its files (devices, processes, vocabulary, workdir). All of it runs before any
corpus is read or anything is compiled, and every problem is a one-line UserError naming the
field and the fix.

Reading a config needs no TensorFlow and the specs need no ml_collections (only `defaults` and
config files build ConfigDicts), so a machine without them can build a RunSpec directly.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import jax
from etils import epath

from bertjax import paths, process_agreement
from bertjax.data import vocab_files
from bertjax.data.masking_spec import MaskingSpec
from bertjax.data.spec import DataSpec
from bertjax.errors import UserError
from bertjax.models.config import TRAINING_DTYPES, BertConfig
from bertjax.models.sizes import ELECTRA_SIZES, MODEL_SIZES  # re-exported; no imports there
from bertjax.objectives import ObjectiveSpec
from bertjax.optim import OptimizerSpec
from bertjax.sharding import MeshSpec, check_dcn_slices
from bertjax.specs import ConfigSpec, require, require_known_fields

if TYPE_CHECKING:
    import ml_collections

NONFINITE_POLICIES = ("skip", "stop")


@dataclasses.dataclass(frozen=True)
class LoopSpec(ConfigSpec):
    """The training loop: batch, steps, logging, checkpoints, periodic evaluation."""

    batch_size: int = 256  # global batch per optimizer step, over all processes and devices
    grad_accum_steps: int = 1  # microbatches per step (gradients summed): batch_size/this each
    num_train_steps: int = 900_000
    seed: int = 0  # seeds data order, masks, pairing, parameter init and dropout
    # directory from `bertjax import` or a training workdir: start from its parameters
    init_from: str = ""
    log_every: int = 100  # steps between metric lines (JSONL + TensorBoard)
    checkpoint_every: int = 10_000  # steps between checkpoints (one is always saved at the end)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    keep_checkpoint_period: int = 0  # also keep every step divisible by this forever; 0 = off
    # NaN/Inf loss or gradients: the update is always skipped and counted; "stop" also ends the
    # run (with a checkpoint of the last good state) after max_consecutive_nonfinite in a row.
    nonfinite_policy: str = "skip"  # "skip" or "stop"
    max_consecutive_nonfinite: int = 10
    progress_bar: bool = True
    eval_every: int = 0  # steps between held-out evaluations during training; 0 = never
    eval_examples: int = 2048  # held-out instances evaluated (rounded down to whole batches)
    eval_batch_size: int = 64  # fewer held-out instances than this: one batch of what there is
    eval_seed: int = 12345  # fixes the evaluation masks and sentence pairs

    def __post_init__(self):
        require(self.batch_size > 0, f"batch_size={self.batch_size} must be positive")
        require(
            self.grad_accum_steps >= 1 and self.batch_size % self.grad_accum_steps == 0,
            f"grad_accum_steps={self.grad_accum_steps} must be >= 1 and divide "
            f"batch_size={self.batch_size}",
        )
        require(self.log_every > 0, f"log_every={self.log_every} must be positive")
        require(
            self.num_train_steps > 0, f"num_train_steps={self.num_train_steps} must be positive"
        )
        require(
            self.checkpoint_every > 0 and self.keep_checkpoints > 0,
            "checkpoint_every and keep_checkpoints must be positive, keep_checkpoint_period >= 0",
        )
        require(
            self.keep_checkpoint_period >= 0,
            f"keep_checkpoint_period={self.keep_checkpoint_period} must be >= 0 (0 = off)",
        )
        require(
            self.nonfinite_policy in NONFINITE_POLICIES,
            f"nonfinite_policy={self.nonfinite_policy!r} is unknown; use 'skip' or 'stop'",
        )
        require(
            self.max_consecutive_nonfinite >= 1,
            f"max_consecutive_nonfinite={self.max_consecutive_nonfinite} must be >= 1",
        )
        every = self.eval_every
        require(every >= 0, f"eval_every={every} must be >= 0 (0 = no evaluation during training)")
        batch = self.eval_batch_size
        require(batch > 0, f"eval_batch_size={batch} must be positive")
        require(
            self.eval_examples >= batch,
            f"eval_examples={self.eval_examples} must be >= eval_batch_size={batch}",
        )

    @property
    def microbatch_size(self) -> int:
        return self.batch_size // self.grad_accum_steps


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a pretraining run reads from its config. `model.vocab_size` is the config's
    (requested) vocab_size; the trainer replaces it with its tokenizer's."""

    model: BertConfig
    data: DataSpec
    masking: MaskingSpec
    optimizer: OptimizerSpec
    mesh: MeshSpec
    loop: LoopSpec
    objective: ObjectiveSpec = ObjectiveSpec()


SPECS = (DataSpec, MaskingSpec, BertConfig, OptimizerSpec, MeshSpec, LoopSpec, ObjectiveSpec)

# Fields that change how a run is carried out, not what it trains: logging, checkpoints,
# held-out evaluation, sharding, kernels, memory levers, where the vocabulary is found (its
# identity is checked on resume), and `init_from`, which only a fresh run reads.
HOW_NOT_WHAT = frozenset({
    "log_every", "progress_bar", "checkpoint_every", "keep_checkpoints", "keep_checkpoint_period",
    "nonfinite_policy", "max_consecutive_nonfinite", "eval_every", "eval_examples",
    "eval_batch_size", "eval_seed", "eval_corpus", "mesh_shape", "dcn_mesh_shape",
    "logical_axis_rules", "attention_implementation", "use_cpu_kernels", "remat_policy",
    "grad_accum_steps", "cache_dir", "vocab_dir", "vocab_size", "init_from", "model_size",
})  # fmt: skip


def field_changes(saved: dict, wanted: dict) -> list[str]:
    """'NAME SAVED -> WANTED' for every field whose value differs (a missing one is None)."""
    names = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    return [f"{k} {saved.get(k)!r} -> {wanted.get(k)!r}" for k in names]


def training_changes(saved: dict, wanted: dict) -> list[str]:
    """`field_changes` of a resumed run's config (`wanted`) against its checkpoint's (`saved`,
    both as JSON values) in what the run trains: not HOW_NOT_WHAT, and not fields that one of
    them lacks (a checkpoint written before the field existed)."""
    names = (saved.keys() & wanted.keys()) - HOW_NOT_WHAT
    return field_changes({k: saved[k] for k in names}, {k: wanted[k] for k in names})


def from_config(config: ml_collections.ConfigDict) -> RunSpec:
    """The run's specs: each checks its fields, then the checks across specs (one-line
    UserErrors). Reads no file and needs no device."""
    require_known_fields(config, known_fields(), "config")
    data = DataSpec.from_config(config)
    masking = MaskingSpec.from_config(config)
    model = BertConfig.from_config(config, data.vocab_size)
    spec = RunSpec(
        model=model,
        data=data,
        masking=masking,
        optimizer=OptimizerSpec.from_config(config),
        mesh=MeshSpec.from_config(config),
        loop=LoopSpec.from_config(config),
        objective=ObjectiveSpec.from_config(config),
    )
    require(
        model.dtype in TRAINING_DTYPES,
        f"dtype={model.dtype!r} is not supported; use 'float32' or 'bfloat16'",
    )
    length = data.max_seq_length
    require(
        length <= model.max_position_embeddings,
        f"max_seq_length={length} must be <= max_position_embeddings="
        f"{model.max_position_embeddings}",
    )
    require(
        masking.max_predictions_per_seq <= length,
        f"max_predictions_per_seq={masking.max_predictions_per_seq} must be in "
        f"[1, max_seq_length={length}]",
    )
    wanted = masking.wanted_predictions(length)
    require(
        masking.max_predictions_per_seq >= wanted,
        f"max_predictions_per_seq={masking.max_predictions_per_seq} caps masked_lm_prob="
        f"{masking.masked_lm_prob} below the {wanted} predictions it asks for in a "
        f"{length}-token row; set --config.max_predictions_per_seq={wanted} or more",
    )
    loop = spec.loop
    require(
        not loop.eval_every or data.has_eval_data,
        f"eval_every={loop.eval_every} needs held-out data: set "
        "--config.eval_holdout_fraction=0.01 or --config.eval_corpus=FILES",
    )
    return spec


def known_fields() -> frozenset[str]:
    """The fields a run config may hold: every spec's, and `model_size` (the size's name)."""
    return frozenset(f.name for spec in SPECS for f in dataclasses.fields(spec)) | {"model_size"}


def check_runnable(spec: RunSpec, workdir: str | os.PathLike | None = None) -> None:
    """What depends on this machine: the batch split over its devices and processes, the given
    vocabulary and prepared directory, and `workdir` (local or gs://), which is created."""
    shards = spec.mesh.batch_shards(jax.device_count())
    check_dcn_slices(spec.mesh.dcn_mesh_shape, jax.devices())
    loop = spec.loop
    require(
        loop.batch_size % shards == 0,
        f"batch_size={loop.batch_size} is not divisible by the {shards} data-parallel "
        "shards (data x fsdp); change --config.batch_size",
    )
    require(
        loop.microbatch_size % shards == 0,
        f"the microbatch batch_size/grad_accum_steps={loop.microbatch_size} is not divisible by "
        f"the {shards} data-parallel shards (data x fsdp); change --config.batch_size or "
        "--config.grad_accum_steps",
    )
    require(
        loop.batch_size % jax.process_count() == 0,
        f"batch_size={loop.batch_size} is not divisible by {jax.process_count()} processes",
    )
    if loop.eval_every:
        require(
            loop.eval_batch_size % shards == 0,
            f"eval_batch_size={loop.eval_batch_size} is not divisible by the {shards} "
            "data-parallel shards (data x fsdp); change --config.eval_batch_size",
        )
    _check_vocab_dir(spec.data)
    if workdir is not None:
        _check_writable(epath.Path(workdir))


def _check_corpus(data: DataSpec) -> None:
    """The corpus patterns match something (a glob only, nothing read) before a workdir exists,
    a streamed corpus has files for every process, and every process sees the same files."""
    from bertjax.data import corpus

    if data.prepared_dir:
        if jax.process_count() > 1:  # listed only to compare (its reader checks the shards)
            shards = sorted(str(path) for path in epath.Path(data.prepared_dir).glob("*"))
            process_agreement.check_same_files(shards, "prepared", "--config.prepared_dir")
    else:
        files = corpus.resolve_files(data.corpus)
        if data.streaming:  # every process needs files of its own
            from bertjax.data.sources import text_stream

            text_stream.process_files(files, jax.process_index(), jax.process_count())
        process_agreement.check_same_files(files, "corpus", "--config.corpus")
    if data.eval_corpus:
        with corpus.corpus_flag("--config.eval_corpus"):
            files = corpus.resolve_files(data.eval_corpus)
        process_agreement.check_same_files(files, "held-out corpus", "--config.eval_corpus")


def validate(config: ml_collections.ConfigDict, workdir=None) -> RunSpec:
    """`from_config` then `check_runnable`: every check of a run, before anything is read. With a
    `workdir`, the corpus patterns must match before it is created."""
    spec = from_config(config)
    if workdir is not None:
        _check_corpus(spec.data)
    check_runnable(spec, workdir)
    return spec


def vocab_dir_size(vocab_dir: str) -> int:
    """The number of tokens in `vocab_dir`/vocab.txt (local or gs://), one a line as the
    tokenizer reads it; UserError where there is none."""
    vocab_file = epath.Path(vocab_dir).expanduser() / vocab_files.VOCAB_FILE
    with paths.remote_errors(vocab_file):
        require(
            vocab_file.is_file(),
            f"vocab_dir={vocab_dir!r} has no vocab.txt; point it at a directory with one or "
            "leave it empty to train a vocabulary",
        )
        return len(vocab_files.read_vocab(vocab_file))


def _check_vocab_dir(data: DataSpec) -> None:
    if not data.vocab_dir:
        return
    tokens = vocab_dir_size(data.vocab_dir)
    require(
        tokens == data.vocab_size,
        f"vocab_size={data.vocab_size} but "
        f"{epath.Path(data.vocab_dir).expanduser() / 'vocab.txt'} has {tokens} tokens; "
        f"set --config.vocab_size={tokens}",
    )


def _check_writable(workdir: epath.Path) -> None:
    try:
        with paths.remote_errors(workdir):
            workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create workdir {workdir}: {paths.os_reason(e)}; choose another --workdir"
        ) from None
    if not paths.is_uri(workdir) and not os.access(workdir, os.W_OK):
        raise UserError(f"workdir {workdir} is not writable; choose another --workdir")


def set_model_size(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Sets layers/hidden/heads/intermediate (4H) for one of MODEL_SIZES, in place."""
    if name not in MODEL_SIZES:
        raise UserError(f"unknown model size {name!r}; choose one of {', '.join(MODEL_SIZES)}")
    layers, hidden, heads = MODEL_SIZES[name]
    config.model_size = name
    config.num_hidden_layers = layers
    config.hidden_size = hidden
    config.num_attention_heads = heads
    config.intermediate_size = 4 * hidden
    return config


def set_electra_size(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Sets ELECTRA's model for one of ELECTRA_SIZES, in place: the discriminator's layers,
    width, heads, 4H feed-forward and embedding width, the generator's width fraction, the
    discriminator's loss weight 50, and packed rows (ELECTRA has no next-sentence task)."""
    if name not in ELECTRA_SIZES:
        raise UserError(f"unknown ELECTRA size {name!r}; choose one of {', '.join(ELECTRA_SIZES)}")
    layers, hidden, heads, embedding, generator = ELECTRA_SIZES[name]
    config.model_size = f"electra_{name}"
    config.num_hidden_layers = layers
    config.hidden_size = hidden
    config.num_attention_heads = heads
    config.intermediate_size = 4 * hidden
    config.embedding_size = 0 if embedding == hidden else embedding
    config.objective = "electra"
    config.generator_hidden_fraction = generator
    config.discriminator_weight = 50.0
    config.packing = True
    return config


def defaults() -> ml_collections.ConfigDict:
    """Every config field at its default: BERT-base, phase 1 (seq 128) of the BERT recipe.

    The fields are those of the specs (SPECS), each documented in one line where its spec defines
    it, plus `model_size`, the name of the size set by `set_model_size` (on the command line,
    `--config.model_size=NAME` sets that size: bertjax/cli.py).
    """
    import ml_collections  # deferred: the specs and the compute path do not need it

    config = ml_collections.ConfigDict()
    for spec_class in SPECS:
        for field in dataclasses.fields(spec_class):
            if field.name == "vocab_size" and spec_class is BertConfig:
                continue  # the model's vocabulary is the tokenizer's; DataSpec has the target
            if field.default is not dataclasses.MISSING:
                value = field.default
            else:
                value = field.default_factory()
            if isinstance(value, dict):
                value = ml_collections.ConfigDict(value)
            elif isinstance(value, tuple) and field.name == "logical_axis_rules":
                value = list(value)
            if field.name in config:
                assert config[field.name] == value, f"{field.name} has two defaults"
                continue
            config[field.name] = value
    return set_model_size(config, "base")


def load_config(path: str | os.PathLike, *args) -> ml_collections.ConfigDict:
    """`get_config(*args)` of the config file at `path` (e.g. configs/cpu_smoke.py), loaded by
    path as `--config=PATH` loads it, from any working directory."""
    import importlib.util

    path = Path(path)
    module_spec = importlib.util.spec_from_file_location(f"_bertjax_config_{path.stem}", path)
    if module_spec is None or not path.is_file():
        raise UserError(f"config file {str(path)!r} does not exist; pass a configs/*.py file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(
            f"config file {str(path)!r} does not parse: {e.msg}, line {e.lineno}"
        ) from None
    if not callable(getattr(module, "get_config", None)):
        raise UserError(f"config file {str(path)!r} has no get_config(); define one returning "
                        "the config (see configs/*.py)")  # fmt: skip
    return module.get_config(*args)
