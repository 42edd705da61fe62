"""Tests for the attention backends: 'auto' selection (bertjax/models/attention.py) and the splash
kernel (bertjax/models/splash.py), run on CPU in Pallas interpret mode against the plain path."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bertjax import config as base_config
from bertjax.errors import UserError
from bertjax.models import splash
from bertjax.models.attention import (
    choose_attention_implementation,
    cudnn_mask_arguments,
    explicit_attention,
    fused_attention,
    padding_mask,
)
from bertjax.models.bert import BertConfig, BertModel
from bertjax.sharding import create_mesh

BATCH, LENGTH, HEADS, HEAD_SIZE = 2, 128, 2, 32  # the smallest splash block is 128 tokens
ATOL = 1e-5  # float32: splash's online softmax against the plain one


@pytest.fixture
def interpret(monkeypatch):
    """Runs the splash kernel in Pallas interpret mode (any backend, slow)."""
    monkeypatch.setattr(splash, "INTERPRET", True)


def qkv(seed: int = 0, shape=(BATCH, LENGTH, HEADS, HEAD_SIZE)) -> list[jax.Array]:
    return [jax.random.normal(key, shape) for key in jax.random.split(jax.random.key(seed), 3)]


def padded_mask(lengths=(128, 77)) -> jax.Array:
    """Key padding mask [B, 1, 1, L], padding a suffix of each row."""
    return padding_mask(jnp.arange(LENGTH)[None, :] < jnp.asarray(lengths)[:, None])


def packed_mask() -> jax.Array:
    """The mask BertModel builds for packed rows: documents 1, 2, ... and padding (0) last."""
    documents = np.zeros((BATCH, LENGTH), np.int32)
    documents[0, :50], documents[0, 50:120] = 1, 2
    documents[1, :30], documents[1, 30:31], documents[1, 31:] = 1, 2, 3
    documents = jnp.asarray(documents)
    same = documents[:, None, :, None] == documents[:, None, None, :]
    return padding_mask(documents > 0) & same


def seeing_rows(mask: jax.Array) -> np.ndarray:
    """[B, L] True where the query row sees some key (padding of packed rows sees none)."""
    return np.asarray(mask).any(axis=3)[:, 0] | np.zeros(mask.shape[0:1] + (LENGTH,), bool)


@pytest.mark.parametrize(
    "backend, head_dim, seq_len, dtype, expected",
    [
        ("cpu", 64, 128, jnp.bfloat16, "xla"),
        ("gpu", 64, 128, jnp.bfloat16, "cudnn"),
        ("gpu", 64, 512, jnp.float16, "cudnn"),
        ("gpu", 64, 128, jnp.float32, "xla"),  # cuDNN flash attention is bf16/fp16 only
        ("gpu", 160, 128, jnp.bfloat16, "xla"),  # head dim above 128 (256 needs Hopper)
        ("gpu", 36, 128, jnp.bfloat16, "xla"),  # head dim not a multiple of 8
        ("gpu", 64, 127, jnp.bfloat16, "xla"),  # odd length: cuDNN refuses a bias in training
        ("rocm", 64, 128, jnp.bfloat16, "xla"),
        ("tpu", 64, 512, jnp.float32, "splash"),
        ("tpu", 64, 384, jnp.bfloat16, "splash"),
        ("tpu", 64, 100, jnp.bfloat16, "xla"),  # not a multiple of 128
    ],
)
def test_auto_choice(backend, head_dim, seq_len, dtype, expected):
    chosen = choose_attention_implementation(
        backend, head_dim=head_dim, seq_len=seq_len, dtype=dtype
    )
    assert chosen == expected


def test_auto_is_the_default_and_is_xla_on_cpu():
    assert BertConfig(vocab_size=10).attention_implementation == "auto"
    assert BertConfig.from_config(base_config.defaults(), 10).attention_implementation == "auto"
    q, k, v = qkv()
    mask = padded_mask()
    auto = fused_attention(q, k, v, mask, implementation="auto")
    np.testing.assert_array_equal(auto, fused_attention(q, k, v, mask, implementation="xla"))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"attention_implementation": "flash"}, "attention_implementation 'flash'"),
        ({"attention_implementation": "cudnn"}, "needs dtype bfloat16 or float16"),
    ],
)
def test_config_refuses(fields, message):
    with pytest.raises(UserError, match=message):
        BertConfig(vocab_size=10, **fields).validate()
    BertConfig(vocab_size=10, attention_implementation="splash").validate()
    BertConfig(vocab_size=10, attention_implementation="cudnn", dtype="bfloat16").validate()


def test_cudnn_refused_off_gpu():
    q, k, v = qkv()
    with pytest.raises(UserError, match="needs an NVIDIA GPU"):
        fused_attention(q, k, v, padded_mask(), implementation="cudnn")


@pytest.mark.parametrize("make_mask", [padded_mask, packed_mask])
def test_cudnn_mask_arguments_mean_the_same(make_mask):
    """cuDNN gets key lengths for a padding mask: the same attention (checked on XLA here)."""
    q, k, v = qkv()
    mask = make_mask()
    arguments = cudnn_mask_arguments(mask)
    assert ("key_value_seq_lengths" in arguments) == (mask.shape[2] == 1)
    out = jax.nn.dot_product_attention(q, k, v, implementation="xla", **arguments)
    np.testing.assert_allclose(out, explicit_attention(q, k, v, mask), atol=1e-6)


@pytest.mark.parametrize("make_mask", [padded_mask, packed_mask])
def test_segment_ids_reproduce_the_mask(make_mask):
    mask = np.broadcast_to(make_mask()[:, 0], (BATCH, LENGTH, LENGTH))
    query_ids, key_ids = splash.mask_segment_ids(make_mask())
    rebuilt = np.asarray(query_ids[:, :, None] == key_ids[:, None, :])
    seeing = seeing_rows(make_mask())  # rows that see some key: exactly the mask
    np.testing.assert_array_equal(rebuilt[seeing], mask[seeing])
    # Rows that see nothing (padding of packed rows) see the keys no row sees, never a real one.
    examples, _ = np.nonzero(~seeing)
    blind, seen_keys = rebuilt[~seeing], mask.any(axis=1)[examples]
    assert blind.any(axis=1).all() and not (blind & seen_keys).any()


def test_splash_refusals():
    q, k, v = qkv()
    with pytest.raises(UserError, match="runs only on TPU"):
        splash.splash_attention(q, k, v, padded_mask())
    with pytest.raises(UserError, match="multiple of 128, got 64"):
        splash.check_splash("tpu", 64)
    assert [splash.splash_block_size(n) for n in (128, 384, 512, 1024, 200)] == [
        128, 128, 512, 512, None
    ]  # fmt: skip


@pytest.mark.parametrize("make_mask", [padded_mask, packed_mask])
def test_splash_equals_plain_attention(interpret, make_mask):
    """Outputs at every row that sees a key; gradients of a loss that, like the model's, reads
    only those rows (padding rows of packed rows see nothing: their output is unused)."""
    q, k, v = qkv()
    mask = make_mask()
    seeing = seeing_rows(mask)
    out = fused_attention(q, k, v, mask, implementation="splash")
    plain = explicit_attention(q, k, v, mask)
    np.testing.assert_allclose(np.asarray(out)[seeing], np.asarray(plain)[seeing], atol=ATOL)

    def loss(attention, q, k, v):
        weights = jnp.cos(jnp.arange(q.size, dtype=jnp.float32)).reshape(q.shape)
        return jnp.sum(attention(q, k, v, mask) * weights * seeing[:, :, None, None])

    splash_loss = lambda q, k, v: loss(splash.splash_attention, q, k, v)  # noqa: E731
    plain_loss = lambda q, k, v: loss(explicit_attention, q, k, v)  # noqa: E731
    splash_grads = jax.grad(splash_loss, argnums=(0, 1, 2))(q, k, v)
    plain_grads = jax.grad(plain_loss, argnums=(0, 1, 2))(q, k, v)
    for got, want in zip(splash_grads, plain_grads, strict=True):
        np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.multi_device
def test_splash_under_a_mesh(interpret):
    """Batch over data×fsdp and heads over tensor: shard_map around the kernel, same numbers."""
    mesh = create_mesh({"data": 2, "fsdp": 1, "tensor": 2}, jax.devices()[:4])
    rules = [tuple(rule) for rule in base_config.defaults().logical_axis_rules]
    q, k, v = qkv(shape=(4, LENGTH, HEADS, HEAD_SIZE))
    mask = jnp.concatenate([jnp.broadcast_to(padded_mask(), packed_mask().shape), packed_mask()])

    @jax.jit
    def run(q, k, v, mask):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
            return splash.splash_attention(q, k, v, mask)

    batch_split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    out = run(*jax.device_put((q, k, v, mask), batch_split))
    seeing = seeing_rows(mask)
    plain = explicit_attention(q, k, v, mask)
    np.testing.assert_allclose(np.asarray(out)[seeing], np.asarray(plain)[seeing], atol=ATOL)
    sequence_rules = [*rules[:1], ("length", "tensor"), *rules[2:]]
    with pytest.raises(UserError, match="shards only 'batch' and 'heads'"):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            with nn.logical_axis_rules(sequence_rules):
                splash.splash_attention(q, k, v, mask)


@pytest.mark.parametrize(("packed", "positions"),
                         [(False, "absolute"), (True, "absolute"), (True, "rotary")])  # fmt: skip
def test_bert_model_with_splash_equals_default(interpret, packed, positions):
    """The splash kernel takes rotary positions (no bias), relative_key ones it refuses."""
    config = BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=HEADS,
        intermediate_size=128, max_position_embeddings=LENGTH, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, position_embedding_type=positions,
    )  # fmt: skip
    lengths = np.array([LENGTH, 90])
    input_mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.int32)
    ids = np.random.default_rng(0).integers(5, 100, (BATCH, LENGTH)).astype(np.int32) * input_mask
    documents = jnp.asarray(np.where(np.arange(LENGTH) < 40, 1, 2) * input_mask) if packed else None
    inputs = (jnp.asarray(ids), jnp.zeros_like(ids), jnp.asarray(input_mask))

    def sequence_output(implementation):
        chosen = dataclasses.replace(config, attention_implementation=implementation)
        model = BertModel(chosen, rngs=nnx.Rngs(0))
        return model(*inputs, attention_segment_ids=documents)["sequence_output"]

    real = input_mask.astype(bool)
    np.testing.assert_allclose(
        np.asarray(sequence_output("splash"))[real], np.asarray(sequence_output("auto"))[real],
        atol=ATOL,
    )  # fmt: skip


@pytest.fixture
def cudnn_lowering(monkeypatch):
    """Lets the cuDNN path trace on this CPU-only machine: bertjax sees a GPU backend and jax's
    cuDNN version and compute-capability checks pass (private names: skips if they moved)."""
    from jax._src.cudnn import fused_attention_stablehlo as cudnn

    from bertjax.models import attention

    for name in ("check_cudnn_version", "check_compute_capability"):
        if not hasattr(cudnn, name):
            pytest.skip(f"jax {jax.__version__} has no {name} to stand in for the GPU")
        monkeypatch.setattr(cudnn, name, lambda *args, **kwargs: True)
    monkeypatch.setattr(attention, "backend_name", lambda: "gpu")


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("positions", ["absolute", "relative_key", "rotary"])
def test_the_cudnn_training_step_lowers_for_cuda(cudnn_lowering, packed, positions):
    """The model's forward and backward with cuDNN attention, bf16, lowered for CUDA on this CPU
    machine: jax's cuDNN checks of shapes, masks and bias run at trace time, so API drift or a
    refused case fails here rather than on a GPU. Relative positions send a [B, N, L, L] bias
    whose gradient cuDNN must return; rotary ones, like absolute ones, none."""
    config = BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=1, num_attention_heads=HEADS,
        intermediate_size=128, max_position_embeddings=LENGTH, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, dtype="bfloat16", attention_implementation="cudnn",
        position_embedding_type=positions, use_cpu_kernels=False,
    )  # fmt: skip
    input_mask = (np.arange(LENGTH)[None, :] < np.array([[LENGTH], [90]])).astype(np.int32)
    documents = jnp.asarray(np.where(np.arange(LENGTH) < 40, 1, 2) * input_mask) if packed else None
    ids = jnp.asarray(np.full((BATCH, LENGTH), 7, np.int32) * input_mask)
    graphdef, params = nnx.split(BertModel(config, rngs=nnx.Rngs(0)), nnx.Param)

    def loss(params):
        model = nnx.merge(graphdef, params)
        out = model(ids, jnp.zeros_like(ids), jnp.asarray(input_mask),
                    attention_segment_ids=documents)["sequence_output"]  # fmt: skip
        return jnp.sum(out.astype(jnp.float32))

    lowered = jax.jit(jax.grad(loss)).trace(params).lower(lowering_platforms=("cuda",))
    calls = [line for line in lowered.as_text().splitlines() if "custom_call @" in line]
    targets = {line.split("custom_call @")[1].split("(")[0].strip('"') for line in calls}
    with_bias = packed or positions == "relative_key"  # a packed mask goes to cuDNN as a bias
    forward = "__cudnn$fmhaScaleBiasSoftmax" if with_bias else "__cudnn$fmhaSoftmax"
    assert {forward, forward + "Backward"} <= targets, targets
