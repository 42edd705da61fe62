"""Held-out evaluation with fixed masks: during training (eval_every) and `bertjax evaluate`."""

import gzip
import json
import shutil
import warnings

import jax
import numpy as np
import pytest

from bertjax import evaluate_checkpoints, evaluation, train, unigram
from bertjax.config import from_config, validate
from bertjax.convert import model_dir
from bertjax.data import corpus
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.masking_spec import MaskingSpec
from bertjax.errors import UserError
from tests.test_cli import run_cli
from tests.test_smoke import small_smoke_config

EVAL_SETTINGS = dict(
    eval_every=3, eval_holdout_fraction=0.2, eval_examples=16, eval_batch_size=8, log_every=3
)


@pytest.fixture(scope="module")
def run_with_eval(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("eval")
    workdir = tmp_path / "workdir"
    config = small_smoke_config(tmp_path, keep_checkpoint_period=3, **EVAL_SETTINGS)
    train.train_and_evaluate(config, workdir)
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return config, workdir, records


def test_holdout_split_is_disjoint_complete_and_depends_on_text_only():
    texts = [f"document number {i}. It has text." for i in range(2000)]
    held = [text for text in texts if corpus.is_held_out(text, 0.1)]
    kept = [text for text in texts if not corpus.is_held_out(text, 0.1)]
    assert sorted(held + kept) == sorted(texts) and not set(held) & set(kept)
    assert 150 <= len(held) <= 250  # 10% of 2000, binomial sd ~13
    assert [text for text in reversed(texts) if corpus.is_held_out(text, 0.1)] == held[::-1]


def test_training_logs_held_out_metrics_every_eval_every_steps(run_with_eval):
    _, _, records = run_with_eval
    evals = [r for r in records if "eval_mlm_accuracy" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        assert 0 <= r["eval_mlm_accuracy"] <= 1 and 0 <= r["eval_nsp_accuracy"] <= 1
        assert r["eval_mlm_loss"] > 0 and "loss" not in r  # apart from the training lines
    assert evals[1]["eval_mlm_loss"] < evals[0]["eval_mlm_loss"]


def test_evaluate_matches_training_and_repeats_exactly(run_with_eval):
    _, workdir, records = run_with_eval
    in_training = {r["step"]: r for r in records if "eval_mlm_loss" in r}
    first = evaluate_checkpoints.run_evaluate(str(workdir), all_steps=True)
    again = evaluate_checkpoints.run_evaluate(str(workdir), all_steps=True)
    assert [r["step"] for r in first] == [3, 6]
    assert first == again  # fixed masks: identical numbers on repeated calls
    for r in first:
        assert r["examples"] == 16
        for name in ("mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
            assert r[name] == pytest.approx(in_training[r["step"]][f"eval_{name}"], rel=1e-6)


@pytest.mark.multi_device
def test_evaluate_runs_on_its_own_mesh_whatever_the_run_s_batch(run_with_eval, tmp_path):
    """evaluate is data parallel over every device: a run trained elsewhere (its eval batch of
    12 for 4 or 6 devices, an FSDP mesh) was a sharding traceback here on 8; now its batch
    is rounded to the devices."""
    _, workdir, _ = run_with_eval
    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    saved = json.loads((other / "config.json").read_text())
    saved |= {"eval_batch_size": 12, "mesh_shape": {"data": 1, "fsdp": -1, "tensor": 1}}
    (other / "config.json").write_text(json.dumps(saved))
    (record,) = evaluate_checkpoints.run_evaluate(str(other), steps=[6])
    assert record["examples"] == 16  # 2 batches of 8
    batch_size = evaluate_checkpoints.evaluation_batch_size
    assert [batch_size(64, 3, 1), batch_size(2, 8, 2), batch_size(12, 4, 6)] == [63, 8, 12]


def test_eval_set_is_fixed_and_never_seen_in_training(run_with_eval):
    config, _, _ = run_with_eval
    first, second = (
        evaluation.build_eval_set(from_config(config)),
        evaluation.build_eval_set(from_config(config)),
    )
    for a, b in zip(first.batches, second.batches, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    texts = list(corpus.read_documents(config.corpus))
    train_texts = [text for text in texts if not corpus.is_held_out(text, 0.2)]
    held_texts = [text for text in texts if corpus.is_held_out(text, 0.2)]
    assert held_texts and not set(train_texts) & set(held_texts)


def test_evaluate_on_other_files_and_bad_requests(run_with_eval, tmp_path):
    _, workdir, _ = run_with_eval
    other = SAMPLE_CORPUS.replace("*", "genesis")
    records = evaluate_checkpoints.run_evaluate(
        str(workdir), data=other, steps=[6], out=str(tmp_path / "e")
    )
    assert [r["step"] for r in records] == [6]
    assert json.loads((tmp_path / "e").read_text())["mlm_loss"] == records[0]["mlm_loss"]
    with pytest.raises(UserError, match="no checkpoint at step 4"):
        evaluate_checkpoints.run_evaluate(str(workdir), steps=[4])
    with pytest.raises(UserError, match="holds no checkpoint .*; pass a training workdir"):
        evaluate_checkpoints.run_evaluate(str(tmp_path))
    # A run that held nothing out: evaluate's flag to give (eval_holdout_fraction is training's)
    shutil.copytree(workdir, tmp_path / "no_holdout")
    run_config = json.loads((tmp_path / "no_holdout" / "config.json").read_text())
    run_config |= {"eval_holdout_fraction": 0.0, "eval_corpus": "", "eval_every": 0}
    (tmp_path / "no_holdout" / "config.json").write_text(json.dumps(run_config))
    with pytest.raises(UserError, match=r"trained with no held-out data .*; pass text it did not "
                                        r"train on: --data=FILES$"):  # fmt: skip
        evaluate_checkpoints.run_evaluate(str(tmp_path / "no_holdout"))
    # Corpus errors name the flag that gave the files (they said --config.corpus).
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match=r"matched no files; pass existing .* with --data=\.\.\.$"):
        evaluate_checkpoints.run_evaluate(str(workdir), data=str(tmp_path / "none*.jsonl"))
    with pytest.raises(UserError, match=r"has no documents .*; check --data$"):
        evaluate_checkpoints.run_evaluate(str(workdir), data=str(tmp_path / "empty.jsonl"))
    (tmp_path / "one.jsonl").write_text('{"text": "One document. Of two sentences."}\n')
    with pytest.raises(UserError, match=r"2 non-empty documents.*add documents to --data") as e:
        evaluate_checkpoints.run_evaluate(str(workdir), data=str(tmp_path / "one.jsonl"))
    assert "packing" not in str(e.value)  # training's advice: evaluate takes no such flag
    with pytest.raises(UserError, match=r"; check --config.eval_corpus$"):
        config = small_smoke_config(tmp_path, eval_corpus=str(tmp_path / "empty.jsonl"))
        evaluation.build_eval_set(validate(config))
    with pytest.raises(UserError, match=r"with --config.eval_corpus=\.\.\.$"):
        validate(small_smoke_config(tmp_path, eval_corpus=str(tmp_path / "no*.jsonl")), tmp_path)


def test_eval_every_without_held_out_data_is_refused(tmp_path):
    config = small_smoke_config(tmp_path, eval_every=3)
    with pytest.raises(UserError, match="eval_every=3 needs held-out data"):
        validate(config)
    config = small_smoke_config(tmp_path, eval_holdout_fraction=1.5)
    with pytest.raises(UserError, match="eval_holdout_fraction=1.5"):
        validate(config)


def test_held_out_metrics_carry_the_unigram_baseline_and_distinct_predictions(run_with_eval):
    config, workdir, records = run_with_eval
    counts = np.load(workdir / unigram.TOKEN_COUNTS_FILE)
    eval_set = evaluation.build_eval_set(from_config(config), counts=counts)
    labels = np.concatenate(
        [b["masked_lm_ids"][b["masked_lm_weights"] > 0] for b in eval_set.batches]
    )
    probabilities = (counts + 0.5) / (counts + 0.5).sum()
    last = [r for r in records if "eval_mlm_loss" in r][-1]
    assert last["eval_unigram_mlm_loss"] == pytest.approx(-np.log(probabilities[labels]).mean())
    assert last["eval_unigram_mlm_accuracy"] == pytest.approx(np.mean(labels == counts.argmax()))
    assert last["eval_mlm_distinct_labels"] == len(np.unique(labels))
    assert 1 <= last["eval_mlm_distinct_predictions"] <= len(labels)


def test_token_counts_skip_specials_padding_and_restore_masked_originals():
    instances = {
        "input_ids": np.array([[3, 7, 8, 7, 4, 0], [3, 9, 4, 0, 0, 0]]),
        "input_mask": np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]),
    }
    counts = unigram.token_counts(instances, 10, special_ids=[0, 3, 4])
    assert counts.tolist() == [0, 0, 0, 0, 0, 0, 0, 2, 1, 1]
    masked = {  # position 2 of row 0 shows [MASK] (5) but held 8
        "input_ids": np.array([[3, 7, 5, 7, 4, 0]]),
        "input_mask": np.array([[1, 1, 1, 1, 1, 0]]),
        "masked_lm_positions": np.array([[2, 0]]),
        "masked_lm_ids": np.array([[8, 0]]),
        "masked_lm_weights": np.array([[1.0, 0.0]]),
    }
    sampled = unigram.sampled_token_counts([masked], 10, special_ids=[0, 3, 4])
    assert sampled.tolist() == [0, 0, 0, 0, 0, 0, 0, 2, 1, 0]


def test_plateau_warning_past_warmup_only_and_within_the_margin():
    plateau = dict(
        mlm_loss=6.4, mlm_accuracy=0.13, unigram_mlm_loss=7.1, unigram_mlm_accuracy=0.04,
        mlm_distinct_predictions=31,
    )  # fmt: skip
    warning = evaluation.plateau_warning(2000, plateau, warmup_steps=200)
    assert "frequency plateau" in warning and "only 0.70 nats below" in warning
    assert "31 distinct" in warning
    worse = evaluation.plateau_warning(2000, {**plateau, "mlm_loss": 7.5}, warmup_steps=200)
    assert "7.500 is 0.40 nats above token frequencies" in worse
    assert evaluation.plateau_warning(200, plateau, warmup_steps=200) is None
    learned = {**plateau, "mlm_loss": 4.5}
    assert evaluation.plateau_warning(2000, learned, warmup_steps=200) is None
    assert evaluation.plateau_warning(2000, {"mlm_loss": 6.4}, warmup_steps=200) is None


def test_evaluate_reads_other_files_in_their_own_field(run_with_eval, tmp_path):
    """--data in another layout than the run's corpus: its field (and format, encoding) given
    to evaluate, the same documents score the same; without it the error names evaluate's
    flag (it named --config.text_field, which evaluate does not take)."""
    _, workdir, _ = run_with_eval
    other = SAMPLE_CORPUS.replace("*", "genesis")
    with gzip.open(other, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    renamed = tmp_path / "content.jsonl"
    renamed.write_text("".join(json.dumps({"content": t}) + "\n" for t in texts))
    expected = evaluate_checkpoints.run_evaluate(str(workdir), data=other, steps=[6])
    records = evaluate_checkpoints.run_evaluate(
        str(workdir), data=str(renamed), steps=[6], data_reading={"text_field": "content"}
    )
    assert records == expected
    result = run_cli("evaluate", f"--workdir={workdir}", "--step=6", f"--data={renamed}")
    assert result.returncode == 2
    assert "without field 'text' (first: line 1, fields: content)); check --text_field (" in (
        result.stderr
    )


def test_evaluate_command_line(run_with_eval):
    _, workdir, _ = run_with_eval
    result = run_cli("evaluate", f"--workdir={workdir}", "--step=6")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("step") and lines[-2].split()[:2] == ["6", "16"]
    assert lines[-1].startswith("token frequencies alone on the same positions: mlm_loss")
    bad = run_cli("evaluate", f"--workdir={workdir}", "--step=6", "--all_steps")
    assert bad.returncode == 2 and "not both" in bad.stderr


def test_held_out_masks_are_berts_whatever_the_training_rate(run_with_eval):
    config, _, _ = run_with_eval
    standard = evaluation.build_eval_set(from_config(config))
    other = config.copy_and_resolve_references()
    other.masked_lm_prob, other.max_predictions_per_seq = 0.4, 26
    batches = evaluation.build_eval_set(from_config(other)).batches
    for a, b in zip(standard.batches, batches, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert standard.batches[0]["masked_lm_positions"].shape[1] == 10  # 20 per 128 at length 64
    assert evaluation.eval_max_predictions(128) == 20 and evaluation.eval_max_predictions(512) == 80


def test_replaced_token_auc_is_the_chance_a_replaced_token_outscores_an_original():
    """Against the pairwise definition (ties half), on scores with many ties."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 300).astype(np.float32)
    replaced = (rng.random(300) < 0.3 + 0.05 * scores).astype(np.float32)
    positive, negative = scores[replaced > 0], scores[replaced == 0]
    pairs = positive[:, None] - negative[None, :]
    expected = ((pairs > 0) + 0.5 * (pairs == 0)).mean()
    assert evaluation.replaced_token_auc(scores, replaced) == pytest.approx(expected, abs=1e-9)
    assert evaluation.replaced_token_auc(scores, 1 - replaced) == pytest.approx(1 - expected)
    assert np.isnan(evaluation.replaced_token_auc(scores, np.zeros(300)))


def test_the_detection_auc_reads_real_tokens_only(monkeypatch):
    """Padding positions (scored high, never replaced) do not enter the held-out AUC: replaced
    real tokens outscore every original real token, so it is 1."""
    from bertjax import losses, representation, sharding

    monkeypatch.setattr(losses, "summarize", lambda total: {})
    monkeypatch.setattr(representation, "token_state_stats", lambda total: {})
    input_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32)
    kept = {
        "mlm_predictions": np.ones((2, 1), np.int32), "masked_lm_ids": np.ones((2, 1), np.int32),
        "masked_lm_weights": np.ones((2, 1), np.float32), "input_mask": input_mask,
        "rtd_logits": np.array([[2.0, -1.0, 1.0, 9.0], [-2.0, 3.0, 9.0, 9.0]], np.float32),
        "replaced": np.array([[1, 0, 1, 0], [0, 1, 0, 0]], np.float32),
    }  # fmt: skip
    eval_set = evaluation.EvalSet(batches=[{"input_mask": input_mask}], counts=None,
                                  num_examples=2)  # fmt: skip
    mesh = sharding.create_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    result = evaluation.evaluate({}, eval_set, lambda params, batch: ({"n": 1.0}, kept), mesh)
    assert result["rtd_auc"] == 1.0


def test_the_held_out_cap_holds_every_prediction_berts_rate_asks_for_in_a_full_row():
    """Held-out rows are masked at BERT's 15% whatever the training rate: the per-row cap (20 per
    128 tokens, rounded up) never cuts that short, at any length."""
    bert = MaskingSpec(masked_lm_prob=evaluation.EVAL_MASKED_LM_PROB)
    for length in range(8, 1025):
        assert evaluation.eval_max_predictions(length) >= bert.wanted_predictions(length), length


def test_detection_warning_past_warmup_only_and_below_the_floor():
    stuck = dict(rtd_auc=0.55, mlm_accuracy=0.25)
    warning = evaluation.detection_warning(1000, stuck, warmup_steps=145)
    assert "AUC is 0.550" in warning and "objective=bert" in warning and "init_from" in warning
    assert "--config.warmup_steps" in warning
    assert "effective rank" not in warning
    collapsed = evaluation.detection_warning(1000, {**stuck, "token_effective_rank": 3.6}, 145)
    assert "token states' effective rank 3.6" in collapsed
    assert evaluation.detection_warning(145, stuck, warmup_steps=145) is None
    assert evaluation.detection_warning(1000, {**stuck, "rtd_auc": 0.8}, warmup_steps=145) is None
    assert evaluation.detection_warning(1000, {"rtd_auc": float("nan")}, warmup_steps=0) is None
    assert evaluation.detection_warning(1000, {"mlm_loss": 6.4}, warmup_steps=0) is None


def test_held_out_metrics_carry_the_token_states_collapse_statistics(run_with_eval):
    config, workdir, records = run_with_eval
    bert = model_dir.load_model(str(workdir), 6).bert
    tokens = []
    for batch in evaluation.build_eval_set(from_config(config)).batches:
        states = bert(batch["input_ids"], batch["segment_ids"], batch["input_mask"],
                      attention_segment_ids=batch.get("attention_segment_ids"))  # fmt: skip
        tokens.append(np.asarray(states["sequence_output"])[batch["input_mask"] > 0])
    unit = np.concatenate(tokens).astype(np.float64)
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    n = len(unit)
    cosine = ((unit @ unit.T).sum() - n) / (n * (n - 1))
    shares = np.linalg.svd(unit - unit.mean(0), compute_uv=False) ** 2
    shares = shares[shares > 0] / shares.sum()
    last = [r for r in records if "eval_mlm_loss" in r][-1]
    assert last["eval_token_cosine"] == pytest.approx(cosine, abs=1e-4)
    assert last["eval_token_effective_rank"] == pytest.approx(
        np.exp(-np.sum(shares * np.log(shares))), rel=1e-3
    )


@pytest.mark.multi_device
def test_fewer_held_out_instances_than_a_batch_make_one_smaller_batch(tmp_path, caplog):
    """A small corpus's held-out documents may not fill eval_batch_size (64 in
    configs/cpu_budget.py): one batch of as many as the 8 data-parallel shards divide."""
    config = small_smoke_config(tmp_path, eval_every=3, eval_holdout_fraction=0.2,
                                eval_examples=4096, eval_batch_size=4096)  # fmt: skip
    caplog.set_level("WARNING", logger="absl")
    spec = validate(config)
    eval_set = evaluation.build_eval_set(spec)
    rows = eval_set.num_examples
    assert len(eval_set.batches) == 1 and rows % 8 == 0 and 0 < rows < 4096
    assert eval_set.batches[0]["input_ids"].shape[0] == rows  # one process: all rows here
    message = caplog.text.split("The held-out data has ")[1]
    available = int(message.split()[0])
    assert rows == available // 8 * 8
    assert f"fewer than eval_batch_size=4096: evaluating one batch of {rows}" in message
    two = [{"text": "One short held-out document.\n\nIt has two paragraphs."}] * 2
    (tmp_path / "two.jsonl").write_text("".join(json.dumps(d) + "\n" for d in two))
    config.eval_corpus, config.eval_holdout_fraction = str(tmp_path / "two.jsonl"), 0.0
    with pytest.raises(UserError, match=r"instances, fewer than the 8 an evaluation batch needs"):
        evaluation.build_eval_set(validate(config))


def test_a_held_out_set_the_vocabulary_cannot_spell_warns(tmp_path, caplog):
    """Held-out text that is all [UNK] (Greek for an English vocabulary) leaves nothing to mask:
    building the eval set says so, and the unigram baseline is NaN instead of numpy warnings."""
    sentences = ["Η Αθήνα είναι πρωτεύουσα", "Είναι μεγάλη πόλη", "Θα ξαναπάμε τον Μάιο"]
    greek = "\n\n".join(sentences * 6)  # a sentence per paragraph: no ASCII punctuation
    lines = [json.dumps({"text": greek}, ensure_ascii=False)] * 12
    (tmp_path / "greek.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = small_smoke_config(
        tmp_path, eval_corpus=str(tmp_path / "greek.jsonl"), eval_examples=16, eval_batch_size=8
    )
    caplog.set_level("WARNING", logger="absl")
    eval_set = evaluation.build_eval_set(validate(config))
    assert not any(b["masked_lm_weights"].any() for b in eval_set.batches)
    assert "The held-out batches hold no masked position" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        baseline = unigram.unigram_baseline(np.zeros([0], np.int64), np.ones(10))
    assert all(np.isnan(value) for value in baseline.values())


def test_token_counts_cut_short_are_not_used_and_saved_whole(tmp_path, caplog):
    """A token_counts.npy cut short (a kill or a full disk mid-write) was a traceback in every
    later resume and evaluate: it is now not used (a warning), and written beside and renamed."""
    path = tmp_path / unigram.TOKEN_COUNTS_FILE
    counts = np.arange(50, dtype=np.int64)
    unigram.save_token_counts(path, counts)
    np.testing.assert_array_equal(unigram.load_token_counts(path), counts)
    assert sorted(p.name for p in tmp_path.iterdir()) == [unigram.TOKEN_COUNTS_FILE]
    path.write_bytes(path.read_bytes()[:100])
    assert unigram.load_token_counts(path) is None and "is unreadable" in caplog.text
    np.save(path, np.ones((2, 2)))
    assert unigram.load_token_counts(path) is None and "holds no token counts" in caplog.text
    assert unigram.load_token_counts(tmp_path / "absent.npy") is None
