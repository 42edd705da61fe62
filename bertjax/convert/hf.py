"""Hugging Face BERT layout: parameter names and shapes both ways, and `config.json` (the model
files themselves: `weight_files`).

bertjax's parameter tree mirrors Hugging Face's module tree, so a name maps by joining the path
with dots and renaming the leaf (`kernel`, `scale`, `embedding` -> `weight`). Shapes differ in two
ways: torch Linear weights are [out, in] where our kernels are [in, out], and our attention
projections keep heads apart (query/key/value kernel [H, heads, head_size], bias [heads, head_size];
attention output kernel [heads, head_size, H]) where Hugging Face has flat [H, H] / [H].
All arrays are numpy float32; nothing here needs torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bertjax.convert.weight_files import read_json
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig

LEAF_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
# Hugging Face creates this table even with relative positions, which never read it.
POSITION_EMBEDDINGS = "bert.embeddings.position_embeddings.weight"
# "rotary" arrives from RoFormer's config.json (roformer.to_bert); BERT's own is refused saying it.
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "rotary")
MLM_BIAS = "cls.predictions.bias"
# Hugging Face's BertForPreTraining state dict also holds the decoder, which is tied to the word
# embeddings, and its bias, which is tied to `cls.predictions.bias`.
TIED_DECODER = "cls.predictions.decoder.weight"
TIED_DECODER_BIAS = "cls.predictions.decoder.bias"
# Parts a source may lack (BertModel has no heads, BertForMaskedLM no pooler and no NSP head);
# they are then initialised. Name prefix -> what the report calls it.
OPTIONAL_PARTS = {
    "bert.pooler.": "pooler (bert.pooler)",
    "cls.predictions.": "masked-LM head (cls.predictions)",
    "cls.seq_relationship.": "next-sentence head (cls.seq_relationship)",
}
BASE_MODEL_PREFIXES = ("embeddings.", "encoder.", "pooler.")  # BertModel's keys have no "bert."
BUFFERS = ("position_ids", "token_type_ids")  # registered buffers, not weights
# Config fields read from / written to config.json, named alike in Hugging Face, TF1 and BertConfig.
CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
CONFIG_FIELDS += ("intermediate_size", "max_position_embeddings", "type_vocab_size")
CONFIG_FIELDS += ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")
CONFIG_FIELDS += ("layer_norm_eps",)
REQUIRED_CONFIG_FIELDS = CONFIG_FIELDS[:5]


def _keys(path: tuple) -> list[str]:
    return [str(getattr(key, "key", key)) for key in path]


def hf_name(keys: list[str]) -> str:
    """bertjax path ['bert', 'encoder', 'layer', '0', ..., 'kernel'] -> Hugging Face key."""
    return ".".join([*keys[:-1], LEAF_NAMES[keys[-1]]])


def _kernel_input_dims(keys: list[str]) -> int:
    # The attention output projection consumes two axes (heads, head_size); others consume one.
    return 2 if keys[-4:-1] == ["attention", "output", "dense"] else 1


def _hf_shape(keys: list[str], shape: tuple[int, ...]) -> tuple[int, ...]:
    if keys[-1] == "kernel":
        split = _kernel_input_dims(keys)
        return (math.prod(shape[split:]), math.prod(shape[:split]))
    if keys[-1] == "bias":
        return (math.prod(shape),)
    return tuple(shape)


def hf_tensors(params: Any) -> dict[str, np.ndarray]:
    """bertjax parameters (nested dict of jax or numpy arrays) -> float32 tensors with Hugging
    Face's names (the path joined by dots) and shapes (kernels transposed to [out, in])."""
    tensors = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = _keys(path)
        array = np.asarray(leaf, np.float32)
        if keys[-1] == "kernel":
            split = _kernel_input_dims(keys)
            array = array.reshape(math.prod(array.shape[:split]), -1).T
        tensors[hf_name(keys)] = np.ascontiguousarray(array.reshape(_hf_shape(keys, leaf.shape)))
    return tensors


def params_to_hf(params: Any) -> dict[str, np.ndarray]:
    """bertjax parameters -> BertForPreTraining state dict (`hf_tensors`), with the tied
    decoder weight and bias, so `from_pretrained` finds every key it expects."""
    tensors = hf_tensors(params)
    tensors[TIED_DECODER] = tensors[WORD_EMBEDDINGS]
    tensors[TIED_DECODER_BIAS] = tensors[MLM_BIAS]
    return with_position_table(tensors, WORD_EMBEDDINGS, POSITION_EMBEDDINGS)


def with_position_table(tensors: dict, word_embeddings: str, position_embeddings: str) -> dict:
    """`tensors` with a zero position table when they have relative positions and no table
    (Hugging Face's BERT embeddings always hold the table and do not read it then)."""
    any_layer = next((name for name in tensors if ".distance_embedding." in name), None)
    if position_embeddings in tensors or any_layer is None:
        return tensors
    max_positions = (tensors[any_layer].shape[0] + 1) // 2
    hidden = tensors[word_embeddings].shape[1]
    return tensors | {position_embeddings: np.zeros((max_positions, hidden), np.float32)}


@dataclasses.dataclass
class Conversion:
    """Parameters read from a source, and what the source lacked or held beyond them."""

    params: Any  # nested dict of numpy float32, the structure of BertForPreTraining's params
    initialised: list[str]  # OPTIONAL_PARTS descriptions of parts that were initialised
    ignored: list[str]  # source keys that are not BertForPreTraining weights


def canonical_names(tensors: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Source keys -> BertForPreTraining keys: adds BertModel's missing "bert." prefix, renames
    old LayerNorm `gamma`/`beta`, drops buffers. Returns (renamed tensors, unknown keys)."""
    renamed, unknown = {}, []
    for name, array in tensors.items():
        if name.split(".")[-1] in BUFFERS:
            continue
        if name.startswith(BASE_MODEL_PREFIXES):
            name = "bert." + name
        if ".LayerNorm." in name:
            name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
        if name.startswith(("bert.", "cls.")):
            renamed[name] = array
        else:
            unknown.append(name)
    return renamed, unknown


def params_from_hf(
    tensors: Mapping[str, np.ndarray],
    abstract_params: Any,
    init_params: Callable[[], Any],
    *,
    source: str,
) -> Conversion:
    """Hugging Face-named tensors -> bertjax parameters shaped like `abstract_params`.

    Parts in OPTIONAL_PARTS that the source lacks entirely come from `init_params()` (called only
    then); anything else missing, a misshapen tensor or an untied decoder is a UserError.
    """
    renamed, ignored = canonical_names(tensors)
    found, missing = {}, []

    def convert(path, leaf):
        keys = _keys(path)
        name = hf_name(keys)
        if name not in renamed:
            missing.append(name)
            return None
        array = np.asarray(renamed[name], np.float32)
        expected = _hf_shape(keys, leaf.shape)
        if array.shape != expected:
            raise UserError(
                f"{source}: {name} has shape {list(array.shape)} but its config implies "
                f"{list(expected)}; the config.json does not describe these weights"
            )
        found[name] = True
        if keys[-1] == "kernel":
            return array.T.reshape(leaf.shape)
        return array.reshape(leaf.shape)

    params = jax.tree_util.tree_map_with_path(convert, abstract_params)
    params, initialised = _fill_missing(params, missing, init_params, source)
    _check_tied(renamed, params, source)
    ignored += sorted(set(renamed) - set(found) - {TIED_DECODER, TIED_DECODER_BIAS})
    if POSITION_EMBEDDINGS in ignored and not _has_absolute_positions(abstract_params):
        ignored.remove(POSITION_EMBEDDINGS)  # the table relative-position models never read
    return Conversion(params=params, initialised=initialised, ignored=ignored)


def _has_absolute_positions(params: Any) -> bool:
    return "position_embeddings" in params["bert"]["embeddings"]


def _fill_missing(
    params: Any, missing: list[str], init_params: Callable[[], Any], source: str
) -> tuple[Any, list[str]]:
    """Fills the None leaves (missing tensors) from `init_params()`; whole parts only."""
    if not missing:
        return params, []
    required = [name for name in missing if not name.startswith(tuple(OPTIONAL_PARTS))]
    if required:
        raise UserError(
            f"{source} lacks {len(required)} BERT weights, e.g. {required[0]}; "
            "pass a BERT checkpoint (BertModel, BertForMaskedLM or BertForPreTraining)"
        )
    names = [
        hf_name(_keys(path))
        for path, _ in jax.tree_util.tree_flatten_with_path(params, is_leaf=_is_missing)[0]
    ]
    initialised = []
    for prefix, description in OPTIONAL_PARTS.items():
        part_missing = [name for name in missing if name.startswith(prefix)]
        if part_missing and len(part_missing) != sum(name.startswith(prefix) for name in names):
            raise UserError(
                f"{source} has part of the {description} but lacks {part_missing[0]}; "
                "the checkpoint is incomplete"
            )
        if part_missing:
            initialised.append(description)
    filled = jax.tree.map(
        lambda leaf, fresh: np.asarray(fresh, np.float32) if leaf is None else leaf,
        params,
        init_params(),
        is_leaf=_is_missing,
    )
    return filled, initialised


def _is_missing(leaf: Any) -> bool:
    return leaf is None


def _check_tied(renamed: Mapping[str, np.ndarray], params: Any, source: str) -> None:
    """bertjax ties the MLM decoder to the word embeddings; refuse a source that does not."""
    if TIED_DECODER not in renamed:
        return
    embeddings = params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    decoder = np.asarray(renamed[TIED_DECODER], np.float32)
    if decoder.shape != embeddings.shape or not np.array_equal(decoder, embeddings):
        raise UserError(
            f"{source}: {TIED_DECODER} differs from {WORD_EMBEDDINGS}; bertjax ties the MLM "
            "decoder to the word embeddings, so it cannot hold this model"
        )


def read_bert_config(path: Path) -> dict[str, Any]:
    """A BERT `config.json` / TF1 `bert_config.json`. UserError where it says what only
    bertjax's RoFormer and pre-LN readers write (roformer.to_bert, prelayernorm.to_bert): BERT's
    classes would compute that model without it (no positions at all, post-LN blocks)."""
    fields = read_json(path)
    if fields.get("model_type", "bert") != "bert":
        return fields
    if fields.get("position_embedding_type") == "rotary":
        raise UserError(
            f"{path} is a BERT config saying position_embedding_type='rotary', which BERT's "
            "classes do not compute (they add no positions at all); a rotary model's "
            "config.json says model_type 'roformer'"
        )
    embedding_size = fields.get("embedding_size")
    if embedding_size is not None and embedding_size != fields.get("hidden_size"):
        raise UserError(
            f"{path} is a BERT config saying embedding_size={embedding_size}, which BERT's "
            "classes ignore (their embeddings are hidden_size wide); a model with factorised "
            "embeddings' config.json says model_type 'electra' or 'roformer'"
        )
    if fields.get("layer_norm_placement", "post") != "post":
        raise UserError(
            f"{path} is a BERT config saying layer_norm_placement="
            f"{fields['layer_norm_placement']!r}, which BERT's classes ignore (post-LN blocks); "
            "a pre-LN model's config.json says model_type 'roberta-prelayernorm'"
        )
    return fields


def bert_config_from_hf(fields: Mapping[str, Any], *, source: str) -> BertConfig:
    """Hugging Face `config.json` / TF1 `bert_config.json` fields -> validated BertConfig.

    Refuses (UserError) what bertjax's model does not compute: other model types, activations
    other than exact GELU, position embeddings other than absolute and relative_key (and rotary,
    from a RoFormer's fields: roformer.to_bert). A pre-LN encoder's fields
    (prelayernorm.to_bert) say `layer_norm_placement="pre"`.
    """
    model_type = fields.get("model_type", "bert")
    if model_type != "bert":
        raise UserError(
            f"{source} holds a {model_type!r} model; bertjax imports BERT ('bert'), RoFormer "
            "('roformer'), Electra ('electra') and its own pre-LN exports "
            "('roberta-prelayernorm' with a WordPiece vocab.txt)"
        )
    activation = fields.get("hidden_act", "gelu")
    if activation != "gelu":
        raise UserError(
            f"{source} uses hidden_act={activation!r}; bertjax computes exact GELU only "
            "('gelu'), so this model would give different outputs"
        )
    position_type = fields.get("position_embedding_type") or "absolute"
    if position_type not in POSITION_EMBEDDING_TYPES:
        raise UserError(
            f"{source} uses position_embedding_type={position_type!r}; bertjax supports "
            f"{POSITION_EMBEDDING_TYPES}"
        )
    absent = [name for name in REQUIRED_CONFIG_FIELDS if fields.get(name) is None]
    if absent:
        raise UserError(f"{source} lacks config fields {absent}; it is not a BERT config")
    kwargs = {name: fields[name] for name in CONFIG_FIELDS if fields.get(name) is not None}
    kwargs["layer_norm_placement"] = fields.get("layer_norm_placement", "post")
    # Electra's and RoFormer's (electra.to_bert, roformer.to_bert); 0 when the hidden size.
    kwargs["embedding_size"] = _factorised_width(fields)
    return BertConfig(**kwargs, position_embedding_type=position_type).validate()


def _factorised_width(fields: Mapping[str, Any]) -> int:
    embedding_size = fields.get("embedding_size")
    return 0 if embedding_size in (None, fields["hidden_size"]) else embedding_size


def hf_config(config: BertConfig, *, pad_token_id: int) -> dict[str, Any]:
    """`config.json` of a Hugging Face BertForPreTraining with `config`'s architecture."""
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        **{name: getattr(config, name) for name in CONFIG_FIELDS},
        "hidden_act": "gelu",
        "position_embedding_type": config.position_embedding_type,
        "pad_token_id": pad_token_id,
        "tie_word_embeddings": True,
        "classifier_dropout": None,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def renamed_prefix(tensors: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """`tensors` with the names that start with `old` starting with `new` instead ("roformer."
    <-> "bert."); the other names as they are."""
    return {
        new + name.removeprefix(old) if name.startswith(old) else name: tensor
        for name, tensor in tensors.items()
    }


def check_unfactorised(config: BertConfig, family: str) -> None:
    """UserError, before anything is written, for factorised embeddings (`embedding_size`) in
    a Hugging Face `family` whose classes have no `embeddings_project` (RoBERTa-PreLayerNorm,
    the pre-LN family; Electra and RoFormer, the post-LN ones, have one)."""
    if config.embedding_width != config.hidden_size:
        raise UserError(
            f"this model's embeddings are {config.embedding_width} wide, projected to "
            f"hidden_size={config.hidden_size} (embedding_size), which Hugging Face's {family} "
            "classes cannot hold; use it in bertjax (fine-tune, predict, fill-mask), or train "
            "post-LN (--config.layer_norm_placement=post: exported as Electra's or RoFormer's)"
        )
