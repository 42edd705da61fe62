"""`BertConfig`: the architecture and compute settings of a BERT, with its checks.

Field names follow Hugging Face's `BertConfig` (config.json reads and writes as they are), plus
bertjax's compute settings: `dtype`, `attention_implementation`, `remat_policy`, `scan_layers`,
`use_cpu_kernels`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax

from bertjax import specs
from bertjax.errors import UserError

if TYPE_CHECKING:
    import ml_collections

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
# What training (pretraining and fine-tuning) runs in: float16 would need loss scaling.
TRAINING_DTYPES = ("float32", "bfloat16")
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash", None)
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
}
LAYER_NORM_PLACEMENTS = ("post", "pre")
POSITION_EMBEDDING_TYPES = ("absolute", "relative_key", "rotary")
POSITION_EMBEDDING_INITS = ("normal", "sinusoidal", "local")
ATTENTION_INITS = ("normal", "mimetic")
SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
SIZE_FIELDS += ("intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyperparameters, named as in the paper's / Hugging Face's `BertConfig`."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    # Width of the token, position and segment embeddings; 0 means hidden_size. Another width
    # factorises them (ALBERT, Lan et al. 2019; ELECTRA-Small's 128 for hidden 256): a projection
    # to hidden_size after them (`bert/embeddings_project`, Hugging Face Electra's and RoFormer's
    # name) and an MLM head that maps back to the narrower tied table (hidden -> embedding_size).
    embedding_size: int = 0
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    dtype: str = "float32"  # compute dtype of activations and matmuls; parameters stay float32
    # Attention kernel: "auto" picks from the backend at trace time (cuDNN flash attention on
    # NVIDIA GPUs in bf16/fp16, the Pallas splash kernel on TPU, XLA otherwise); "xla" (or None),
    # "cudnn" and "splash" force one (bertjax/models/attention.py, bertjax/models/splash.py).
    attention_implementation: str | None = "auto"
    # The CPU variants of dropout, the dense matmuls and the vocabulary bias
    # (bertjax/models/cpu_kernels.py): None takes them when the default backend is the CPU
    # (decided at trace time) and the plain library operations elsewhere; True/False force them.
    use_cpu_kernels: bool | None = None
    # Rematerialisation of each encoder layer in the backward pass: "none" keeps activations,
    # "full" recomputes the whole layer, "dots_saveable" keeps matmul outputs only.
    remat_policy: str = "none"
    # Apply the encoder layers with nnx.scan over stacked parameters (compile time independent of
    # depth); export and import convert to and from Hugging Face's per-layer layout.
    scan_layers: bool = False
    # Where each block normalises: "post" (BERT: LayerNorm after each residual add) or "pre"
    # (LayerNorm before attention and feed-forward, plus one after the last layer; the layout of
    # Hugging Face's RobertaPreLayerNorm, stable at the high learning rates small budgets need).
    layer_norm_placement: str = "post"
    # How attention knows positions, named as Hugging Face's BertConfig names it: "absolute"
    # (BERT: a learned position table added to the embeddings) or "relative_key" (Shaw et al.
    # 2018 / Huang et al. 2020: each layer learns a vector per query-key distance, and the query's
    # dot product with it is added to the attention logits; no position table) or "rotary"
    # (RoFormer's RoPE, Su et al. 2021: queries and keys rotated by position, no parameters;
    # bertjax/models/positions.py).
    position_embedding_type: str = "absolute"
    # Rotary positions only: pair i of a head turns by position * rope_theta^(-2i / head_size)
    # (10000 as in RoFormer; larger values turn slower, for longer sequences).
    rope_theta: float = 10000.0
    # Initial values of the position parameters: "normal" (BERT: N(0, initializer_range));
    # "sinusoidal" (absolute only: Vaswani et al.'s table scaled to the same per-entry RMS);
    # "local" (relative_key only: the distance vectors and query biases start as an ALiBi-like
    # bias -slope_h * |i - j| per head, so every head attends nearby from the first step).
    position_embedding_init: str = "normal"
    # Initial attention weights: "normal" (BERT: N(0, initializer_range)) or "mimetic"
    # (Trockman & Kolter 2023: query/key products near the identity, value/output near minus it).
    attention_init: str = "normal"

    @property
    def embedding_width(self) -> int:
        """The width of the embedding tables: `embedding_size`, or hidden_size when it is 0."""
        return self.embedding_size or self.hidden_size

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, vocab_size: int) -> BertConfig:
        """Builds and validates a BertConfig from a run config; absent fields keep defaults."""
        kwargs = specs.config_fields(cls, config, skip=("vocab_size",))
        return cls(vocab_size=vocab_size, **kwargs).validate()

    def validate(self) -> BertConfig:
        """Raises UserError (one line: what is wrong, how to fix) on impossible settings."""
        self._validate_sizes()
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise UserError(f"{name}={value!r} must be in [0, 1); e.g. --config.{name}=0.1")
        for name in ("initializer_range", "layer_norm_eps"):
            if not getattr(self, name) > 0:
                raise UserError(
                    f"{name}={getattr(self, name)!r} must be positive; fix --config.{name}"
                )
        if self.layer_norm_placement not in LAYER_NORM_PLACEMENTS:
            raise UserError(
                f"layer_norm_placement {self.layer_norm_placement!r} is not supported; use one of "
                f"{LAYER_NORM_PLACEMENTS}"
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise UserError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; use "
                f"one of {POSITION_EMBEDDING_TYPES}"
            )
        if self.position_embedding_init not in POSITION_EMBEDDING_INITS:
            raise UserError(
                f"position_embedding_init {self.position_embedding_init!r} is not supported; use "
                f"one of {POSITION_EMBEDDING_INITS}"
            )
        self._validate_position_init()
        if self.position_embedding_type == "rotary":
            self._validate_rotary()
        if self.attention_init not in ATTENTION_INITS:
            raise UserError(
                f"attention_init {self.attention_init!r} is not supported; use one of "
                f"{ATTENTION_INITS}"
            )
        if self.dtype not in COMPUTE_DTYPES:
            raise UserError(f"dtype={self.dtype!r} is not supported; use one of {COMPUTE_DTYPES}")
        if self.remat_policy not in REMAT_POLICIES:
            raise UserError(
                f"remat_policy={self.remat_policy!r} is not one of {tuple(REMAT_POLICIES)}"
            )
        if self.attention_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise UserError(
                f"attention_implementation {self.attention_implementation!r} is not supported; "
                f"use one of {ATTENTION_IMPLEMENTATIONS}"
            )
        if not (self.use_cpu_kernels is None or isinstance(self.use_cpu_kernels, bool)):
            raise UserError(
                f"use_cpu_kernels={self.use_cpu_kernels!r} must be None (from the backend), "
                "True or False"
            )
        if self.attention_implementation == "cudnn" and self.dtype == "float32":
            raise UserError(
                "attention_implementation='cudnn' needs dtype bfloat16 or float16 (cuDNN flash "
                "attention has no float32 kernel); set --config.dtype=bfloat16 or use 'auto'"
            )
        return self

    def _validate_sizes(self) -> None:
        for name in SIZE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(
                    f"{name} must be positive (an integer), not {value!r}; fix --config.{name}"
                )
        size = self.embedding_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UserError(
                f"embedding_size must be 0 (the hidden size) or positive, not {size!r}; fix "
                "--config.embedding_size"
            )
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; choose a head count that divides hidden_size"
            )

    def _validate_position_init(self) -> None:
        inits = {"absolute": ("normal", "sinusoidal"), "relative_key": ("normal", "local"),
                 "rotary": ("normal",)}[self.position_embedding_type]  # fmt: skip
        if self.position_embedding_init not in inits:
            raise UserError(
                f"position_embedding_init={self.position_embedding_init!r} does not apply to "
                f"position_embedding_type={self.position_embedding_type!r}; use "
                f"{' or '.join(inits)}"
            )

    def _validate_rotary(self) -> None:
        head_size = self.hidden_size // self.num_attention_heads
        if head_size % 2:
            raise UserError(
                f"rotary positions turn pairs of head components, and the head size "
                f"hidden_size / num_attention_heads = {head_size} is odd; choose an even one"
            )
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, int | float) or not theta > 1:
            raise UserError(f"rope_theta={theta!r} must be a number above 1, e.g. 10000.0")
