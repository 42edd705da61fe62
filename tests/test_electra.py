"""ELECTRA runs end to end at tiny size: the discriminator learns to find replacements on a toy
corpus (slow), a resumed run logs the uninterrupted run's lines, the objective is checked on
resume, `init_from` across objectives loads the shared encoder, and the workdir exports to
transformers, fine-tunes and answers fill-mask (its generator)."""

import dataclasses
import functools
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from scipy import stats as scipy_stats

from bertjax import checkpointing, evaluate_checkpoints, optim, train
from bertjax.config import from_config
from bertjax.convert import export, import_checkpoint, model_dir
from bertjax.errors import UserError
from bertjax.fill_mask import fill_mask
from bertjax.finetune import trainer
from bertjax.models.config import BertConfig
from bertjax.models.electra import create_electra
from bertjax.train_state import state_setup
from tests.test_finetune import config_for, synthetic_sentiment, write_jsonl
from tests.test_reliability import DETERMINISTIC_FIELDS
from tests.test_smoke import small_smoke_config

ELECTRA_FIELDS = tuple(f for f in DETERMINISTIC_FIELDS if not f.startswith("nsp_"))
ELECTRA_FIELDS += ("rtd_loss", "rtd_accuracy", "rtd_precision", "rtd_recall", "replaced_fraction")
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def toy_corpus(path, documents: int = 160, seed: int = 0) -> str:
    """Documents that walk a cycle of 13 words from a random start, a random number of words
    per sentence: every token is implied by its neighbours, so every replacement is wrong, but
    only the context says so (all words are equally frequent)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(documents):
        position, sentences = int(rng.integers(len(WORDS))), []
        for _ in range(6):
            length = int(rng.integers(4, 9))
            words = [WORDS[(position + i) % len(WORDS)] for i in range(length)]
            sentences.append(" ".join(words) + " .")
            position += length
        lines.append(json.dumps({"text": " ".join(sentences)}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def electra_config(tmp_path, **overrides):
    fields = dict(objective="electra", hidden_size=64, intermediate_size=256, num_attention_heads=2)
    return small_smoke_config(tmp_path, **{**fields, **overrides})


def toy_config(tmp_path, **overrides):
    """A 64-wide ELECTRA (16-wide generator) on the toy corpus, 10% of documents held out."""
    fields = dict(
        corpus=toy_corpus(tmp_path / "toy.jsonl"),
        vocab_size=200,
        max_seq_length=32,
        max_predictions_per_seq=5,
        packing=True,
        dupe_factor=3,
        batch_size=16,
        warmup_steps=10,
        learning_rate=2e-3,
        eval_holdout_fraction=0.1,
        eval_examples=64,
        eval_batch_size=32,
    )
    return electra_config(tmp_path, **{**fields, **overrides})


def read_lines(workdir, fields) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: json.loads(line).get(k) for k in fields} for line in lines]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A short ELECTRA run (checkpoints at steps 10 and 20): a workdir to resume, export,
    fine-tune and query."""
    tmp_path = tmp_path_factory.mktemp("electra")
    workdir = tmp_path / "run"
    train.train_and_evaluate(toy_run_config(tmp_path), workdir)
    return tmp_path, workdir


def toy_run_config(tmp_path):
    """The toy run's config (the resume test runs it again)."""
    return toy_config(tmp_path, num_train_steps=20, log_every=2, checkpoint_every=10, eval_every=20)


def entropy(p: float) -> float:
    """The binary cross-entropy (nats) of predicting the base rate p at every token."""
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


@pytest.mark.slow  # a learning check (48 s); the objective's parts are checked by the default suite
def test_the_discriminator_learns_to_find_replaced_tokens_from_context():
    """The ELECTRA module's discriminator alone (AdamW 1e-3, clipping 1.0, 400 steps, ~20 s):
    rows walk a cycle of 13 tokens, 15% are replaced by random tokens; only the neighbours
    say which. Measured: recall 0.0 for ~200 steps, 0.87 at 400, 0.97-1.0 from 700 on; from a
    zero output bias instead of the prior, recall stayed 0.0 to step ~450 (docs/electra.md)."""
    config = BertConfig(
        vocab_size=20, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, position_embedding_type="relative_key",
        position_embedding_init="local",
    )  # fmt: skip
    graphdef, params = nnx.split(create_electra(config, 0.25, 50.0, seed=0), nnx.Param)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=0.01))
    rng = np.random.default_rng(0)
    rows = {"segment_ids": jnp.zeros((16, 32), jnp.int32), "input_mask": jnp.ones((16, 32))}

    def sample():
        original = (rng.integers(0, 13, (16, 1)) + np.arange(32)[None]) % 13 + 5
        noise = rng.random((16, 32)) < 0.15
        corrupted = np.where(noise, rng.integers(5, 18, (16, 32)), original)
        return jnp.asarray(corrupted), jnp.asarray((corrupted != original).astype(np.float32))

    @jax.jit
    def step(params, opt_state, ids, labels):
        def loss(params):
            logits = nnx.merge(graphdef, params).discriminator_logits(ids, rows)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for _ in range(400):
        params, opt_state = step(params, opt_state, *sample())
    ids, labels = sample()
    flagged = np.asarray(nnx.merge(graphdef, params).discriminator_logits(ids, rows)) > 0
    labels = np.asarray(labels) > 0
    recall = (flagged & labels).sum() / labels.sum()
    precision = (flagged & labels).sum() / max(flagged.sum(), 1)
    assert recall > 0.6 and precision > 0.6, (recall, precision)


@pytest.mark.slow
def test_a_tiny_electra_run_learns_beyond_the_base_rate(tmp_path):
    """The whole objective, 1,200 steps (~2 idle minutes) on the toy corpus with a weak
    generator (4 wide). Its samples are plausible (frequent tokens, then near-misses), so a
    64-wide discriminator learns slowly: measured held-out loss 0.952 and (another data split)
    0.86 of the base-rate loss, with recall at the 0.5 threshold still ~0.02 (docs/electra.md).
    A discriminator that learned nothing would sit at the base-rate loss."""
    config = toy_config(
        tmp_path,
        num_train_steps=1200,
        learning_rate=1e-3,
        generator_hidden_fraction=1 / 16,
        eval_every=1200,
        log_every=100,
        checkpoint_every=1200,
    )
    train.train_and_evaluate(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    last = [r for r in records if "eval_rtd_accuracy" in r][-1]
    # Predicting the base rate everywhere scores accuracy 1 - p and loss entropy(p).
    base_rate = last["eval_replaced_fraction"]
    assert last["eval_rtd_loss"] < 0.98 * entropy(base_rate), last
    assert last["eval_rtd_accuracy"] >= 1 - base_rate, last


@pytest.mark.slow  # BERT's resume is in the default suite (tests/test_reliability.py), same code
def test_a_resumed_electra_run_logs_the_lines_of_an_uninterrupted_one(toy_run, tmp_path):
    """Resumed from step 10 of the toy run, the run logs its lines (training metrics every 2
    steps and at step 1, then the held-out evaluation) exactly as the uninterrupted run did."""
    toy_tmp, reference_dir = toy_run
    reference = read_lines(reference_dir, ELECTRA_FIELDS)
    assert reference[-2]["rtd_accuracy"] is not None and len(reference) == 12
    workdir = tmp_path / "resumed"
    shutil.copytree(reference_dir, workdir)
    shutil.rmtree(workdir / "checkpoints" / "20")
    assert train.train_and_evaluate(toy_run_config(toy_tmp), workdir).start_step == 10
    assert read_lines(workdir, ELECTRA_FIELDS) == reference


def test_held_out_evaluation_reports_the_discriminators_auc(toy_run):
    _, workdir = toy_run
    (record,) = evaluate_checkpoints.run_evaluate(str(workdir))
    assert 0.0 <= record["rtd_auc"] <= 1.0, record
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").open()]
    assert [r["eval_rtd_auc"] for r in logged if "eval_rtd_auc" in r] == [record["rtd_auc"]]
    header, row = evaluate_checkpoints.format_records([record])[:2]
    assert header.split()[-2:] == ["rtd_auc", "state_rank"]
    auc, rank = (float(cell) for cell in row.split()[-2:])
    assert auc == pytest.approx(record["rtd_auc"], abs=1e-4)
    assert rank == pytest.approx(record["token_effective_rank"], abs=0.05) and rank > 0


def test_resuming_with_another_objective_is_a_one_line_error(toy_run):
    tmp_path, workdir = toy_run
    config = toy_config(tmp_path, objective="bert", num_train_steps=40)
    with pytest.raises(UserError, match="objective=electra but the config asks for bert"):
        train.train_and_evaluate(config, workdir)


def test_init_from_a_run_of_another_objective_loads_only_the_shared_encoder(toy_run, tmp_path):
    """An ELECTRA workdir as a BERT run's --config.init_from: its encoder (bert/..., the word
    embeddings included) is loaded, BERT's MLM head starts fresh, and the run trains."""
    toy_tmp, workdir = toy_run
    saved = checkpointing.restore_params(workdir, 20)
    config = toy_config(
        toy_tmp, objective="bert", init_from=str(workdir), num_train_steps=2, warmup_steps=1
    )
    spec = from_config(config)
    vocab = saved["bert"]["embeddings"]["word_embeddings"]["embedding"].shape[0]
    model = dataclasses.replace(spec.model, vocab_size=vocab)
    setup = state_setup(
        spec.objective.model_factory(model),
        optim.create_optimizer(spec.optimizer),
        spec.mesh.create_mesh(),
        spec.mesh.logical_axis_rules,
    )
    assert set(setup.abstract_state.params) == {"bert", "cls"}
    params = checkpointing.load_init_params(
        str(workdir), setup.abstract_state.params, train.model_fields(model, spec.objective)
    )
    assert set(params) == {"bert"}
    for got, expected in zip(
        jax.tree.leaves(params["bert"]), jax.tree.leaves(saved["bert"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), expected)
    summary = train.train_and_evaluate(config, tmp_path / "bert")
    assert summary.final_metrics["mlm_accuracy"] is not None
    # Packed rows train no next-sentence task: the pooler, untrained, is not decayed either.
    pooler = checkpointing.restore_params(tmp_path / "bert", 2)["bert"]["pooler"]
    np.testing.assert_array_equal(
        pooler["dense"]["kernel"], saved["bert"]["pooler"]["dense"]["kernel"]
    )


def test_parameters_no_loss_reaches_keep_their_values(toy_run):
    """ELECTRA does not train BERT's pooler; AdamW's decoupled decay would still shrink it step by
    step (by 2e-5 of its value a step here), where TensorFlow's and PyTorch's optimizers skip a
    variable without a gradient. The encoder's kernels move."""
    _, workdir = toy_run
    early, late = (checkpointing.restore_params(workdir, step)["bert"] for step in (10, 20))
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(late["pooler"]["dense"][name], early["pooler"]["dense"][name])
    layer = "encoder", "layer", 0, "attention", "self", "query", "kernel"
    moved = functools.reduce(dict.get, layer, late) - functools.reduce(dict.get, layer, early)
    assert np.abs(moved).max() > 1e-4


def test_export_loads_in_transformers_and_fine_tunes_and_fills_masks(toy_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    _, workdir = toy_run
    result = export.export_hf(workdir, tmp_path / "hf")
    assert result.architecture == "ElectraForPreTraining"
    for loader, directory in (
        (transformers.ElectraForPreTraining, tmp_path / "hf"),
        (transformers.ElectraForMaskedLM, tmp_path / "hf" / export.ELECTRA_GENERATOR_DIR),
    ):
        _, info = loader.from_pretrained(directory, output_loading_info=True)
        assert info["missing_keys"] == [] and info["unexpected_keys"] == [], directory
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer.tokenize("alpha bravo") == ["alpha", "bravo"]

    # And back: `bertjax import` reads the discriminator as the BERT encoder it trained, bit for
    # bit but the pooler (which the export leaves out and the import initialises).
    import_checkpoint(tmp_path / "hf", tmp_path / "back")
    encoder = checkpointing.restore_params(workdir, 20)["bert"]
    back = checkpointing.restore_params(tmp_path / "back", 0)["bert"]
    assert set(back) == set(encoder)
    for part in set(encoder) - {"pooler"}:
        for got, expected in zip(
            jax.tree.leaves(back[part]), jax.tree.leaves(encoder[part]), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected), err_msg=part)

    # The discriminator is the encoder `bertjax finetune` starts from.
    train_file = write_jsonl(tmp_path / "train.jsonl", synthetic_sentiment(64, seed=0))
    config = config_for(train_file=train_file, eval_file=train_file, kind="classification")
    results = trainer.finetune("jsonl", str(workdir), str(tmp_path / "finetune"), config)
    assert 0.0 <= results["aggregate"]["accuracy"]["median"] <= 1.0

    # fill-mask reads the generator: its answers are the generator's most probable tokens.
    answers = fill_mask(str(workdir), ["charlie delta [MASK] foxtrot ."], top_k=3)[0][0]
    model = model_dir.load_model(workdir)
    vocab = (workdir / "vocab.txt").read_text().split("\n")
    ids = np.array([[vocab.index(w) for w in "[CLS] charlie delta [MASK] foxtrot . [SEP]".split()]])
    logits = model.mlm_logits_all(ids, np.zeros_like(ids), np.ones_like(ids))[0, 3]
    best = np.argsort(-np.asarray(logits))[:3]
    assert [answer.token for answer in answers] == [vocab[i] for i in best]


@pytest.mark.parametrize("bias_init, expected", [("prior", np.log(0.15 / 0.85)), ("zero", 0.0)])
def test_the_discriminator_output_bias_starts_where_the_config_says(bias_init, expected):
    from bertjax.objectives import ObjectiveSpec

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)  # fmt: skip
    spec = ObjectiveSpec(objective="electra", discriminator_bias_init=bias_init)
    model = spec.model_factory(config, masked_lm_prob=0.15)(0)
    bias = model.discriminator_predictions.dense_prediction.bias.value
    np.testing.assert_allclose(np.asarray(bias), [expected], atol=1e-6)


def test_replacements_are_drawn_from_the_generators_distribution_at_temperature_one():
    """ELECTRA samples replacements from softmax(generator logits) itself (temperature 1, as
    Clark et al. 2020 and transformers' ElectraForPreTraining examples do). The generator's
    vocabulary bias is set to a spread-out distribution (logits -3..3 nats), 4,000 draws at
    one masked position are counted and a chi-square test against softmax(mlm_logits) must
    not reject at p = 1e-4 (a temperature of 0.5 gives p < 1e-100 here)."""
    config = BertConfig(
        vocab_size=12, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=16,
    )  # fmt: skip
    model = create_electra(config, 0.5, 50.0, seed=0)
    model.generator_lm_head.bias.value = jnp.linspace(-3.0, 3.0, config.vocab_size)
    batch = {
        "input_ids": jnp.array([[2, 7, 3, 8, 9, 4, 0, 0]]),
        "segment_ids": jnp.zeros((1, 8), jnp.int32),
        "input_mask": jnp.array([[1, 1, 1, 1, 1, 1, 0, 0]]),
        "masked_lm_positions": jnp.array([[2]]),
        "masked_lm_ids": jnp.array([[5]]),
        "masked_lm_weights": jnp.ones((1, 1)),
    }
    keys = jax.random.split(jax.random.key(0), 4000)
    outputs = nnx.vmap(lambda m, k: m(batch, k), in_axes=(None, 0))(model, keys)
    counts = np.bincount(np.asarray(outputs["sampled_ids"]).ravel(), minlength=12)
    probs = np.asarray(jax.nn.softmax(outputs["mlm_logits"][0, 0, 0]), np.float64)
    assert probs.max() > 0.3 and probs.min() < 2e-3  # the bias spreads the distribution
    expected = probs * counts.sum()
    common = expected >= 5  # chi-square's usual validity rule; the rare tokens pooled
    observed = np.append(counts[common], counts[~common].sum())
    expected = np.append(expected[common], expected[~common].sum())
    statistic = ((observed - expected) ** 2 / expected).sum()
    p_value = scipy_stats.chi2.sf(statistic, len(observed) - 1)
    assert p_value > 1e-4, (counts, np.round(expected, 1), p_value)
