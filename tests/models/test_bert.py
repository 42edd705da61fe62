"""Tests for bertjax/models/{bert,attention}.py: sizes, masking, dropout, dtypes, jit."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from bertjax.errors import UserError
from bertjax.models import encoder
from bertjax.models.attention import explicit_attention, fused_attention, padding_mask
from bertjax.models.bert import BertConfig, count_parameters, create_model

TINY = BertConfig(
    vocab_size=1000,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=512,
    max_position_embeddings=64,
)
BATCH, LENGTH, PREDICTIONS = 3, 16, 4
REAL_LENGTHS = (16, 11, 7)  # tokens per example before padding

AXIS_NAMES = {"vocab", "embed", "position", "type_vocab", "norm", "heads", "kv", "mlp", "classes"}


def tiny_batch(seed: int = 0) -> dict[str, jax.Array]:
    """A [B, L] batch with suffix padding and masked positions inside the real tokens."""
    rng = np.random.default_rng(seed)
    input_mask = np.zeros((BATCH, LENGTH), np.int32)
    segment_ids = np.zeros((BATCH, LENGTH), np.int32)
    positions = np.zeros((BATCH, PREDICTIONS), np.int32)
    for row, length in enumerate(REAL_LENGTHS):
        input_mask[row, :length] = 1
        segment_ids[row, length // 2 : length] = 1
        positions[row] = rng.choice(np.arange(1, length), PREDICTIONS, replace=False)
    input_ids = rng.integers(5, TINY.vocab_size, (BATCH, LENGTH)).astype(np.int32) * input_mask
    return {
        "input_ids": jnp.asarray(input_ids),
        "segment_ids": jnp.asarray(segment_ids),
        "input_mask": jnp.asarray(input_mask),
        "masked_lm_positions": jnp.asarray(positions),
    }


@pytest.fixture(scope="module")
def model():
    return create_model(TINY, seed=0)


@pytest.mark.parametrize(
    "layers, hidden, heads, intermediate, embedding, encoder_count, pretraining_count",
    [
        (12, 768, 12, 3072, 0, 109_482_240, 110_106_428),
        (24, 1024, 16, 4096, 0, 335_141_888, 336_226_108),
        # ELECTRA-Small's shape: transformers' ElectraModel has 13,483,008 parameters and its
        # ElectraForMaskedLM (the same MLM head) 13,546,682; plus BERT's pooler (65,792) and
        # next-sentence head (514).
        (12, 256, 4, 1024, 128, 13_548_800, 13_612_988),
    ],
)
def test_parameter_counts_match_hugging_face(
    layers, hidden, heads, intermediate, embedding, encoder_count, pretraining_count
):
    config = BertConfig(30522, hidden, layers, heads, intermediate, embedding_size=embedding)
    abstract = nnx.eval_shape(lambda: create_model(config, seed=0))
    assert count_parameters(abstract.bert) == encoder_count
    assert count_parameters(abstract) == pretraining_count
    assert count_parameters(nnx.state(abstract, nnx.Param)) == pretraining_count


def test_output_shapes_and_dtypes(model):
    batch = tiny_batch()
    outputs = model(**batch)
    assert outputs["mlm_logits"].shape == (BATCH, PREDICTIONS, TINY.vocab_size)
    assert outputs["nsp_logits"].shape == (BATCH, 2)
    assert outputs["mlm_logits"].dtype == outputs["nsp_logits"].dtype == jnp.float32
    encoded = model.encode(batch["input_ids"], batch["segment_ids"], batch["input_mask"])
    assert encoded["sequence_output"].shape == (BATCH, LENGTH, TINY.hidden_size)
    assert encoded["pooled_output"].shape == (BATCH, TINY.hidden_size)
    assert len(encoded["hidden_states"]) == TINY.num_hidden_layers + 1
    np.testing.assert_array_equal(encoded["hidden_states"][-1], encoded["sequence_output"])
    every = model.mlm_logits_all(batch["input_ids"], batch["segment_ids"], batch["input_mask"])
    assert every.shape == (BATCH, LENGTH, TINY.vocab_size) and every.dtype == jnp.float32
    gathered = np.take_along_axis(np.asarray(every), batch["masked_lm_positions"][..., None], 1)
    np.testing.assert_allclose(gathered, outputs["mlm_logits"], atol=1e-5)


def test_padded_tokens_change_nothing(model):
    batch = tiny_batch()
    noisy = dict(batch)
    random_ids = jax.random.randint(jax.random.key(7), (BATCH, LENGTH), 5, TINY.vocab_size)
    noisy["input_ids"] = jnp.where(batch["input_mask"] == 1, batch["input_ids"], random_ids)
    assert not np.array_equal(noisy["input_ids"], batch["input_ids"])
    clean_out, noisy_out = model(**batch), model(**noisy)
    for name in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(noisy_out[name], clean_out[name], atol=1e-6)
    args = ("input_ids", "segment_ids", "input_mask")
    clean = model.encode(*(batch[k] for k in args))
    noisy_enc = model.encode(*(noisy[k] for k in args))
    real = np.asarray(batch["input_mask"], bool)
    np.testing.assert_allclose(
        np.asarray(noisy_enc["sequence_output"])[real],
        np.asarray(clean["sequence_output"])[real],
        atol=1e-6,
    )
    np.testing.assert_allclose(noisy_enc["pooled_output"], clean["pooled_output"], atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_fused_attention_equals_explicit(dtype, atol):
    heads, head_size = 4, 32
    q, k, v = (
        jax.random.normal(key, (BATCH, LENGTH, heads, head_size), dtype)
        for key in jax.random.split(jax.random.key(0), 3)
    )
    mask = padding_mask(tiny_batch()["input_mask"])
    fused = fused_attention(q, k, v, mask)
    explicit = explicit_attention(q, k, v, mask)
    assert fused.dtype == explicit.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(fused, np.float32), np.asarray(explicit, np.float32), atol=atol
    )


def test_attention_dropout_only_with_key():
    q = k = v = jax.random.normal(jax.random.key(1), (2, 8, 2, 16))
    mask = jnp.ones((2, 1, 1, 8), bool)
    plain = explicit_attention(q, k, v, mask, dropout_rate=0.5)
    np.testing.assert_allclose(plain, fused_attention(q, k, v, mask), atol=1e-5)
    dropped = explicit_attention(q, k, v, mask, dropout_rate=0.5, dropout_key=jax.random.key(2))
    assert not np.allclose(plain, dropped)


def test_dropout_is_keyed(model):
    batch = tiny_batch()

    def run(key=None):
        if key is None:
            return model(**batch)["mlm_logits"]
        rngs = nnx.Rngs(dropout=jax.random.key(key))
        return model(**batch, deterministic=False, rngs=rngs)["mlm_logits"]

    np.testing.assert_array_equal(run(), run())
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))
    assert not np.allclose(run(1), run())
    with pytest.raises(ValueError, match="rngs"):
        model(**batch, deterministic=False)


def test_every_parameter_has_logical_axes(model):
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    paths = {"/".join(map(str, path)) for path in flat}
    for path, variable in flat.items():
        axes = variable.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == variable[...].ndim, path
        assert set(axes) <= AXIS_NAMES, path
        assert len(set(axes)) == len(axes), path
    for expected in (
        "bert/embeddings/word_embeddings/embedding",
        "bert/embeddings/LayerNorm/scale",
        "bert/encoder/layer/0/attention/self/query/kernel",
        "bert/encoder/layer/1/attention/output/dense/kernel",
        "bert/encoder/layer/1/attention/output/LayerNorm/bias",
        "bert/encoder/layer/0/intermediate/dense/kernel",
        "bert/encoder/layer/0/output/LayerNorm/scale",
        "bert/pooler/dense/kernel",
        "cls/predictions/transform/dense/kernel",
        "cls/predictions/transform/LayerNorm/scale",
        "cls/predictions/bias",
        "cls/seq_relationship/kernel",
    ):
        assert expected in paths
    query = flat[("bert", "encoder", "layer", 0, "attention", "self", "query", "kernel")]
    assert query.get_metadata()["out_sharding"] == ("embed", "heads", "kv")
    assert query[...].shape == (128, 2, 64)
    assert np.isclose(float(jnp.std(query[...])), TINY.initializer_range, rtol=0.1)


@pytest.mark.multi_device
def test_partition_specs_map_to_a_mesh(model):
    from flax import linen

    from bertjax.config import defaults as get_config

    rules = [tuple(rule) for rule in get_config().logical_axis_rules]
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"))
    state = nnx.state(model, nnx.Param)
    shardings = linen.logical_to_mesh_sharding(nnx.get_partition_spec(state), mesh, rules)
    word = shardings["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert word.spec == jax.sharding.PartitionSpec("tensor", "fsdp")


def test_bfloat16_close_to_float32(model):
    batch = tiny_batch()
    fp32 = model(**batch)
    bf16_model = create_model(dataclasses.replace(TINY, dtype="bfloat16"), seed=0)
    bf16 = bf16_model(**batch)
    for name in ("mlm_logits", "nsp_logits"):
        assert bf16[name].dtype == jnp.float32
        assert np.isfinite(np.asarray(bf16[name])).all()
        # bf16 keeps ~3 significant digits; MLM logits here have std ~0.23 and differ by ~4e-3.
        np.testing.assert_allclose(bf16[name], fp32[name], atol=2e-2)


def test_jit_with_pure_dict_params_matches_eager(model):
    batch = tiny_batch()
    graphdef, state = nnx.split(model)
    params = state.to_pure_dict()

    @jax.jit
    def forward(params, batch, key):
        merged = nnx.merge(graphdef, params)
        return (
            merged(**batch),
            merged(**batch, deterministic=False, rngs=nnx.Rngs(dropout=key)),
        )

    key = jax.random.key(3)
    jitted, jitted_dropout = forward(params, batch, key)
    eager, eager_dropout = (
        model(**batch),
        model(**batch, deterministic=False, rngs=nnx.Rngs(dropout=key)),
    )
    for name in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(jitted[name], eager[name], atol=1e-5)
        np.testing.assert_allclose(jitted_dropout[name], eager_dropout[name], atol=1e-5)


def test_from_config_and_validation():
    cfg = ml_collections.ConfigDict(
        {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 1024,
            "dtype": "bfloat16",
            "seed": 0,
        }
    )
    config = BertConfig.from_config(cfg, vocab_size=500)
    assert (config.vocab_size, config.hidden_size, config.dtype) == (500, 256, "bfloat16")
    assert config.layer_norm_eps == 1e-12
    from bertjax.config import defaults as get_config

    base = BertConfig.from_config(get_config(), vocab_size=30522)
    assert base == BertConfig(vocab_size=30522)
    for bad, message in (
        ({"num_attention_heads": 3}, "divisible"),
        ({"hidden_dropout_prob": 1.0}, r"\[0, 1\)"),
        ({"attention_probs_dropout_prob": -0.1}, r"\[0, 1\)"),
        ({"intermediate_size": 0}, "positive"),
        ({"dtype": "float64"}, "dtype"),
    ):
        with pytest.raises(UserError, match=message):
            dataclasses.replace(TINY, **bad).validate()


def test_sequence_longer_than_positions_is_a_user_error(model):
    too_long = jnp.zeros((1, TINY.max_position_embeddings + 1), jnp.int32)
    with pytest.raises(UserError, match="max_position_embeddings"):
        model.encode(too_long, too_long, too_long)


def test_gelu_is_exact_gelu():
    """bertjax's erf GELU (Hugging Face's formula) equals jax.nn.gelu(approximate=False)."""
    x = jnp.linspace(-12.0, 12.0, 20001)
    np.testing.assert_allclose(
        encoder.gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-6
    )
    ours = jax.vmap(jax.grad(encoder.gelu))(x)
    reference = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_sinusoidal_position_init_is_the_scaled_sinusoid_table():
    from bertjax.models.encoder import sinusoidal_init

    table = np.asarray(sinusoidal_init(0.5)(None, (10, 8)))
    angles = np.arange(10)[:, None] * 10000.0 ** (-np.arange(0, 8, 2) / 8)
    np.testing.assert_allclose(table[:, 0::2], 0.5 * np.sin(angles), atol=1e-6)
    np.testing.assert_allclose(table[:, 1::2], 0.5 * np.cos(angles), atol=1e-6)


def test_mimetic_attention_init_products():
    import jax

    from bertjax.models.attention import mimetic_factors

    key = jax.random.key(0)
    a, b = mimetic_factors(key, 64, 0.7, 0.7)
    z = np.asarray(jax.random.normal(key, (64, 64))) / 8.0
    np.testing.assert_allclose(np.asarray(a @ b.T), 0.7 * z + 0.7 * np.eye(64), atol=1e-4)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=64, attention_init="mimetic")  # fmt: skip
    attention = create_model(config, 0).bert.encoder.layer[0].attention
    q = np.asarray(attention.self.query.kernel[...]).reshape(32, 32)
    k = np.asarray(attention.self.key.kernel[...]).reshape(32, 32)
    v = np.asarray(attention.self.value.kernel[...]).reshape(32, 32)
    o = np.asarray(attention.output.dense.kernel[...]).reshape(32, 32)
    assert np.trace(q @ k.T) / 32 == pytest.approx(0.7, abs=0.1)
    assert np.trace(v @ o) / 32 == pytest.approx(-0.4, abs=0.1)


def test_importing_bertjax_leaves_flax_eager_sharding_alone():
    """No bertjax module flips flax's global `use_eager_sharding` default; each parameter carries
    `eager_sharding=False` itself, so the model builds without a mesh under the default (True)."""
    import subprocess
    import sys

    script = """
from flax import nnx
import bertjax.train, bertjax.finetune.model, bertjax.convert.importer
from bertjax.models.bert import BertConfig, create_model
assert nnx.using_eager_sharding(), "a bertjax import turned eager sharding off"
config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=16)
for scan in (False, True):
    config = config.__class__(**{**config.__dict__, "scan_layers": scan})
    for model in (create_model(config, 0), nnx.eval_shape(lambda: create_model(config, 0))):
        params = nnx.to_flat_state(nnx.state(model, nnx.Param))
        assert all(v.get_metadata()["eager_sharding"] is False for _, v in params), scan
assert nnx.using_eager_sharding()
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
