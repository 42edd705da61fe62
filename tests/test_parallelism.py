"""The same training computes the same thing under every parallelism: after K steps with the same
seed and global batch, losses and parameters agree across 1 device, DP8, FSDP8 and DP2xFSDP2xTP2
(8 forced CPU devices)."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from bertjax import sharding
from tests.test_train import random_batch, run_steps, setup_run, tiny_config

pytestmark = pytest.mark.multi_device  # DP/FSDP/TP meshes of 8 devices

STEPS = 3
MESHES = {
    "dp8": {"data": 8, "fsdp": 1, "tensor": 1},
    "fsdp8": {"data": 1, "fsdp": 8, "tensor": 1},
    "dp2_fsdp2_tp2": {"data": 2, "fsdp": 2, "tensor": 2},
}


@pytest.fixture(scope="module")
def single_device_run():
    batches = [random_batch(8, seed=s) for s in range(STEPS)]
    state, history = run_steps(tiny_config(), batches, devices=jax.devices()[:1])
    return batches, jax.device_get(state.params), history


def distinct_shards(array: jax.Array) -> int:
    """How many different blocks of `array` its devices hold (replicas count once)."""
    return len({tuple((s.start, s.stop) for s in shard.index) for shard in array.global_shards})


def assert_laid_out_as(params, sizes: dict[str, int]) -> None:
    """Parameters live on the mesh `sizes` describes and are split as the config's rules say
    ('embed' over fsdp; 'mlp', 'heads' and 'vocab' over tensor), so a mesh_shape that the run
    ignored (or rules it did not apply) fails here even where the numbers would agree."""
    layer = params["bert"]["encoder"]["layer"][0]
    fsdp, tensor = sizes["fsdp"], sizes["tensor"]
    for array, spec, shape in (
        (layer["intermediate"]["dense"]["kernel"], PartitionSpec("fsdp", "tensor"), (128, 512)),
        (layer["attention"]["self"]["query"]["kernel"], PartitionSpec("fsdp", "tensor", None),
         (128, 2, 64)),
        (params["bert"]["embeddings"]["word_embeddings"]["embedding"],
         PartitionSpec("tensor", "fsdp"), (1000, 128)),
    ):  # fmt: skip
        assert dict(array.sharding.mesh.shape) == sizes
        assert array.sharding.spec == spec
        assert array.shape == shape and len(array.sharding.device_set) == 8
        split = {"fsdp": fsdp, "tensor": tensor, None: 1}
        block = tuple(n // split[axis] for n, axis in zip(shape, spec, strict=True))
        assert array.addressable_shards[0].data.shape == block
        assert distinct_shards(array) == fsdp * tensor  # the rest are data-parallel replicas


@pytest.mark.parametrize("name", sorted(MESHES))
def test_parallelism_matches_single_device(single_device_run, name):
    batches, reference_params, reference_history = single_device_run
    config = tiny_config(mesh_shape=MESHES[name])
    state, history = run_steps(config, batches, devices=jax.devices()[:8])
    assert_laid_out_as(state.params, MESHES[name])
    for one, many in zip(reference_history, history, strict=True):
        for key in ("mlm_loss_sum", "nsp_loss_sum", "grad_norm"):
            np.testing.assert_allclose(many[key], one[key], rtol=1e-5)
    params = jax.device_get(state.params)
    # Each Adam step moves a parameter by up to lr = 1e-3, and for a gradient near zero
    # m / (sqrt(v) + eps) turns summation-order differences into visible ones: with matmuls on
    # rows, 1 of 65,536 FSDP8 parameters differed by 1.25e-6 after 3 steps (2026-11-22).
    jax.tree.map(
        lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-6),
        params,
        reference_params,
    )
    print(f"\n{name}:\n" + "\n".join(sharding.describe_shardings(state.params)[:6]))


def test_fsdp_and_tensor_parallel_really_split_the_parameters():
    config = tiny_config(mesh_shape=MESHES["dp2_fsdp2_tp2"])
    state, _ = run_steps(config, [random_batch(8)], devices=jax.devices()[:8])
    layer = state.params["bert"]["encoder"]["layer"][0]
    query = layer["attention"]["self"]["query"]["kernel"]  # ('embed', 'heads', 'kv')
    intermediate = layer["intermediate"]["dense"]["kernel"]  # ('embed', 'mlp')
    words = state.params["bert"]["embeddings"]["word_embeddings"]["embedding"]  # ('vocab','embed')
    assert query.sharding.spec == PartitionSpec("fsdp", "tensor", None)
    assert intermediate.sharding.spec == PartitionSpec("fsdp", "tensor")
    assert words.sharding.spec == PartitionSpec("tensor", "fsdp")
    # 128 x 512 split over fsdp (2) and tensor (2): each device holds a quarter.
    assert intermediate.addressable_shards[0].data.shape == (64, 256)
    # Adam moments follow the parameters' sharding (ZeRO-style optimizer state).
    adam = state.opt_state[1][0]
    moment = adam.mu["bert"]["encoder"]["layer"][0]["intermediate"]["dense"]["kernel"]
    assert moment.sharding.spec == PartitionSpec("fsdp", "tensor")


def test_activations_are_constrained_by_logical_names():
    """The lowered train step carries sharding constraints for the embeddings, every layer's
    query/key/value, feed-forward and output activations (2 layers: 1 + 2 * 5 at least)."""
    config = tiny_config(mesh_shape=MESHES["dp2_fsdp2_tp2"])
    mesh, state, setup, step_fn = setup_run(config, devices=jax.devices()[:8])
    batch = sharding.global_batch_from_local(random_batch(8), mesh)
    text = step_fn.lower(state, batch, jax.random.key(0)).as_text()
    assert text.count("sharding_constraint") >= 11
