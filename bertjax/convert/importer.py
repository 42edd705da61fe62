"""`bertjax import`: a Hugging Face BERT directory (or a pre-LN one bertjax exported as
RoBERTa-PreLayerNorm) or a TF1 BERT checkpoint -> a bertjax model dir.

The directory written (see model_dir.py) is laid out like a training workdir, so everything that
reads a workdir reads it too: `bertjax export`, `--config.init_from`, fine-tuning.
Heads the source lacks (BertModel has no MLM/NSP heads, BertForMaskedLM no pooler or NSP head) are
initialised as BERT initialises them and reported, one line each.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from bertjax import checkpoint_compatibility, paths
from bertjax.command_flags import config_path
from bertjax.convert import (
    electra,
    hf,
    model_dir,
    prelayernorm,
    roformer,
    sentence_model,
    task_import,
    tf1,
    weight_files,
)
from bertjax.data import lookups, vocab_files
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, create_model

HF_FORMAT = "Hugging Face"
# Tokenizers that cut words before WordPiece, so their ids are not BertTokenizer's.
WORD_TOKENIZERS = ("BertJapaneseTokenizer", "RoFormerTokenizer", "RoFormerTokenizerFast")
TF1_FORMAT = "TF1 google-research/bert"


@dataclasses.dataclass
class Source:
    """A checkpoint read into Hugging Face names and layout, with what goes with it."""

    format: str
    tensors: dict[str, np.ndarray]
    config_fields: dict[str, Any]
    vocab_path: Path
    lowercase: bool | None  # None: the source does not say
    ignored: list[str]
    sentence_embedding: dict | None = None  # a sentence-transformers model's (sentence_model.py)


@dataclasses.dataclass
class ImportResult:
    source: Path
    out_dir: Path
    format: str
    config: BertConfig
    lowercase: bool
    initialised: list[str]
    ignored: list[str]
    task: dict | None = None  # a fine-tuned model's task (task_import.py)
    sentence_embedding: dict | None = None

    def lines(self) -> list[str]:
        c = self.config
        casing = "uncased" if self.lowercase else "cased"
        lines = [
            f"Imported {self.format} BERT from {self.source} -> {self.out_dir} "
            f"({c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} "
            f"heads, vocab {c.vocab_size}, {casing})"
        ]
        lines += [f"initialised {part}: not in the source" for part in self.initialised]
        if self.sentence_embedding is not None:
            lines.append(sentence_model.describe(self.sentence_embedding))
        if self.ignored:
            shown = ", ".join(self.ignored[:5]) + (", ..." if len(self.ignored) > 5 else "")
            lines.append(f"left out {len(self.ignored)} tensors that are not BERT weights: {shown}")
        if self.task is not None:
            labels = ", ".join(self.task["labels"][:6]) + (
                ", ..." if len(self.task["labels"]) > 6 else ""
            )
            lines.append(
                f"fine-tuned for {self.task['name']} ({self.task['kind']}"
                + (f"; labels {labels}" if labels else "")
                + f"): bertjax predict --model={self.out_dir} --input=FILE --out=FILE.jsonl"
            )
            return lines
        lines.append(
            f"train from it: bertjax train --config={config_path('base.py')} --workdir=RUN "
            + (" ".join(f"--config.{name}={value}" for name, value in run_overrides(self).items()))
        )
        return lines


def run_overrides(result: ImportResult) -> dict[str, Any]:
    """The config overrides a training run needs to start from the imported model, as config
    values (`config.update(run_overrides(result))`: the paths as strings, which a ConfigDict's
    string fields take, not Paths)."""
    fields = {"init_from": str(result.out_dir), "vocab_dir": str(result.out_dir)}
    fields["lowercase"] = result.lowercase
    for name in checkpoint_compatibility.ARCHITECTURE_FIELDS + ("layer_norm_eps",):
        fields[name] = getattr(result.config, name)
    if result.config.position_embedding_type != "rotary":
        del fields["rope_theta"]  # read by rotary positions only
    if not result.config.embedding_size:
        del fields["embedding_size"]  # the hidden size, the default
    return fields


def import_checkpoint(source: str | Path, out_dir: str | Path, *, seed: int = 0) -> ImportResult:
    """Converts the checkpoint at `source` into a bertjax model directory `out_dir`.

    `source`: a Hugging Face BERT directory (config.json, model.safetensors or its Flax or TF
    weights (`weight_files.read_weights`), vocab.txt or a WordPiece tokenizer.json) or a TF1
    checkpoint (a directory with bert_model.ckpt.*, bert_config.json, vocab.txt, or the
    prefix). Missing heads are initialised from `seed`.
    Raises UserError on anything it cannot convert, before anything is written.
    """
    paths.require_local(source, "--from")
    paths.require_local(out_dir, "--out")
    source, out_dir = Path(source).expanduser(), Path(out_dir).expanduser()
    if (out_dir / "checkpoints").exists():
        raise UserError(f"{out_dir} already holds checkpoints; pass a new directory as --out")
    with tempfile.TemporaryDirectory() as scratch:  # a vocab.txt made from tokenizer.json
        return _import(read_source(source, Path(scratch)), source, out_dir, seed)


def _import(read: Source, source: Path, out_dir: Path, seed: int) -> ImportResult:
    config = hf.bert_config_from_hf(read.config_fields, source=str(source))
    vocab = vocab_files.read_vocab(read.vocab_path)
    if len(vocab) != config.vocab_size:
        raise UserError(
            f"{read.vocab_path} has {len(vocab)} tokens but the model's vocab_size is "
            f"{config.vocab_size}; pass the vocab.txt the model was trained with"
        )
    abstract = nnx.state(nnx.eval_shape(lambda: create_model(config, seed)), nnx.Param)
    conversion = hf.params_from_hf(
        read.tensors,
        abstract.to_pure_dict(),
        lambda: initial_params(config, seed),
        source=str(source),
    )
    lowercase = read.lowercase if read.lowercase is not None else infer_lowercase(vocab)
    params, task = conversion.params, None
    initialised, ignored = conversion.initialised, read.ignored + conversion.ignored
    architecture = task_import.task_architecture(read.config_fields)
    if architecture is not None:  # a fine-tuned model: its encoder and head, no MLM/NSP heads
        head, task, used = task_import.head_and_task(
            read.tensors, read.config_fields, config, architecture, source=str(source)
        )
        params = {"bert": params["bert"], "head": head}
        initialised = [part for part in initialised if part.startswith("pooler")]
        ignored = [name for name in ignored if name not in used]
    recipe = read.sentence_embedding
    extra = {sentence_model.METADATA_ENTRY: recipe} if recipe else {}
    prefixes = {description: prefix for prefix, description in hf.OPTIONAL_PARTS.items()}
    if initialised:  # what fill-mask, evaluate and export must not pass off as trained
        extra[model_dir.INITIALISED_AT_IMPORT] = [prefixes[part] for part in initialised]
    model_dir.write(
        out_dir, params, config, read.vocab_path, lowercase, str(source), task=task, extra=extra
    )
    return ImportResult(
        source=source,
        out_dir=out_dir,
        format=read.format,
        config=config,
        lowercase=lowercase,
        initialised=initialised,
        ignored=ignored,
        task=task,
        sentence_embedding=read.sentence_embedding,
    )


def read_source(source: Path, scratch: Path) -> Source:
    """Reads a Hugging Face directory or a TF1 checkpoint; UserError when it is neither.
    `scratch`: a directory for files the source lacks but implies (a vocab.txt)."""
    if source.is_dir() and (source / "config.json").is_file():
        return _read_hf(source, scratch)
    prefix = tf1.find_checkpoint(source)
    if prefix is not None:
        return _read_tf1(prefix)
    raise UserError(
        f"{source} is neither a Hugging Face BERT directory (config.json + model.safetensors) "
        f"nor a TF1 BERT checkpoint ({tf1.DEFAULT_PREFIX}.* + {tf1.CONFIG_FILE}); "
        "pass one of those as --from"
    )


def tokenizer_casing(tokenizer_config: Path) -> bool | None:
    """``do_lower_case`` of a Hugging Face ``tokenizer_config.json`` (None without the file or
    the field); UserError for a tokenizer whose ids bertjax's BERT tokenizer would not give."""
    if not tokenizer_config.is_file():
        return None
    return check_bert_tokenization(weight_files.read_json(tokenizer_config), tokenizer_config)


def check_bert_tokenization(settings: dict, where: Path) -> bool | None:
    """`settings`' ``do_lower_case`` (BertTokenizer's fields, as in tokenizer_config.json);
    UserError naming `where` for settings whose ids bertjax's BERT tokenizer would not give."""
    lowercase = settings.get("do_lower_case")
    different = {
        "tokenizer_class": settings.get("tokenizer_class") in WORD_TOKENIZERS,
        "word_tokenizer_type": "word_tokenizer_type" in settings,  # MeCab, Sudachi, ...
        "do_basic_tokenize": settings.get("do_basic_tokenize") is False,
        "tokenize_chinese_chars": settings.get("tokenize_chinese_chars") is False,
        "strip_accents": None not in (strip := settings.get("strip_accents"), lowercase)
        and strip != lowercase,
    }
    if field := next((name for name, differs in different.items() if differs), None):
        raise UserError(
            f"{where} sets {field}={settings[field]!r}: bertjax tokenizes as "
            "BertTokenizer with basic tokenization, CJK characters split and accents stripped "
            "exactly when lowercasing, so its ids would not be the model's; import a model "
            "with that tokenizer"
        )
    return lowercase


def _read_hf(source: Path, scratch: Path) -> Source:
    lowercase = tokenizer_casing(source / "tokenizer_config.json")
    tensors, fields = weight_files.read_weights(source), hf.read_bert_config(source / "config.json")
    pre_ln = fields.get("model_type") == prelayernorm.MODEL_TYPE  # a pre-LN export
    try:
        vocab_path, tokenizer_lowercase = _hf_vocabulary(source, scratch)
    except UserError:
        if not pre_ln:
            raise
        raise UserError(
            f"{source} is a RoBERTa-PreLayerNorm model without a WordPiece "
            f"{vocab_files.VOCAB_FILE} or tokenizer.json; bertjax imports the ones it exported "
            "(their tokenizer is BERT's), not byte-level BPE ones"
        ) from None
    lowercase = tokenizer_lowercase if lowercase is None else lowercase
    if pre_ln:
        tensors, fields = prelayernorm.to_bert(tensors, fields)
    if fields.get("model_type") == roformer.MODEL_TYPE:
        tensors, fields = roformer.to_bert(tensors, fields, str(source))
    if fields.get("model_type") == electra.MODEL_TYPE:
        tensors, fields = electra.to_bert(tensors, fields)
    return Source(
        format=HF_FORMAT,
        tensors=tensors,
        config_fields=fields,
        vocab_path=vocab_path,
        lowercase=lowercase,
        ignored=[],
        sentence_embedding=sentence_model.embedding_recipe(source),
    )


def _hf_vocabulary(source: Path, scratch: Path) -> tuple[Path, bool | None]:
    """The model's vocab.txt, or, where it has only a tokenizer.json (what `tokenizers` saves),
    one written into `scratch` from that file's WordPiece vocabulary, with its casing (None: the
    tokenizer does not say). UserError for a tokenizer.json that is not BERT's."""
    tokenizer_json = source / "tokenizer.json"
    if (source / vocab_files.VOCAB_FILE).is_file() or not tokenizer_json.is_file():
        return _vocab_beside(source), None
    spec = weight_files.read_json(tokenizer_json)
    model, normalizer = spec.get("model") or {}, spec.get("normalizer") or {}
    ids = model.get("vocab") or {}
    if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix") != "##":
        raise UserError(
            f"{source} has no {vocab_files.VOCAB_FILE} and its tokenizer.json is a "
            f"{model.get('type')} tokenizer, not BERT's WordPiece; import a BERT model"
        )
    if sorted(ids.values()) != list(range(len(ids))):
        raise UserError(f"{tokenizer_json}'s WordPiece ids are not 0..{len(ids) - 1}; fix it")
    lowercase = None
    if normalizer.get("type") == "BertNormalizer":
        lowercase = check_bert_tokenization(
            {
                "do_lower_case": normalizer.get("lowercase"),
                "tokenize_chinese_chars": normalizer.get("handle_chinese_chars"),
                "strip_accents": normalizer.get("strip_accents"),
            },
            tokenizer_json,
        )
    path = scratch / vocab_files.VOCAB_FILE
    path.write_text("".join(token + "\n" for token in sorted(ids, key=ids.get)), "utf-8")
    return path, lowercase


def _read_tf1(prefix: Path) -> Source:
    config_path = prefix.parent / tf1.CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{prefix} has no {tf1.CONFIG_FILE} beside it; put the model's there")
    tensors, ignored = tf1.read_checkpoint(prefix)
    return Source(
        format=TF1_FORMAT,
        tensors=tensors,
        config_fields=hf.read_bert_config(config_path),
        vocab_path=_vocab_beside(prefix.parent),
        lowercase=None,
        ignored=ignored,
    )


def _vocab_beside(directory: Path) -> Path:
    path = directory / vocab_files.VOCAB_FILE
    if not path.is_file():
        raise UserError(f"{directory} has no {vocab_files.VOCAB_FILE}; put the model's there")
    return path


def infer_lowercase(vocab: list[str]) -> bool:
    """An uncased vocabulary has no upper-case letters outside its [SPECIAL] tokens."""
    return not lookups.cased_tokens(vocab, limit=1)


def initial_params(config: BertConfig, seed: int) -> Any:
    """Freshly initialised BertForPreTraining parameters (numpy), BERT's initialisation. Eager:
    compiling the whole init to fill the heads a source lacks cost more than it saved (BERT-base
    14.4 s jitted, 6.3 s eager; all-MiniLM-L6-v2 7.6 s, 4.6 s; the 2-core dev machine)."""
    return jax.device_get(nnx.state(create_model(config, seed), nnx.Param).to_pure_dict())
