"""`bertjax export`: a training workdir (or an imported model dir) -> a Hugging Face BERT directory.

Writes what `transformers` needs to load BertForPreTraining, BertModel, BertForMaskedLM and the
tokenizer with `from_pretrained(OUT)`:

  OUT/config.json                  BertConfig of the trained architecture
  OUT/model.safetensors            BertForPreTraining weights (pooler, both heads, tied decoder)
  OUT/vocab.txt                    the run's vocabulary
  OUT/tokenizer_config.json, OUT/special_tokens_map.json   casing and special tokens
  OUT/tokenizer.json, OUT/sentencepiece.model      a SentencePiece run's tokenizer (instead of
                                                   BertTokenizer's WordPiece), sentencepiece_hf.py

An ELECTRA run (`--config.objective=electra`) exports its discriminator as OUT (an
ElectraForPreTraining directory, bertjax/convert/electra.py) and its generator as OUT/generator
(ElectraForMaskedLM), each with the same tokenizer files. A fine-tuned model (`bertjax
finetune`'s SEED_DIR/model) exports as its task's class, BertForSequenceClassification,
BertForTokenClassification or BertForQuestionAnswering (RobertaPreLayerNorm's for a pre-LN
encoder), with its labels in config.json (bertjax/convert/task_heads.py). A rotary-position
model exports as RoFormerForMaskedLM (bertjax/convert/roformer.py; fine-tuned: RoFormer's
token-classification and question-answering classes), one with factorised embeddings
(`embedding_size`) as ElectraForMaskedLM (fine-tuned: Electra's token-classification and
question-answering classes).

Only parameters are read from the checkpoint, as host arrays; a checkpoint written by a sharded
multi-device run is gathered whole, whatever mesh wrote it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from etils import epath

from bertjax import checkpoint_compatibility, checkpointing, paths
from bertjax.convert import (
    electra,
    hf,
    model_dir,
    prelayernorm,
    roformer,
    sentencepiece_hf,
    task_heads,
    weight_files,
)
from bertjax.data import lookups, vocab_files
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, unstack_layers

ELECTRA_GENERATOR_DIR = "generator"  # an ELECTRA export's ElectraForMaskedLM, inside OUT

# What transformers reads from a model directory: one an export does not write itself, left by an
# earlier export or download (tokenizer.json after a SentencePiece run, a checkpoint of another
# format), would be loaded with it (`_refuse_leftovers`).
HF_DIRECTORY_FILES = (
    weight_files.SAFETENSORS_FILE, "model.safetensors.index.json", "pytorch_model.bin",
    "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack", "config.json",
    "generation_config.json", vocab_files.VOCAB_FILE, "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", vocab_files.SENTENCEPIECE_FILE,
    "spiece.model", "vocab.json", "merges.txt",
)  # fmt: skip
WRITTEN_FILES = (weight_files.SAFETENSORS_FILE, "config.json", vocab_files.VOCAB_FILE,
                 "special_tokens_map.json", "tokenizer_config.json")  # fmt: skip
SENTENCEPIECE_FILES = (vocab_files.SENTENCEPIECE_FILE, "tokenizer.json")
# What to load an export with, by the end of its class name, and the pipeline task it serves.
AUTO_CLASSES = {
    "ForSequenceClassification": ("AutoModelForSequenceClassification", "text-classification"),
    "ForTokenClassification": ("AutoModelForTokenClassification", "token-classification"),
    "ForQuestionAnswering": ("AutoModelForQuestionAnswering", "question-answering"),
    "ForMultipleChoice": ("AutoModelForMultipleChoice", None),  # transformers has no pipeline
}
SPECIAL_TOKENS_MAP = {
    "unk_token": lookups.UNK,
    "sep_token": lookups.SEP,
    "pad_token": lookups.PAD,
    "cls_token": lookups.CLS,
    "mask_token": lookups.MASK,
}


@dataclasses.dataclass
class ExportResult:
    workdir: epath.Path
    step: int
    out_dir: Path
    config: BertConfig
    lowercase: bool
    architecture: str = "BertForPreTraining"
    task_kind: str = ""  # a fine-tuned model's (saved once, at step 0): "classification", ...
    untrained_left_out: tuple[str, ...] = ()  # name prefixes of heads import made up

    def lines(self) -> list[str]:
        c = self.config
        auto = "AutoModelForMaskedLM" if c.layer_norm_placement == "pre" else self.architecture
        pipeline = None
        for suffix, (auto_class, task) in AUTO_CLASSES.items():
            if self.architecture.endswith(suffix):
                auto, pipeline = auto_class, task
        what = f"the fine-tuned {self.task_kind} model" if self.task_kind else f"step {self.step}"
        lines = [
            f"Exported {what} of {self.workdir} -> {self.out_dir} ({self.architecture}: "
            f"{c.num_hidden_layers} layers, hidden {c.hidden_size}, vocab {c.vocab_size})",
            f'load it: transformers.{auto}.from_pretrained("{self.out_dir}")',
        ]
        if pipeline:
            lines.append(  # framework: transformers picks TensorFlow when it is installed
                f'or: transformers.pipeline("{pipeline}", model="{self.out_dir}", framework="pt")'
            )
        if self.architecture in (roformer.ARCHITECTURE, electra.MASKED_LM):
            family = self.architecture.removesuffix("ForMaskedLM")
            lines.append(f"left out: the pooler and the next-sentence head ({family} has neither)")
        if self.untrained_left_out:
            parts = ", ".join(hf.OPTIONAL_PARTS[part] for part in self.untrained_left_out)
            lines.append(
                f"left out: {parts}, which `bertjax import` initialised (its source had none) "
                "and nothing trained; transformers initialises them on loading and says so"
            )
        if self.architecture == "ElectraForPreTraining":
            generator = self.out_dir / ELECTRA_GENERATOR_DIR
            lines.append(
                f'the generator: transformers.ElectraForMaskedLM.from_pretrained("{generator}")'
            )
        return lines


def _checked_vocabulary(workdir, vocab_size: int) -> tuple[Path, list[str]]:
    """`workdir`'s vocab.txt and its tokens; UserError where it is missing or not the
    checkpoint's (another size, no [PAD])."""
    vocab_path = workdir / vocab_files.VOCAB_FILE
    if not vocab_path.is_file():
        raise UserError(
            f"{workdir} has no {vocab_files.VOCAB_FILE}; copy the run's vocabulary there"
        )
    vocab = vocab_files.read_vocab(vocab_path)
    if len(vocab) != vocab_size:
        raise UserError(
            f"{vocab_path} ({len(vocab)} tokens) is not the vocabulary of this checkpoint "
            f"(vocab_size {vocab_size}); copy the run's vocab.txt there"
        )
    if lookups.PAD not in vocab:
        raise UserError(
            f"{vocab_path} has no {lookups.PAD} token, which Hugging Face's config names as the "
            "padding id; a BERT vocabulary holds [PAD], [UNK], [CLS], [SEP] and [MASK]"
        )
    return vocab_path, vocab


def export_hf(workdir: str | Path, out_dir: str | Path, *, step: int | None = None) -> ExportResult:
    """Writes the checkpoint of `workdir` at `step` (default: latest) as a Hugging Face BERT
    directory `out_dir` (see the module docstring). `workdir` may be a bucket URI (gs://...);
    `out_dir` is local. Raises UserError on a missing checkpoint, step or vocabulary."""
    paths.require_local(out_dir, "--out")
    workdir, out_dir = paths.as_path(workdir), Path(out_dir).expanduser()
    step, metadata = checkpointing.open_workdir(workdir, step)
    config = model_dir.model_config(metadata)
    vocab_path, vocab = _checked_vocabulary(workdir, config.vocab_size)
    lowercase = model_dir.lowercase(metadata)
    task = model_dir.task_of(metadata)
    objective = metadata.get("model", {}).get("objective")
    if objective == "electra":  # the generator too is read
        checkpoint_compatibility.check_generator_layout(metadata["model"], str(workdir))
    _check_exportable(config, task, objective)  # before anything is read or written
    tokenizer_json = _sentencepiece_tokenizer(vocab_path)  # before anything is written
    _refuse_leftovers(out_dir, tokenizer_json is not None, objective == "electra" and task is None)
    # A scan_layers run saves the encoder stacked; Hugging Face has one module per layer.
    params = unstack_layers(checkpointing.restore_params(workdir, step))
    pad_token_id = vocab.index(lookups.PAD)
    fraction = metadata.get("model", {}).get("generator_hidden_fraction")
    if task is not None:
        tensors = task_heads.tensors(params, config, task, pad_token_id=pad_token_id)
        hf_config = task_heads.hf_config(config, task, pad_token_id=pad_token_id)
    elif objective == "electra":
        params["generator"] = unstack_layers({"bert": params["generator"]})["bert"]
        generator_dir = out_dir / ELECTRA_GENERATOR_DIR
        _write_model_dir(
            generator_dir,
            electra.generator_tensors(params),
            electra.hf_config(
                config, pad_token_id=pad_token_id, generator_hidden_fraction=fraction
            ),
            vocab_path,
            lowercase,
            config,
            tokenizer_json,
        )
        tensors = electra.discriminator_tensors(params)
        hf_config = electra.hf_config(config, pad_token_id=pad_token_id)
    elif config.position_embedding_type == "rotary":
        tensors = roformer.tensors_from_bert(hf.params_to_hf(params), config)
        hf_config = roformer.hf_config(config, pad_token_id=pad_token_id)
    elif config.embedding_width != config.hidden_size:  # post-LN: pre-LN was refused
        tensors = electra.masked_lm_tensors(hf.params_to_hf(params))
        hf_config = electra.hf_config(config, pad_token_id=pad_token_id)
        hf_config["architectures"] = [electra.MASKED_LM]
    elif config.layer_norm_placement == "pre":
        tensors = prelayernorm.tensors_from_bert(hf.params_to_hf(params), pad_token_id=pad_token_id)
        hf_config = prelayernorm.hf_config(config, pad_token_id=pad_token_id)
    else:
        tensors = hf.params_to_hf(params)
        hf_config = hf.hf_config(config, pad_token_id=pad_token_id)
    tensors, left_out = _without_untrained(tensors, metadata)
    _write_model_dir(out_dir, tensors, hf_config, vocab_path, lowercase, config, tokenizer_json)
    architecture, kind = hf_config["architectures"][0], (task or {}).get("kind", "")
    return ExportResult(
        workdir, step, out_dir, config, lowercase, architecture, kind, tuple(left_out)
    )


def _without_untrained(tensors: dict, metadata: dict) -> tuple[dict, list[str]]:
    """`tensors` less the heads `bertjax import` made up for a source without them, and their
    name prefixes: transformers then initialises them itself and says so, as for the source."""
    untrained = tuple(model_dir.untrained_parts(metadata))
    left_out = [part for part in untrained if any(name.startswith(part) for name in tensors)]
    kept = {n: t for n, t in tensors.items() if not any(n.startswith(p) for p in untrained)}
    return kept, left_out


def _check_exportable(config: BertConfig, task: dict | None, objective: str | None) -> None:
    """UserError for a model no Hugging Face class computes."""
    if task is not None:
        task_heads.check_exportable(task, config)
    elif objective == "electra":
        electra.check_exportable(config)
    elif config.position_embedding_type == "rotary":
        roformer.check_exportable(config)
    elif config.layer_norm_placement == "pre":
        hf.check_unfactorised(config, "RobertaPreLayerNorm")


def _refuse_leftovers(out_dir: Path, sentencepiece: bool, generator: bool) -> None:
    """UserError when `out_dir` (or its generator folder) holds Hugging Face files this export
    would not overwrite, e.g. a SentencePiece run's tokenizer.json, which transformers would
    read in place of this export's vocab.txt. Nothing is written before."""
    written = WRITTEN_FILES + (SENTENCEPIECE_FILES if sentencepiece else ())
    leftovers = [name for name in HF_DIRECTORY_FILES if name not in written]
    consequence = "transformers would load as part of this export"
    stale_generator = [] if generator else [ELECTRA_GENERATOR_DIR]
    paths.refuse_leftovers(out_dir, leftovers + stale_generator, "--out", consequence)
    if generator:
        paths.refuse_leftovers(out_dir / ELECTRA_GENERATOR_DIR, leftovers, "--out", consequence)


def _sentencepiece_tokenizer(vocab_path: epath.Path):
    """The `tokenizers.Tokenizer` of a SentencePiece run's vocabulary (its sentencepiece.model
    beside vocab.txt), None for WordPiece."""
    model_path = vocab_path.parent / vocab_files.SENTENCEPIECE_FILE
    return sentencepiece_hf.unigram_tokenizer(model_path) if model_path.is_file() else None


def _write_model_dir(
    out_dir: Path,
    tensors: dict,
    hf_config: dict,
    vocab_path: epath.Path,
    lowercase: bool,
    config,
    tokenizer_json=None,
) -> None:
    """A Hugging Face model directory: weights, config.json, vocabulary and tokenizer files
    (BertTokenizer's, or with `tokenizer_json`, a SentencePiece run's, tokenizer.json)."""
    paths.make_local_dir(out_dir, "--out")
    weight_files.write_safetensors(tensors, out_dir / weight_files.SAFETENSORS_FILE)
    _write_json(out_dir / "config.json", hf_config)
    (out_dir / vocab_files.VOCAB_FILE).write_bytes(vocab_path.read_bytes())  # local or gs://
    _write_json(out_dir / "special_tokens_map.json", SPECIAL_TOKENS_MAP)
    if tokenizer_json is not None:
        model_file = vocab_files.SENTENCEPIECE_FILE
        (out_dir / model_file).write_bytes((vocab_path.parent / model_file).read_bytes())
        tokenizer_json.save(str(out_dir / "tokenizer.json"))
        settings = {"tokenizer_class": "PreTrainedTokenizerFast"}  # the casing is in the model
    else:
        settings = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": lowercase,
            "strip_accents": None,
            "tokenize_chinese_chars": True,
        }
    settings |= {"model_max_length": config.max_position_embeddings, **SPECIAL_TOKENS_MAP}
    _write_json(out_dir / "tokenizer_config.json", settings)


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
