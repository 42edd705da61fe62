"""Every config in configs/ loads, validates, and eval_shapes its model (no memory used)."""

from pathlib import Path

import pytest
from flax import nnx

from bertjax.config import validate
from bertjax.models.bert import BertConfig, BertForPreTraining, count_parameters
from tests.helpers import load_config

NOT_PRETRAINING = ("finetune",)  # finetune.py: `bertjax finetune`'s recipe
CONFIG_NAMES = sorted(
    p.stem
    for p in (Path(__file__).parent.parent / "configs").glob("*.py")
    if p.stem not in NOT_PRETRAINING
)
# BertForPreTraining parameters at vocab 30,522 (Hugging Face counts for base and large).
EXPECTED_PARAMETERS = {"base": 110_106_428, "large": 336_226_108}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_builds_its_model(name):
    config = load_config(name)
    validate(config)
    model_config = BertConfig.from_config(config, vocab_size=30522)
    model = nnx.eval_shape(lambda: BertForPreTraining(model_config, rngs=nnx.Rngs(0)))
    parameters = count_parameters(model)
    assert parameters > 0
    if name in EXPECTED_PARAMETERS:
        assert parameters == EXPECTED_PARAMETERS[name]


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
