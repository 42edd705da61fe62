"""Every config in configs/ loads, validates, and eval_shapes its model (no memory used)."""

import functools
from pathlib import Path

import pytest
from flax import nnx

from bertjax.config import validate
from bertjax.models.bert import BertConfig, BertForPreTraining, count_parameters
from tests.helpers import load_config

NOT_PRETRAINING = ("finetune", "continue_from")  # a fine-tuning recipe; a run's own config
CONFIG_NAMES = sorted(
    p.stem
    for p in (Path(__file__).parent.parent / "configs").glob("*.py")
    if p.stem not in NOT_PRETRAINING
)
# BertForPreTraining parameters at vocab 30,522 (Hugging Face counts for base and large).
EXPECTED_PARAMETERS = {"base": 110_106_428, "large": 336_226_108}


@functools.cache  # 18 configs, 11 models: each is built once (BertConfig is frozen)
def parameters_of(model_config: BertConfig) -> int:
    model = nnx.eval_shape(lambda: BertForPreTraining(model_config, rngs=nnx.Rngs(0)))
    return count_parameters(model)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_builds_its_model(name):
    config = load_config(name)
    validate(config)
    parameters = parameters_of(BertConfig.from_config(config, vocab_size=30522))
    assert parameters > 0
    if name in EXPECTED_PARAMETERS:
        assert parameters == EXPECTED_PARAMETERS[name]


# ELECTRA's published shapes (Clark et al. 2020, Table 6; Hugging Face's google/electra-*
# configs): discriminator (layers, hidden, heads, feed-forward, embedding width), generator
# (hidden, heads, feed-forward) with the discriminator's depth and embeddings.
ELECTRA_SHAPES = {
    "small": ((12, 256, 4, 1024, 128), (64, 1, 256)),
    "base": ((12, 768, 12, 3072, 768), (256, 4, 1024)),
    "large": ((24, 1024, 16, 4096, 1024), (256, 4, 1024)),
}


@pytest.mark.parametrize(  # large: base's layout at other sizes, 35 s of abstract init: slow
    "size", ["base", pytest.param("large", marks=pytest.mark.slow), "small"]
)
def test_electra_presets_have_the_parameters_of_hugging_faces_electra(size):
    """configs/electra_SIZE.py's model has exactly the parameters of transformers'
    ElectraForPreTraining and ElectraForMaskedLM (the generator) at ELECTRA's shapes, less the
    generator's embeddings (shared), plus BERT's pooler, which bertjax's encoder keeps (unused by
    ELECTRA; export leaves it out)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from bertjax.config import from_config

    (layers, hidden, heads, ff, embedding), (g_hidden, g_heads, g_ff) = ELECTRA_SHAPES[size]
    shapes = dict(vocab_size=30522, num_hidden_layers=layers, embedding_size=embedding)
    with torch.device("meta"):
        discriminator = transformers.ElectraForPreTraining(transformers.ElectraConfig(
            hidden_size=hidden, num_attention_heads=heads, intermediate_size=ff, **shapes
        ))  # fmt: skip
        generator = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
            hidden_size=g_hidden, num_attention_heads=g_heads, intermediate_size=g_ff, **shapes
        ))  # fmt: skip

    def count(module):
        return sum(p.numel() for p in module.parameters())

    expected = count(discriminator) + count(generator) - count(generator.electra.embeddings)
    config = load_config(f"electra_{size}")
    spec, model = from_config(config), BertConfig.from_config(config, vocab_size=30522)
    abstract = nnx.eval_shape(lambda: spec.objective.model_factory(model)(0))
    assert count_parameters(abstract) == expected + hidden * hidden + hidden


def test_all_model_sizes_have_a_config():
    assert {"tiny", "mini", "small", "medium", "base", "large", "cpu_smoke"} <= set(CONFIG_NAMES)


def test_predict_reads_a_recordless_qa_model_with_the_finetune_recipes_windows():
    # predict.QA_DEFAULTS repeats configs/finetune.py's numbers: that config stays free of
    # bertjax imports (it loads while flags parse, before the quiet TensorFlow start).
    from bertjax.finetune import inference, predict

    recipe = load_config("finetune")
    assert set(predict.QA_DEFAULTS) == set(inference.QA_FIELDS)
    assert predict.QA_DEFAULTS == {name: recipe[name] for name in inference.QA_FIELDS}


def test_fields_a_resume_may_change_silently_are_config_fields():
    """HOW_NOT_WHAT names fields of the config (a misspelt one would make a resume warn about a
    field that only changes how the run is carried out)."""
    from bertjax.config import HOW_NOT_WHAT, defaults

    assert HOW_NOT_WHAT <= set(defaults())
    assert not {"corpus", "batch_size", "learning_rate", "num_train_steps"} & HOW_NOT_WHAT
