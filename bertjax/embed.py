"""`bertjax embed`: one vector per text from a bertjax encoder, for search, clustering or a
classifier outside bertjax.

Any model directory works: a pretraining workdir, a `bertjax import` directory (a
sentence-transformers model imports with its pooling, normalisation and length: the
"sentence_embedding" entry its import records) or a fine-tuned model (its encoder). Each text
(or pair: `--text_fields=a,b`) is encoded as fine-tuning encodes it, [CLS] a [SEP] (b [SEP]),
cut to the length, and its final hidden states pooled: `mean` over its real tokens, [CLS] and
[SEP] included (sentence-transformers' mean pooling), or `cls` (the first token's state);
`normalize` scales each vector to length 1 (then a dot product is the cosine). The output is a
float32 .npy array [texts, hidden], row i the embedding of record i, or (OUT.jsonl) each record
with its "embedding" (a list of floats); the file is read in chunks (memory does not grow with
it), written into OUT.partial and renamed to OUT when complete.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from bertjax import checkpointing, paths, sharding
from bertjax.convert import model_dir, sentence_model
from bertjax.data import vocab, vocab_files
from bertjax.errors import UserError
from bertjax.finetune import features, inference, predict_inputs
from bertjax.finetune.conll_records import CONLL_SUFFIXES
from bertjax.finetune.records import TEXT_KINDS
from bertjax.models.bert import BertModel

POOLINGS = ("mean", "cls")
OUTPUT_SUFFIXES = (".npy", ".jsonl")


@dataclasses.dataclass(frozen=True)
class Pooling:
    """How a text's final hidden states become its embedding."""

    mode: str = "mean"  # POOLINGS
    normalize: bool = False
    max_seq_length: int = 128


@dataclasses.dataclass
class Embedded:
    count: int
    dimension: int
    pooling: Pooling
    out: Path

    def line(self) -> str:
        how = self.pooling.mode + (", normalised" if self.pooling.normalize else "")
        return (
            f"{self.count} embeddings of {self.dimension} values ({how}, texts cut to "
            f"{self.pooling.max_seq_length} tokens) -> {self.out}"
        )


def pool(states: jax.Array, input_mask: jax.Array, pooling: Pooling) -> jax.Array:
    """[B, L, H] final hidden states, [B, L] mask -> [B, H] float32 embeddings."""
    states = states.astype(jnp.float32)
    if pooling.mode == "cls":
        pooled = states[:, 0]
    else:
        weights = input_mask.astype(jnp.float32)[..., None]
        pooled = jnp.sum(states * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
    if pooling.normalize:  # sentence-transformers' Normalize: x / max(||x||, 1e-12)
        pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled


def model_pooling(
    metadata: dict, *, pooling: str = "", normalize: bool | None = None, max_seq_length: int = 0
) -> Pooling:
    """The pooling of a model (an imported sentence model's own; else mean, not normalised, at
    the length it was trained on: its run's or task's max_seq_length), overridden by the
    arguments given. UserError for an unknown pooling or a length the model cannot take."""
    saved = metadata.get(sentence_model.METADATA_ENTRY) or {}
    if "not_computed" in saved and not pooling:
        raise UserError(
            f"this sentence-transformers model's pipeline has {', '.join(saved['not_computed'])}, "
            "which bertjax embed does not compute; pass --pooling=mean or cls to embed with "
            "its encoder alone"
        )
    trained = (metadata.get("task") or metadata.get("config", {})).get("max_seq_length", 128)
    limit = model_dir.model_config(metadata).max_position_embeddings
    chosen = Pooling(
        mode=pooling or saved.get("pooling", "mean"),
        normalize=saved.get("normalize", False) if normalize is None else normalize,
        max_seq_length=max_seq_length or min(saved.get("max_seq_length", trained), limit),
    )
    if chosen.mode not in POOLINGS:
        raise UserError(f"--pooling={chosen.mode} is not one of {', '.join(POOLINGS)}")
    if not 2 < chosen.max_seq_length <= limit:
        raise UserError(
            f"--max_seq_length={chosen.max_seq_length} must be in [3, {limit}] (the model's "
            "max_position_embeddings)"
        )
    return chosen


def embed_file(
    model_path: str,
    input_path: str,
    out: str,
    *,
    text_fields: str = "",
    pooling: str = "",
    normalize: bool | None = None,
    max_seq_length: int = 0,
    batch_size: int = 64,
    step: int | None = None,
    column_names: str = "",
    text_encoding: str = "",
) -> Embedded:
    """Writes the embeddings of the texts of `input_path`'s records (field `text_fields`: a,
    or a pair a,b; "" = the fields a fine-tuned text model read, else "text") to `out` (.npy
    or .jsonl), by the encoder of `model_path`'s checkpoint at `step` (default: the latest).
    `pooling` ("mean" / "cls"), `normalize` and `max_seq_length` default to the model's
    (`model_pooling`). The batch is split over every local device. UserError for a missing
    or malformed input, another output suffix, or settings the model cannot take."""
    paths.require_local(out, "--out")
    out_path = Path(out).expanduser()
    if out_path.suffix not in OUTPUT_SUFFIXES or out_path.is_dir():
        raise UserError(
            f"--out={out} must name a .npy file (an array) or a .jsonl file (the records with "
            "their embeddings), e.g. embeddings.npy"
        )
    predict_inputs.check_run_flags(batch_size, text_encoding)
    if not Path(input_path).expanduser().is_file():
        raise UserError(f"--input={input_path} does not exist; pass a file of records")
    if Path(input_path).suffix.lower() in set(CONLL_SUFFIXES) - {".txt"}:  # .txt: TSV texts
        raise UserError(
            f"--input={input_path} is read as a CoNLL file of tokens and tags (its suffix); embed "
            "reads texts: give them as JSON Lines, CSV, TSV or Parquet"
        )
    step, metadata = checkpointing.open_workdir(model_path, step)
    chosen = model_pooling(
        metadata, pooling=pooling, normalize=normalize, max_seq_length=max_seq_length
    )
    # Records read as a text task's inputs (one text field or a pair): classification's, by
    # default in the fields a fine-tuned text model read.
    task = predict_inputs.with_fields(
        {"kind": "classification"}, text_fields or _recorded_text_fields(metadata), "", ""
    )
    chunks, count = predict_inputs.checked_chunks(
        task, Path(input_path).expanduser(), column_names, text_encoding
    )
    tok = vocab.load_tokenizer(
        paths.as_path(model_path) / vocab_files.VOCAB_FILE, model_dir.lowercase(metadata)
    )
    config = model_dir.model_config(metadata)
    embed_rows = _embedder(model_path, step, config, chosen, batch_size)
    paths.make_local_dir(out_path.parent, "--out")
    _write(out_path, (count, config.hidden_size), chunks, lambda examples: _by_length(
        features.encode_texts(examples, tok, chosen.max_seq_length), embed_rows))  # fmt: skip
    return Embedded(count, config.hidden_size, chosen, out_path)


def _recorded_text_fields(metadata: dict) -> str:
    """ "a" or "a,b": the fields a model fine-tuned on texts read (classification, multilabel,
    regression); "text" for any other model."""
    task = model_dir.task_of(metadata) or {}
    recorded = task.get("text_fields") if task.get("kind") in TEXT_KINDS else None
    return ",".join(recorded) if recorded else "text"


def _write(out_path: Path, shape: tuple[int, int], chunks, embedded) -> None:
    """`embedded(examples)` of every chunk into OUT.partial, renamed to `out_path` when complete:
    an array `shape` (.npy, filled chunk by chunk), or each record with its "embedding" (.jsonl)."""
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        if out_path.suffix == ".npy":
            array, start = np.lib.format.open_memmap(partial, "w+", np.float32, shape), 0
            for _, examples in chunks():
                array[start : start + len(examples)] = embedded(examples)
                start += len(examples)
            array.flush()
            del array
        else:
            with partial.open("w", encoding="utf-8") as file:
                for records, examples in chunks():
                    for record, vector in zip(records, embedded(examples), strict=True):
                        line = record | {"embedding": vector.tolist()}
                        # default=str: a Parquet input's dates and decimals are echoed as text.
                        file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)


def _by_length(encoded: features.Encoded, embed_rows) -> np.ndarray:
    """`embed_rows` of the rows taken shortest first (a batch pads to its longest row: in file
    order most batches would pad to a long one), returned in the rows' order."""
    order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
    ordered = features.Encoded(
        [encoded.input_ids[i] for i in order], [encoded.segment_ids[i] for i in order],
        [encoded.labels[i] for i in order],
    )  # fmt: skip
    vectors = np.stack(embed_rows(ordered))
    rows = np.empty_like(vectors)
    rows[order] = vectors
    return rows


def _embedder(model_path, step, config, chosen: Pooling, batch_size: int):
    """A function giving every row's embedding of encoded inputs, from the encoder's parameters
    replicated over a data-parallel mesh (loaded and compiled once for all chunks)."""
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: BertModel(config, rngs=nnx.Rngs(0))), nnx.Param)
    mesh = sharding.create_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    encoder = checkpointing.restore_params(model_path, step)["bert"]  # any model's encoder
    params = jax.device_put(encoder, NamedSharding(mesh, PartitionSpec()))

    @jax.jit
    def embed(params, batch):
        net = nnx.merge(graphdef, params)
        states = net(batch["input_ids"], batch["segment_ids"], batch["input_mask"])
        return pool(states["sequence_output"], batch["input_mask"], chosen)

    settings = ml_collections.ConfigDict(
        {"eval_batch_size": batch_size, "max_seq_length": chosen.max_seq_length}
    )
    return lambda encoded: inference.predict_all(encoded, params, embed, mesh, settings)
