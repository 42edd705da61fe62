"""Helpers of the conversion tests: tiny models and vocabularies, task sentences, torch calls."""

import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from bertjax.convert import hf, weight_files
from bertjax.models.bert import BertConfig, create_model

TASKS = Path(__file__).resolve().parents[3] / "shared" / "data" / "tasks"
# Parity bound between bertjax and transformers (fp32, CPU), absolute.
ATOL = 1e-4


def tiny_config(vocab_size: int = 300, **overrides) -> BertConfig:
    fields = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=40,
    )
    fields.update(overrides)
    return BertConfig(**fields)


def tiny_vocab(size: int) -> list[str]:
    """[PAD] [unused0] [UNK] [CLS] [SEP] [MASK] then made-up words: special ids are not 0..4."""
    words = [f"w{i}" for i in range(size - 6)]
    return ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]


def random_params(config: BertConfig, seed: int) -> dict:
    """BertForPreTraining parameters with every leaf randomised (biases and LayerNorms too), so
    a wrong name, transpose or reshape anywhere changes the outputs."""
    abstract = nnx.state(nnx.eval_shape(lambda: create_model(config, 0)), nnx.Param)
    leaves, treedef = jax.tree.flatten(abstract.to_pure_dict())
    rng = np.random.default_rng(seed)
    scales = [0.2 if leaf.ndim > 1 else 0.5 for leaf in leaves]
    values = [
        (rng.normal(size=leaf.shape) * scale + (leaf.ndim == 1) * 0.1).astype(np.float32)
        for leaf, scale in zip(leaves, scales, strict=True)
    ]
    return jax.tree.unflatten(treedef, values)


def write_hf_dir(
    directory: Path, params: dict, config: BertConfig, vocab: list[str], *, drop=("cls.",)
) -> Path:
    """A Hugging Face BERT directory without the tensors whose names start with `drop`
    (by default BertModel's weights, under BertForPreTraining's names)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v for k, v in hf.params_to_hf(params).items() if not k.startswith(drop)}
    weight_files.write_safetensors(tensors, directory / weight_files.SAFETENSORS_FILE)
    fields = hf.hf_config(config, pad_token_id=0)
    (directory / "config.json").write_text(json.dumps(fields))
    (directory / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    return directory


def task_sentences() -> list[str]:
    """Every sentence of MR (text) and RTE (text_a, text_b), all splits; [] when absent."""
    sentences = []
    for path in sorted((TASKS / "mr").glob("*.jsonl")):
        sentences += [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    for path in sorted((TASKS / "rte").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            sentences += [record["text_a"], record["text_b"]]
    return sentences


def torch_outputs(model, input_ids, segment_ids, input_mask, **kwargs):
    """Runs a transformers model in eval mode, fp32, no grad, on numpy inputs."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(np.asarray(input_ids), dtype=torch.long),
            token_type_ids=torch.tensor(np.asarray(segment_ids), dtype=torch.long),
            attention_mask=torch.tensor(np.asarray(input_mask), dtype=torch.long),
            **kwargs,
        )


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
