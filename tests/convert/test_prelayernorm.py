"""Pre-LN bertjax models exported as Hugging Face RobertaPreLayerNormForMaskedLM: loaded with no
missing key and compared output by output with transformers, padding included."""

import dataclasses
import json

import numpy as np
import pytest

from bertjax import checkpointing, optim, sharding, train
from bertjax.convert import export_hf, load_model
from bertjax.train_state import create_train_state
from configs import cpu_smoke
from tests.convert.helpers import ATOL, max_abs_diff, random_params, tiny_config, tiny_vocab

CONFIG = tiny_config(layer_norm_placement="pre", position_embedding_init="sinusoidal")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A pre-LN training workdir with one checkpoint of random (non-trivial) parameters."""
    workdir = tmp_path_factory.mktemp("run")
    config = cpu_smoke.get_config()
    for field in dataclasses.fields(CONFIG):
        if field.name in config:
            config[field.name] = getattr(CONFIG, field.name)
    config.mesh_shape = {"data": 2, "fsdp": 2, "tensor": 2}
    mesh = sharding.create_mesh(config.mesh_shape)
    state, setup = create_train_state(
        CONFIG, optim.create_optimizer(config), mesh, config.logical_axis_rules, 0
    )
    import jax

    params = jax.device_put(random_params(CONFIG, seed=3), setup.shardings.params)
    metadata = checkpointing.metadata_for(config, train.model_fields(config, CONFIG.vocab_size))
    manager = checkpointing.create_checkpoint_manager(workdir / "checkpoints", save_every=1, keep=1)
    checkpointing.save(manager, 1, state.replace(params=params), metadata, force=True)
    manager.wait_until_finished()
    manager.close()
    (workdir / "vocab.txt").write_text("".join(t + "\n" for t in tiny_vocab(300)))
    return workdir


def test_pre_ln_layout_has_the_extra_norms_and_no_post_norms():
    params = random_params(CONFIG, seed=0)
    layer = params["bert"]["encoder"]["layer"][0]
    assert "LayerNorm" in layer["attention"] and "LayerNorm" in layer["intermediate"]
    assert "LayerNorm" not in layer["attention"]["output"] and "LayerNorm" not in layer["output"]
    assert "LayerNorm" in params["bert"]


def test_exported_pre_ln_model_matches_transformers(workdir, tmp_path, transformers):
    result = export_hf(workdir, tmp_path / "hf")
    assert result.architecture == "RobertaPreLayerNormForMaskedLM"
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["max_position_embeddings"] == CONFIG.max_position_embeddings + 1  # [PAD] = 0
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        tmp_path / "hf", output_loading_info=True
    )
    assert type(model).__name__ == "RobertaPreLayerNormForMaskedLM"
    # The pooler is exported for RobertaPreLayerNormModel; the masked-LM class has none.
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    assert sorted(info["unexpected_keys"]) == [
        "roberta_prelayernorm.pooler.dense.bias",
        "roberta_prelayernorm.pooler.dense.weight",
    ]
    _, base_info = transformers.AutoModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert base_info["missing_keys"] == []
    rng = np.random.default_rng(0)
    ids = rng.integers(6, CONFIG.vocab_size, (3, 24))
    mask = (np.arange(24)[None] < np.array([[24], [17], [9]])).astype(np.int64)
    segments = ((np.arange(24)[None] >= np.array([[12], [8], [5]])) & (mask == 1)).astype(np.int64)
    ids = ids * mask  # [PAD] = 0 after each row's length
    import torch

    model.eval()
    with torch.no_grad():
        reference = model(
            input_ids=torch.tensor(ids),
            token_type_ids=torch.tensor(segments),
            attention_mask=torch.tensor(mask),
        ).logits.numpy()
    ours = np.asarray(load_model(workdir).mlm_logits_all(ids, segments, mask))
    real = mask.astype(bool)
    assert np.abs(ours).max() > 1.0, "outputs too small for the comparison to mean anything"
    assert max_abs_diff(ours[real], reference[real]) < ATOL
