"""Each invalid config is refused before anything is read or compiled, with one line naming the
field; the CLI turns it into exit code 2 without a traceback (see also tests/test_cli.py)."""

import os
import re

import ml_collections
import pytest

from bertjax.config import defaults, from_config, validate
from bertjax.errors import UserError
from tests.helpers import load_config

ROTARY = {"position_embedding_type": "rotary", "position_embedding_init": "normal"}
INVALID = [
    ({"num_attention_heads": 3}, "not divisible by num_attention_heads=3"),
    ({"hidden_size": 0}, "must be positive"),
    ({"num_hidden_layers": -1}, "must be positive"),
    ({"intermediate_size": 0}, "intermediate_size must be positive"),
    ({"max_seq_length": 1024}, "max_seq_length=1024 must be <= max_position_embeddings=512"),
    ({"max_predictions_per_seq": 200}, "max_predictions_per_seq=200 must be in [1, max_seq_length"),
    ({"max_predictions_per_seq": 0}, "max_predictions_per_seq=0"),
    (
        {"masked_lm_prob": 0.4},
        "caps masked_lm_prob=0.4 below the 50 predictions it asks for in a 128-token row; "
        "set --config.max_predictions_per_seq=50",
    ),
    ({"mask_token_prob": 1.1}, "mask_token_prob=1.1 and random_token_prob=0.1 must be in [0, 1]"),
    ({"random_token_prob": 0.3}, "random_token_prob=0.3 must be in [0, 1] with a sum <= 1"),
    ({"masked_lm_prob": 0.0}, "masked_lm_prob=0.0 must be in (0, 1)"),
    ({"masked_lm_prob": 1.5}, "masked_lm_prob=1.5"),
    ({"short_seq_prob": -0.1}, "short_seq_prob=-0.1"),
    ({"hidden_dropout_prob": -0.5}, "hidden_dropout_prob=-0.5 must be in [0, 1)"),
    ({"attention_probs_dropout_prob": 1.0}, "attention_probs_dropout_prob=1.0"),
    ({"dupe_factor": 0}, "dupe_factor=0 must be >= 1"),
    ({"vocab_size": 3}, "vocab_size=3 is too small"),
    ({"dtype": "float16"}, "dtype='float16' is not supported"),
    ({"batch_size": 0}, "batch_size=0 must be positive"),
    ({"batch_size": 12}, "batch_size=12 is not divisible by the 8 data-parallel shards"),
    ({"grad_accum_steps": 3}, "grad_accum_steps=3 must be >= 1 and divide batch_size=32"),
    ({"grad_accum_steps": 8}, "microbatch batch_size/grad_accum_steps=4 is not divisible by the 8"),
    ({"remat_policy": "sometimes"}, "remat_policy='sometimes' is not one of"),
    ({"use_cpu_kernels": "yes"}, "use_cpu_kernels='yes' must be None (from the backend), True"),
    ({"log_every": 0}, "log_every=0 must be positive"),
    ({"num_train_steps": 0, "warmup_steps": 0}, "num_train_steps=0 must be positive"),
    ({"warmup_steps": 5000}, "warmup_steps=5000 must be in [0, num_train_steps=1000]"),
    ({"learning_rate": -1e-4}, "learning_rate=-0.0001 must be positive"),
    ({"weight_decay": -0.01}, "weight_decay=-0.01 must be >= 0"),
    ({"max_grad_norm": -1.0}, "max_grad_norm=-1.0 must be >= 0"),
    ({"optimizer": "sgd"}, "optimizer='sgd' is unknown"),
    ({"nonfinite_policy": "ignore"}, "nonfinite_policy='ignore' is unknown"),
    ({"max_consecutive_nonfinite": 0}, "max_consecutive_nonfinite=0 must be >= 1"),
    ({"checkpoint_every": 0}, "checkpoint_every and keep_checkpoints must be positive"),
    ({"keep_checkpoints": 0}, "checkpoint_every and keep_checkpoints must be positive"),
    ({"vocab_dir": "/nonexistent/vocab"}, "vocab_dir='/nonexistent/vocab' has no vocab.txt"),
    ({"mesh_shape": {"data": 3, "fsdp": 1, "tensor": 1}}, "covers 3 devices but 8"),
    ({"mesh_shape": {"data": -1, "fsdp": -1, "tensor": 1}}, "more than one -1"),
    ({"mesh_shape": {"data": -1, "pipe": 2}}, "unknown axes ['pipe']"),
    ({"max_seq_length": 4}, "max_seq_length=4 cannot hold [CLS] A [SEP] B [SEP]; set --config"),
    ({"max_seq_length": 2, "packing": True}, "max_seq_length=2 cannot hold [CLS] tokens [SEP]"),
    ({"text_format": "csv"}, "text_format='csv' is unknown"),
    ({"text_encoding": "gbkk"}, "--config.text_encoding='gbkk' is not an encoding Python knows"),
    ({"masking": "words"}, "masking='words' is unknown"),
    ({"masking": "span", "max_ngram": 0}, "max_ngram=0 must be >= 1"),
    ({"masking": "span", "span_distribution": "zipf"}, "span_distribution='zipf' is unknown"),
    ({"masking": "span", "span_geometric_p": 1.5}, "span_geometric_p=1.5 must be in"),
    ({"streaming": True, "prepared_dir": "/prepared"}, "streaming=True and prepared_dir are two"),
    ({"streaming": True, "stream_chunk_documents": 1}, "stream_chunk_documents=1 must be >= 2"),
    ({"eval_holdout_fraction": 1.5}, "eval_holdout_fraction=1.5 must be in [0, 1)"),
    ({"eval_every": -1}, "eval_every=-1 must be >= 0"),
    ({"eval_every": 3}, "eval_every=3 needs held-out data"),
    ({"eval_batch_size": 0}, "eval_batch_size=0 must be positive"),
    ({"eval_examples": 8}, "eval_examples=8 must be >= eval_batch_size=64"),
    (
        {"eval_every": 2, "eval_holdout_fraction": 0.1, "eval_batch_size": 12},
        "eval_batch_size=12 is not divisible by the 8 data-parallel shards",
    ),
    ({"keep_checkpoint_period": -1}, "keep_checkpoint_period=-1 must be >= 0"),
    ({"objective": "t5"}, "objective='t5' is unknown"),
    ({"generator_hidden_fraction": 1.5}, "generator_hidden_fraction=1.5 must be in (0, 1]"),
    ({"discriminator_weight": 0.0}, "discriminator_weight=0.0 must be positive"),
    ({"discriminator_bias_init": "one"}, "discriminator_bias_init='one' is unknown"),
    ({"type_vocab_size": 0}, "type_vocab_size must be positive"),
    ({"embedding_size": -8}, "embedding_size must be 0 (the hidden size) or positive, not -8"),
    ({"max_position_embeddings": 64}, "max_seq_length=128 must be <= max_position_embeddings"),
    ({"initializer_range": 0.0}, "initializer_range=0.0 must be positive"),
    ({"layer_norm_eps": -1e-12}, "layer_norm_eps=-1e-12 must be positive"),
    ({"layer_norm_placement": "middle"}, "layer_norm_placement 'middle' is not supported"),
    ({"position_embedding_type": "alibi"}, "position_embedding_type 'alibi' is not supported"),
    (
        {"position_embedding_type": "rotary", "position_embedding_init": "local"},
        "position_embedding_init='local' does not apply to position_embedding_type='rotary'",
    ),
    (ROTARY | {"rope_theta": 0.5}, "rope_theta=0.5 must be a number"),
    (
        ROTARY | {"hidden_size": 60, "num_attention_heads": 4},
        "head size hidden_size / num_attention_heads = 15 is odd",
    ),
    (
        {"position_embedding_type": "absolute", "position_embedding_init": "local"},
        "position_embedding_init='local' does not apply",
    ),
    ({"word_segmenter": "jieba"}, "--config.word_segmenter='jieba' is unknown"),
    ({"attention_init": "orthogonal"}, "attention_init 'orthogonal' is not supported"),
    ({"attention_implementation": "flash"}, "attention_implementation 'flash' is not supported"),
    ({"adam_b1": 1.0}, "adam_b1=1.0 must be in [0, 1)"),
    ({"adam_b2": -0.1}, "adam_b2=-0.1 must be in [0, 1)"),
    ({"adam_eps": 0.0}, "adam_eps=0.0 must be positive"),
    ({"lr_schedule": "cosine_restarts"}, "lr_schedule='cosine_restarts' is unknown"),
    ({"lr_decay_fraction": -0.1}, "lr_decay_fraction=-0.1 must be in [0, 1]"),
    ({"dcn_mesh_shape": {"data": 0, "fsdp": 1, "tensor": 1}}, "dcn_mesh_shape"),
    (
        {"dcn_mesh_shape": {"data": 2, "fsdp": 1, "tensor": 1}},
        "asks for 2 slices, but the run has 1 (processes;",
    ),
    ({"logical_axis_rules": [("batch", "pipe")]}, "logical_axis_rules maps 'batch' to 'pipe'"),
]
# Fields with no value to refuse at validation, and why.
UNCONSTRAINED = {
    "text_field": "any JSON field name; a missing one is counted per file when read",
    "cache_dir": "any directory; created when a vocabulary is trained",
    "lowercase": "either; a given vocabulary's vocab_meta.json is checked when it is loaded",
    "seed": "any integer",
    "eval_seed": "any integer",
    "packing": "either; prepared shards' setting is compared when they are opened",
    "scan_layers": "either; a checkpoint's layout is compared on resume",
    "progress_bar": "either",
    "model_size": "a label set by set_model_size; the sizes themselves are checked",
}
# Paths the first read of the run checks, each with a one-line error (tests/test_cli.py,
# tests/data/test_prepare.py, tests/convert/test_init_from.py): a pod config's placeholders
# (gs://YOUR_BUCKET/...) must validate on a laptop.
CHECKED_WHEN_READ = {"corpus", "eval_corpus", "prepared_dir", "init_from"}


@pytest.mark.multi_device
@pytest.mark.parametrize("overrides, message", INVALID, ids=[str(o) for o, _ in INVALID])
def test_invalid_config_is_one_line_user_error(overrides, message):
    config = load_config("cpu_smoke")
    config.update(overrides)
    with pytest.raises(UserError) as error:
        validate(config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert any(name in str(error.value) for name in overrides), "the error names the field"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("packing", "False", "packing='False' is not True or False (a str)"),
        ("lowercase", "false", "lowercase='false' is not True or False"),
        ("batch_size", "8", "batch_size='8' is not a whole number (a str)"),
        ("num_train_steps", 1e6, "num_train_steps=1000000.0 is not a whole number (a float)"),
        ("learning_rate", "1e-3", "learning_rate='1e-3' is not a finite number"),
        # inf trained NaN parameters (or, adam_eps, nothing) and ended "Done.", exit 0
        ("learning_rate", float("inf"), "learning_rate=inf is not a finite number (a float)"),
        ("weight_decay", float("nan"), "weight_decay=nan is not a finite number"),
        ("adam_eps", float("inf"), "adam_eps=inf is not a finite number"),
        ("initializer_range", float("inf"), "initializer_range=inf is not a finite number"),
        ("num_hidden_layers", "2", "num_hidden_layers='2' is not a whole number"),
        ("corpus", 3, "corpus=3 is not a string"),
    ],
)
def test_a_value_of_another_type_is_one_line(field, value, message):
    """A config built from YAML, JSON or the environment (a ConfigDict of a plain dict checks
    no types): packing="False" was true and trained packed rows; batch_size="8" was a TypeError
    traceback in a check."""
    config = ml_collections.ConfigDict({**load_config("cpu_smoke").to_dict(), field: value})
    with pytest.raises(UserError, match=re.escape(message) + r".*; set --config\.\w+ to one$"):
        validate(config)


def test_config_files_and_sizes_that_cannot_be_used_are_one_line(tmp_path):
    """From Python: a config file without get_config was an AttributeError, one that does not
    parse a SyntaxError, an unknown size a ValueError."""
    from bertjax.config import load_config as load_file
    from bertjax.config import set_electra_size, set_model_size

    (tmp_path / "none.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    with pytest.raises(UserError, match=r"none.py' has no get_config\(\); define one"):
        load_file(tmp_path / "none.py")
    with pytest.raises(UserError, match=r"broken.py' does not parse: .*, line 1$"):
        load_file(tmp_path / "broken.py")
    with pytest.raises(UserError, match="unknown model size 'huge'; choose one of tiny, mini"):
        set_model_size(defaults(), "huge")
    with pytest.raises(UserError, match="unknown ELECTRA size 'huge'; choose one of small"):
        set_electra_size(defaults(), "huge")


def test_every_constrained_field_has_a_bad_value_case():
    """Every field of the defaults (each documented where its spec defines it) either has a case
    in INVALID, refused before anything is read or compiled, or is listed with the reason."""
    covered = {name for overrides, _ in INVALID for name in overrides}
    fields = set(defaults().keys())
    assert fields - covered - set(UNCONSTRAINED) - CHECKED_WHEN_READ == set()
    assert not (set(UNCONSTRAINED) | CHECKED_WHEN_READ) - fields, "stale names"


def test_vocab_size_must_match_a_given_vocabulary(tmp_path):
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n"
    )
    config = load_config("cpu_smoke")
    config.vocab_dir = str(tmp_path)
    with pytest.raises(UserError, match="vocab_size=8000 but .* has 7 tokens"):
        validate(config)
    config.vocab_size = 7
    validate(config)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_workdir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UserError, match="not writable"):
        validate(load_config("cpu_smoke"), locked)


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create workdir"):
        validate(load_config("cpu_smoke"), tmp_path / "file" / "run")


def test_valid_config_passes(tmp_path):
    validate(load_config("cpu_smoke"), tmp_path / "run")


def test_a_field_no_spec_reads_is_refused_with_the_nearest_name(tmp_path):
    """A config file's misspelt field (no --config.FIELD parse catches it) is one line naming
    it and the field meant; a run's config.json with a field bertjax has since dropped still
    reads (`workdir_config`: continue_from, evaluate)."""
    import json

    from bertjax.evaluate_checkpoints import workdir_config

    config = load_config("cpu_smoke")
    config.num_train_step = 10
    with pytest.raises(UserError, match=r"^the config has a field bertjax does not know, "
                       r"'num_train_step' \(did you mean num_train_steps\?\); fix or remove it "
                       r"in the --config file$"):  # fmt: skip
        validate(config)
    del config.num_train_step
    saved = json.loads(config.to_json_best_effort()) | {"a_retired_field": 1}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert "a_retired_field" not in workdir_config(tmp_path)
    from_config(workdir_config(tmp_path))
