"""A fine-tuned model, kept by `bertjax finetune` and exported as Hugging Face's BertFor<Task>
(RobertaPreLayerNormFor<Task> for a pre-LN encoder): transformers loads it and computes
bertjax's logits, and the tokenizer and labels travel with it. `bertjax predict` labels a file
with it as fine-tuning's evaluation did. Also what else reads a fine-tuned model directory:
fine-tuning and `init_from` take its encoder, fill-mask and evaluate refuse it."""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bertjax import checkpoint_compatibility, checkpointing, evaluate_checkpoints, fill_mask
from bertjax.convert import export_hf, import_checkpoint, model_dir
from bertjax.errors import UserError
from bertjax.finetune import inference, model, predict, predict_inputs, steps, trainer
from bertjax.finetune.scores import (
    chunk_scores,
    multilabel_scores,
    regression_scores,
    squad_scores,
)
from bertjax.models.bert import create_model
from tests.test_cli import assert_one_line_error, run_cli
from tests.test_finetune import config_for, tiny_model_dir, write_jsonl, write_squad

# Each finished seed's model is exported and run by transformers on the same ids (float32).
ATOL = 1e-4
PRE_LN = dict(
    layer_norm_placement="pre", position_embedding_type="relative_key",
    position_embedding_init="local",
)  # fmt: skip
ROTARY = dict(position_embedding_type="rotary")  # RoFormer's heads: tagging and QA only
FACTORISED = dict(embedding_size=32)  # Electra's heads: tagging and QA only
FAMILIES = {"post": "Bert", "pre": "RobertaPreLayerNorm", "rotary": "RoFormer",
            "factorised": "Electra", "rotary-gelu": "RoFormer", "factorised-gelu": "Electra",
            "post-gelu": "Electra"}  # fmt: skip
PAIRS = [
    ("the cat sat on the mat", "a cat is on a mat", "entailment"),
    ("the dog ran in the park", "nobody was in the park", "contradiction"),
    ("rain fell all day in paris", "it was wet in paris", "entailment"),
    ("the shop was closed on monday", "the shop was open on monday", "contradiction"),
] * 6
SENTENCES = [
    (["Anna", "lives", "in", "Berlin", "."], ["B-PER", "O", "O", "B-LOC", "O"]),
    (["Tom", "Smith", "visited", "New", "York"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
    (["the", "river", "flows", "through", "Paris"], ["O", "O", "O", "O", "B-LOC"]),
] * 6
CONTEXTS = [
    ("The Nile flows north through Egypt into the sea.", "Where does the Nile flow?", "north"),
    ("Bananas are yellow when ripe and green before.", "What colour are ripe ones?", "yellow"),
]
TEXTS = [w for a, b, _ in PAIRS for w in (a, b)] + [" ".join(t) for t, _ in SENTENCES]
TEXTS += [c for c, _, _ in CONTEXTS] + [q for _, q, _ in CONTEXTS]


def similarity(index: int, verdict: str) -> float:
    """A regression target for PAIRS[index]: high for entailment, low otherwise, not constant."""
    return (4.0 if verdict == "entailment" else 1.0) + 0.1 * (index % 5)


def topics(index: int) -> list[str]:
    """Multilabel targets for PAIRS[index]: what its two texts mention (none, one or two)."""
    words = set(" ".join(PAIRS[index][:2]).split())
    mentions = {"animal": {"cat", "dog"}, "place": {"park", "paris"}, "weather": {"rain", "wet"}}
    return [name for name, names in mentions.items() if words & names]


def options(index: int) -> list[str]:
    """Multiple-choice options for PAIRS[index]: its hypothesis at position index % count
    among the next pairs' (3 choices for even indices, 2 for odd: C3's counts vary)."""
    count = 3 if index % 2 == 0 else 2
    others = [PAIRS[(index + k) % len(PAIRS)][1] for k in range(1, count)]
    return others[: index % count] + [PAIRS[index][1]] + others[index % count :]


def task_files(tmp_path, kind: str) -> tuple[str, dict]:
    """(--task, config overrides) of a small task of `kind` written to `tmp_path`."""
    if kind == "multilabel":
        records = [{"premise": a, "hypothesis": b, "topics": topics(i)}
                   for i, (a, b, _) in enumerate(PAIRS)]  # fmt: skip
        path = write_jsonl(tmp_path / "topics.jsonl", records)
        fields = dict(text_fields="premise,hypothesis", label_field="topics")
        # Not the default threshold: the saved model keeps it, and predict decodes with it.
        return "jsonl", dict(kind=kind, train_file=path, eval_file=path, multilabel_threshold=0.3,
                             **fields)  # fmt: skip
    if kind == "classification":
        records = [{"premise": a, "hypothesis": b, "verdict": y} for a, b, y in PAIRS]
        path = write_jsonl(tmp_path / "pairs.jsonl", records)
        fields = dict(text_fields="premise,hypothesis", label_field="verdict")
        return "jsonl", dict(kind=kind, train_file=path, eval_file=path, **fields)
    if kind == "regression":
        records = [{"premise": a, "hypothesis": b, "score": similarity(i, y)}
                   for i, (a, b, y) in enumerate(PAIRS)]  # fmt: skip
        path = write_jsonl(tmp_path / "scored.jsonl", records)
        fields = dict(text_fields="premise,hypothesis", label_field="score")
        return "jsonl", dict(kind=kind, train_file=path, eval_file=path, **fields)
    if kind == "multiple_choice":  # which hypothesis is the premise's: 2 or 3 choices
        records = [{"premise": a, "options": options(i), "answer": i % len(options(i))}
                   for i, (a, _, _) in enumerate(PAIRS)]  # fmt: skip
        path = write_jsonl(tmp_path / "choices.jsonl", records)
        fields = dict(text_fields="premise", choices_field="options", label_field="answer")
        return "jsonl", dict(kind=kind, train_file=path, eval_file=path, **fields)
    if kind == "tagging":
        records = [{"tokens": t, "tags": g} for t, g in SENTENCES]
        path = write_jsonl(tmp_path / "ner.jsonl", records)
        return "jsonl", dict(kind=kind, train_file=path, eval_file=path)
    path = write_squad(tmp_path / "squad.json", CONTEXTS)
    return "squad", dict(train_file=str(path), eval_file=str(path), max_query_length=16)


# QA trains until the answers come back (test_finetune's recipe for these two questions).
QA_RECIPE = dict(num_epochs=60, learning_rate=3e-3, warmup_fraction=0.0, weight_decay=0.0,
                 max_seq_length=32, doc_stride=32)  # fmt: skip


def finetuned(tmp_path, kind: str, **overrides):
    """The model directory of seed 0 of a one-epoch fine-tune of a random BERT-tiny (QA: until
    it answers)."""
    init = tiny_model_dir(tmp_path, TEXTS * 3, **overrides.pop("architecture", {}))
    task, fields = task_files(tmp_path, kind)
    config = config_for(learning_rate=1e-3, num_epochs=1, batch_size=8, eval_batch_size=8)
    config.update(fields | (QA_RECIPE if kind == "qa" else {}) | overrides)
    trainer.finetune(task, str(init), str(tmp_path / "run"), config)
    return tmp_path / "run" / "seed_0" / trainer.MODEL_DIR


@pytest.fixture(scope="module")
def model_of(tmp_path_factory):
    """kind, placement -> a fine-tuned model directory, made once per module (read-only)."""
    made = {}

    def get(kind: str, placement: str = "post"):
        """placement: the encoder's (post, pre, rotary, factorised), "-gelu" for the GELU
        sequence head."""
        if (kind, placement) not in made:
            directory = tmp_path_factory.mktemp(f"{kind}-{placement}")
            encoder, _, head = placement.partition("-")
            architectures = {"pre": PRE_LN, "rotary": ROTARY, "factorised": FACTORISED}
            overrides = {"sequence_head": head} if head else {}
            made[kind, placement] = finetuned(
                directory, kind, architecture=architectures.get(encoder, {}), **overrides
            )
        return made[kind, placement]

    return get


def bertjax_logits(directory, ids, segments, mask) -> np.ndarray:
    """Logits of the saved fine-tuned model, run by bertjax (eval mode)."""
    _, metadata = checkpointing.open_workdir(directory)
    factory = model.saved_model_factory(
        model_dir.model_config(metadata), model_dir.task_of(metadata)
    )
    graphdef, _ = nnx.split(factory(0), nnx.Param)
    net = nnx.merge(graphdef, checkpointing.restore_params(directory, 0))
    return np.asarray(net(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask)))


# Every kind on both encoders; multilabel's head is classification's (only the loss and the
# decoding differ), so it runs on the post-LN one only; a rotary encoder as RoFormer's classes,
# one with factorised embeddings as Electra's: their token heads, and their sequence-level ones
# with the GELU head (a post-LN BERT encoder with it: Electra's classes). The default suite
# runs every kind once and every family and head once, the models the predict tests read:
# BERT's classification and multilabel, RobertaPreLayerNorm's classification head (regression)
# and multiple choice, RoFormer's token and GELU sequence heads, Electra's QA and GELU sequence
# heads; the other 12 fine-tunes are slow (~20 s each with their two tests on the 2-core CPU
# machine).
KIND_PLACEMENTS = [(kind, placement)
                   for kind in ("classification", "regression", "tagging", "qa", "multiple_choice")
                   for placement in ("post", "pre")] + [("multilabel", "post")]  # fmt: skip
KIND_PLACEMENTS += [("tagging", "rotary"), ("qa", "rotary")]
KIND_PLACEMENTS += [("tagging", "factorised"), ("qa", "factorised")]
KIND_PLACEMENTS += [("classification", "rotary-gelu"), ("multiple_choice", "rotary-gelu"),
                    ("regression", "factorised-gelu"), ("multiple_choice", "factorised-gelu"),
                    ("classification", "post-gelu")]  # fmt: skip
# The model each kind's predict test reads (one of the default suite's).
PREDICTED_PLACEMENT = {
    "classification": "post", "multilabel": "post", "regression": "pre",
    "multiple_choice": "pre", "tagging": "rotary", "qa": "factorised",
}  # fmt: skip
DEFAULT_PLACEMENTS = set(PREDICTED_PLACEMENT.items()) | {
    ("classification", "rotary-gelu"), ("regression", "factorised-gelu"),
}  # fmt: skip
KIND_PLACEMENT_PARAMS = [
    pytest.param(*case, marks=() if case in DEFAULT_PLACEMENTS else pytest.mark.slow)
    for case in KIND_PLACEMENTS
]


@pytest.mark.parametrize(("kind", "placement"), KIND_PLACEMENT_PARAMS)
def test_a_finetuned_model_exports_as_its_task_class(
    tmp_path, transformers, model_of, kind, placement
):
    saved = model_of(kind, placement)
    result = export_hf(saved, tmp_path / "hf")
    family = FAMILIES[placement]
    suffixes = {"tagging": "ForTokenClassification", "qa": "ForQuestionAnswering",
                "multiple_choice": "ForMultipleChoice"}  # fmt: skip
    suffix = suffixes.get(kind, "ForSequenceClassification")
    assert result.architecture == family + suffix
    assert f"transformers.AutoModel{suffix}.from_pretrained(" in result.lines()[1]
    assert result.lines()[0].startswith(f"Exported the fine-tuned {kind} model of {saved} -> ")
    auto = getattr(transformers, "AutoModel" + suffix)
    hf_model = auto.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(hf_model).__name__ == family + suffix  # every weight found, none left over
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    if kind in ("classification", "multilabel", "regression"):
        inputs = tok([a for a, _, _ in PAIRS[:4]], [b for _, b, _ in PAIRS[:4]], padding=True,
                     return_tensors="pt")  # fmt: skip
    elif kind == "tagging":
        inputs = tok([" ".join(t) for t, _ in SENTENCES[:3]], padding=True, return_tensors="pt")
    elif kind == "multiple_choice":  # [examples, choices, length], run_swag's layout
        firsts = [PAIRS[i][0] for i in (0, 2) for _ in range(3)]
        inputs = tok(firsts, [o for i in (0, 2) for o in options(i)], padding=True,
                     return_tensors="pt")  # fmt: skip
        inputs = {k: v.reshape(2, 3, -1) for k, v in inputs.items()}
    else:
        inputs = tok([q for _, q, _ in CONTEXTS], [c for c, _, _ in CONTEXTS], padding=True,
                     return_tensors="pt")  # fmt: skip
    import torch

    with torch.no_grad():
        out = hf_model(**inputs)
    ids, segments, mask = (inputs[k].numpy() for k in ("input_ids", "token_type_ids",
                                                        "attention_mask"))  # fmt: skip
    ours = bertjax_logits(saved, ids, segments, mask)
    if kind == "qa":
        theirs = np.stack([out.start_logits.numpy(), out.end_logits.numpy()], axis=-1)
    else:
        theirs = out.logits.numpy()
    real = mask.astype(bool) if kind in ("tagging", "qa") else slice(None)
    if kind == "multiple_choice":  # BertForMultipleChoice's loss is bertjax's cross-entropy
        answers = torch.tensor([0, 2])  # options(0) puts it first, options(2) last
        with torch.no_grad():
            hf_loss = hf_model(**inputs, labels=answers).loss
        batch = {"labels": jnp.asarray(answers.numpy()), "weights": jnp.ones(2),
                 "choice_mask": jnp.ones((2, 3))}  # fmt: skip
        total, count = steps.task_loss(jnp.asarray(ours), batch, "multiple_choice")
        assert float(total / count) == pytest.approx(float(hf_loss), rel=1e-4)
    # ATOL, relative to the logits' scale where it is under 1 (the GELU head starts with
    # logits of ~1e-3: two dense layers initialised at 0.02).
    scale = min(1.0, float(np.abs(ours[real]).max()))
    np.testing.assert_allclose(theirs[real], ours[real], atol=ATOL * scale, rtol=0)
    assert scale > 1e-3  # a trained head, not zeros
    if kind == "regression":  # one output, and Hugging Face's loss for it is bertjax's
        assert hf_model.config.problem_type == "regression" and hf_model.config.num_labels == 1
        targets = np.array([similarity(i, y) for i, (_, _, y) in enumerate(PAIRS[:4])])
        with torch.no_grad():
            hf_loss = hf_model(**inputs, labels=torch.tensor(targets, dtype=torch.float32)).loss
        batch = {"labels": jnp.asarray(targets, jnp.float32), "weights": jnp.ones(4)}
        total, count = steps.task_loss(jnp.asarray(ours), batch, "regression")
        assert float(total / count) == pytest.approx(float(hf_loss), rel=1e-4)
    if kind == "multilabel":  # a sigmoid per label: binary cross-entropy, averaged, as bertjax's
        assert hf_model.config.problem_type == "multi_label_classification"
        names = hf_model.config.id2label.values()
        targets = np.array([[float(n in topics(i)) for n in names] for i in range(4)])
        with torch.no_grad():
            hf_loss = hf_model(**inputs, labels=torch.tensor(targets, dtype=torch.float32)).loss
        batch = {"labels": jnp.asarray(targets, jnp.float32), "weights": jnp.ones(4)}
        total, count = steps.task_loss(jnp.asarray(ours), batch, "multilabel")
        assert float(total / count) == pytest.approx(float(hf_loss), rel=1e-4)
    labels = {
        "classification": ["contradiction", "entailment"],
        "multilabel": ["animal", "place", "weather"],
        "tagging": ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"],
    }.get(kind)
    if labels:
        assert hf_model.config.id2label == dict(enumerate(labels))
        assert hf_model.config.label2id == {label: i for i, label in enumerate(labels)}
    assert hf_model.config.finetuning_task == ("squad" if kind == "qa" else "jsonl")


def test_the_export_serves_a_transformers_pipeline_with_the_task_labels(
    tmp_path, transformers, model_of
):
    saved = model_of("classification")
    result = run_cli("export", f"--workdir={saved}", f"--out={tmp_path / 'hf'}")
    assert result.returncode == 0, result.stderr
    assert "(BertForSequenceClassification: 2 layers, hidden 64" in result.stdout
    assert f'transformers.pipeline("text-classification", model="{tmp_path / "hf"}"' in (
        result.stdout
    )
    classify = transformers.pipeline(
        "text-classification", model=str(tmp_path / "hf"), framework="pt"
    )
    a, b, _ = PAIRS[1]
    answer = classify({"text": a, "text_pair": b}, top_k=None)
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    inputs = tok(a, b, return_tensors="np")
    logits = bertjax_logits(
        saved, inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"]
    )[0]
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    by_label = {entry["label"]: entry["score"] for entry in answer}
    expected = dict(zip(["contradiction", "entailment"], probabilities, strict=True))
    assert by_label.keys() == expected.keys()
    for label, probability in expected.items():
        assert by_label[label] == pytest.approx(probability, abs=1e-5)


def test_the_saved_model_records_its_task_and_seeds_a_later_fine_tune(model_of):
    saved = model_of("tagging", PREDICTED_PLACEMENT["tagging"])
    _, metadata = checkpointing.open_workdir(saved)
    task = model_dir.task_of(metadata)
    assert task == {"name": "jsonl", "kind": "tagging", "max_seq_length": 64, "pooling": "cls",
                    "labels": ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"],
                    "tokens_field": "tokens"}  # fmt: skip
    init = saved.parents[2] / "model"  # finetuned(): the random BERT-tiny beside the run
    assert metadata["finetuned_from"] == str(init)
    assert metadata["finetuned_from_step"] == model_dir.IMPORT_STEP  # the init's checkpoint
    assert (saved / "vocab.txt").read_bytes() == (init / "vocab.txt").read_bytes()
    # Its encoder starts another fine-tune (intermediate-task transfer); the head is fresh.
    _, encoder, lowercase, _, _ = model.load_encoder(str(saved))
    trained = checkpointing.restore_params(saved, 0)
    assert lowercase is True
    for got, want in zip(jax_leaves(encoder), jax_leaves(trained["bert"]), strict=True):
        np.testing.assert_array_equal(got, want)
    # ... and a pretraining run's init_from (encoder only: its objective is another).
    config = model_dir.model_config(metadata)
    abstract = nnx.state(nnx.eval_shape(lambda: create_model(config, 0)), nnx.Param)
    fields = {name: getattr(config, name) for name in checkpoint_compatibility.ARCHITECTURE_FIELDS}
    loaded = checkpointing.load_init_params(str(saved), abstract.to_pure_dict(), fields | {
        "objective": "bert"})  # fmt: skip
    assert set(loaded) == {"bert"}


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_a_fine_tune_whose_models_will_not_export_says_so_before_training(tmp_path, caplog):
    """A rotary encoder's classifier with BERT's pooler head: the warning names the fix, and
    export refuses it with the same words."""
    with caplog.at_level("WARNING"):
        saved = finetuned(tmp_path, "classification", architecture=ROTARY)
    refusal = "this classification model has rotary positions and BERT's pooler head"
    assert f"will not export to Hugging Face: {refusal}" in caplog.text
    assert "--config.sequence_head=gelu" in caplog.text
    with pytest.raises(UserError, match=refusal):
        export_hf(saved, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_what_cannot_read_a_finetuned_model_says_so_in_one_line(tmp_path):
    saved = finetuned(tmp_path, "classification", pooling="mean")
    with pytest.raises(UserError, match="mean-pooled states .* --config.pooling=cls"):
        export_hf(saved, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()  # refused before anything is written
    with pytest.raises(UserError, match="fine-tuned for jsonl .* fill-mask needs; pass the model"):
        fill_mask.fill_mask(str(saved), ["the [MASK] sat"], top_k=1)
    with pytest.raises(UserError, match=r"evaluate needs; pass the model it was fine-tuned from, "
                       rf".*model \(--step={model_dir.IMPORT_STEP}\)$"):  # fmt: skip
        evaluate_checkpoints.run_evaluate(str(saved))


def test_save_model_false_keeps_only_the_scores_and_a_rerun_reuses_the_seed(tmp_path):
    init = tiny_model_dir(tmp_path, TEXTS * 3)
    task, fields = task_files(tmp_path, "classification")
    config = config_for(learning_rate=1e-3, num_epochs=1, batch_size=8, eval_batch_size=8)
    config.update(fields | {"save_model": False})
    first = trainer.finetune(task, str(init), str(tmp_path / "run"), config)
    assert not (tmp_path / "run" / "seed_0" / trainer.MODEL_DIR).exists()
    config.save_model = True  # not a recipe field: the finished seed is reused, not redone
    assert (
        trainer.finetune(task, str(init), str(tmp_path / "run"), config)["seeds"] == first["seeds"]
    )


@pytest.mark.parametrize(
    "kind", ["classification", "multilabel", "regression", "tagging", "qa", "multiple_choice"]
)
def test_predict_labels_a_file_as_fine_tuning_scored_it(tmp_path, model_of, kind, monkeypatch):
    """`bertjax predict` on the eval file gives the predictions behind the eval scores; read in
    chunks of 2 records (questions), as a large file is, it writes the same lines."""
    saved = model_of(kind, PREDICTED_PLACEMENT[kind])
    result = json.loads((saved.parent / "result.json").read_text())
    _, fields = task_files(tmp_path, kind)
    out = tmp_path / "predictions.jsonl"
    if kind == "qa":  # questions to answer need no answers
        data = json.loads(Path(fields["eval_file"]).read_text())
        for paragraph in data["data"][0]["paragraphs"]:
            for question in paragraph["qas"]:
                del question["answers"]
        Path(fields["eval_file"]).write_text(json.dumps(data))
    done = predict.predict_file(str(saved), fields["eval_file"], str(out), batch_size=8)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    monkeypatch.setattr(predict_inputs, "CHUNK_RECORDS", 2)
    chunked = predict.predict_file(str(saved), fields["eval_file"], str(tmp_path / "c.jsonl"),
                                   batch_size=8)  # fmt: skip
    assert (tmp_path / "c.jsonl").read_text() == out.read_text() and chunked.count == done.count
    as_json = tmp_path / "predictions.json"  # a JSON array (QA: SQuAD's {id: answer})
    predict.predict_file(str(saved), fields["eval_file"], str(as_json), batch_size=8)
    expected = {r["id"]: r["prediction"] for r in lines} if kind == "qa" else lines
    assert json.loads(as_json.read_text()) == expected
    if kind == "classification":
        assert done.count == len(lines) == len(PAIRS)
        right = [r["prediction"] == r["verdict"] for r in lines]
        assert np.mean(right) == pytest.approx(result["accuracy"])
        first = lines[0]
        assert first["premise"] == PAIRS[0][0]  # the record comes back with its prediction
        assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert max(first["probabilities"], key=first["probabilities"].get) == first["prediction"]
    elif kind == "multilabel":
        assert done.count == len(lines) == len(PAIRS)
        assert "texts labelled by a jsonl model" in done.line()
        names = ["animal", "place", "weather"]
        predicted = [[float(n in r["prediction"]) for n in names] for r in lines]
        true = [[float(n in r["topics"]) for n in names] for r in lines]
        rescored = multilabel_scores(predicted, true, names)
        assert rescored == pytest.approx({k: result[k] for k in rescored})  # per-label F1 too
        assert {f"f1/{n}" for n in names} <= set(rescored)
        for r in lines:  # each label's own probability; the prediction: those over 0.3
            assert list(r["probabilities"]) == names
            assert r["prediction"] == [n for n, p in r["probabilities"].items() if p > 0.3]
        assert any(0.3 < p <= 0.5 for r in lines for p in r["probabilities"].values())
        # A threshold chosen after fine-tuning (e.g. on a dev split) replaces the recorded one.
        at_half = tmp_path / "at_half.jsonl"
        predict.predict_file(str(saved), fields["eval_file"], str(at_half), batch_size=8,
                             multilabel_threshold=0.5)  # fmt: skip
        for r, again in zip(lines, map(json.loads, at_half.read_text().splitlines()), strict=True):
            assert again["probabilities"] == r["probabilities"]
            assert again["prediction"] == [n for n, p in r["probabilities"].items() if p > 0.5]
        with pytest.raises(UserError, match=r"--multilabel_threshold=1.5 must be in \(0, 1\)"):
            predict.predict_file(str(saved), fields["eval_file"], str(tmp_path / "new" / "p.jsonl"),
                                 multilabel_threshold=1.5)  # fmt: skip
        assert not (tmp_path / "new").exists()  # refused before anything is made
    elif kind == "regression":
        assert done.count == len(lines) == len(PAIRS)
        assert "texts scored by a jsonl model" in done.line()
        predicted = [r["prediction"] for r in lines]
        scores = regression_scores(predicted, [r["score"] for r in lines])
        assert scores == pytest.approx({k: result[k] for k in ("pearson", "spearman", "mse")})
        assert isinstance(predicted[0], float) and np.ptp(predicted) > 0
    elif kind == "multiple_choice":
        assert done.count == len(lines) == len(PAIRS)
        assert "choices made by a jsonl model" in done.line()
        right = [r["prediction"] == r["answer"] for r in lines]
        assert np.mean(right) == pytest.approx(result["accuracy"])
        assert [len(r["probabilities"]) for r in lines[:2]] == [3, 2]
        assert all(r["predicted_choice"] == r["options"][r["prediction"]] for r in lines)
    elif kind == "tagging":
        assert len(lines) == len(SENTENCES)
        true = [r["tags"] for r in lines]
        predicted = [r["predicted_tags"] for r in lines]
        assert [len(p) for p in predicted] == [len(t) for t in true]
        assert chunk_scores(true, predicted)["f1"] == pytest.approx(result["f1"])
    else:
        assert [r["id"] for r in lines] == ["q0", "q1"]
        gold = {f"q{i}": [a] for i, (_, _, a) in enumerate(CONTEXTS)}
        answers = {r["id"]: r["prediction"] for r in lines}
        assert squad_scores(answers, gold)["exact_match"] == result["exact_match"] == 1.0


def test_predict_errors_are_one_line_and_name_the_fix(tmp_path, monkeypatch):
    init = tiny_model_dir(tmp_path, TEXTS * 3)
    task, fields = task_files(tmp_path, "classification")
    flags = [f"--config.{k}={v}" for k, v in fields.items()]
    result = run_cli("finetune", f"--task={task}", f"--init={init}",
                     f"--workdir={tmp_path / 'run'}", "--config.seeds=0", "--config.num_epochs=1",
                     "--config.batch_size=8", "--config.eval_batch_size=8", *flags)  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "run" / "seed_0" / trainer.MODEL_DIR
    assert f"fine-tuned models: {saved}" in result.stdout  # where predict and export find it
    other = write_jsonl(tmp_path / "other.jsonl", [{"text": "no premise here"}])
    with pytest.raises(
        UserError,
        match="has no field 'premise'; the model reads 'premise', "
        "'hypothesis' .*: name yours with --text_fields=NAME",
    ):
        predict.predict_file(str(saved), other, str(tmp_path / "p.jsonl"))
    null = write_jsonl(tmp_path / "null.jsonl", [{"premise": None, "hypothesis": "a pet"}])
    with pytest.raises(UserError, match="record 1 of .*null.jsonl: 'premise' is null, not text"):
        predict.predict_file(str(saved), null, str(tmp_path / "p.jsonl"))
    with pytest.raises(UserError, match="is not a fine-tuned model; pass a seed's model"):
        predict.predict_file(str(tmp_path / "model"), other, str(tmp_path / "p.jsonl"))
    with pytest.raises(UserError, match="--input=.* does not exist"):
        predict.predict_file(str(saved), str(tmp_path / "none.jsonl"), str(tmp_path / "p.jsonl"))
    with pytest.raises(UserError, match="is a directory; name a file"):
        predict.predict_file(str(saved), other, str(tmp_path))
    assert not (tmp_path / "p.jsonl").exists()
    # Every record is checked before the model runs: a bad one in a later chunk stops predict
    # before anything is written, and a failure while writing leaves an earlier output whole.
    monkeypatch.setattr(predict_inputs, "CHUNK_RECORDS", 1)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"premise": "a", "hypothesis": "b"}] * 2
                        + [{"premise": "a"}])  # fmt: skip
    with pytest.raises(UserError, match="record 3 of .*mixed.jsonl has no field 'hypothesis'"):
        predict.predict_file(str(saved), mixed, str(tmp_path / "p.jsonl"))
    assert not (tmp_path / "p.jsonl").exists()
    (tmp_path / "p.jsonl").write_text("earlier\n")
    decode, calls = inference.decode, []

    def failing_decode(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return decode(*args)

    monkeypatch.setattr(inference, "decode", failing_decode)
    two = write_jsonl(tmp_path / "two.jsonl", [{"premise": "a", "hypothesis": "b"}] * 2)
    with pytest.raises(RuntimeError, match="interrupted"):
        predict.predict_file(str(saved), two, str(tmp_path / "p.jsonl"))
    assert (tmp_path / "p.jsonl").read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.glob("p.jsonl*")) == ["p.jsonl"]
    monkeypatch.setattr(inference, "decode", decode)
    (tmp_path / "p.jsonl").unlink()
    result = run_cli("predict", f"--model={saved}", f"--input={other}")
    assert_one_line_error(result, "predict needs --model=FINETUNE_DIR/seed_<s>/model, --input")
    pairs = write_jsonl(tmp_path / "pairs2.jsonl", [{"premise": "a cat", "hypothesis": "a pet"}])
    result = run_cli("predict", f"--model={saved}", f"--input={pairs}",
                     f"--out={tmp_path / 'p.jsonl'}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 texts classified by a jsonl model" in result.stdout
    first = json.loads((tmp_path / "p.jsonl").read_text())
    assert first["prediction"] in PAIRS_LABELS
    # New data whose fields are named otherwise: --text_fields maps them, in the model's order.
    renamed = write_jsonl(tmp_path / "renamed.jsonl", [{"s1": "a cat", "s2": "a pet"}])
    again = predict.predict_file(str(saved), renamed, str(tmp_path / "q.jsonl"),
                                 text_fields="s1,s2")  # fmt: skip
    assert again.count == 1
    second = json.loads((tmp_path / "q.jsonl").read_text())
    assert second["probabilities"] == first["probabilities"]
    # A TSV file without a header row: --column_names names its columns.
    (tmp_path / "pairs.tsv").write_text("a cat\ta pet\na dog\ta pet\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"if .*pairs.tsv has no header row, name its columns: "
                       r"--column_names=A,B,\.\.\.$"):  # fmt: skip
        predict.predict_file(str(saved), str(tmp_path / "pairs.tsv"), str(tmp_path / "t.jsonl"))
    predict.predict_file(str(saved), str(tmp_path / "pairs.tsv"), str(tmp_path / "t.jsonl"),
                         column_names="premise,hypothesis")  # fmt: skip
    third = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert third["probabilities"] == first["probabilities"]
    with pytest.raises(UserError, match="names 1 fields; the model reads 2 .premise, hypothesis"):
        predict.predict_file(str(saved), renamed, str(tmp_path / "q.jsonl"), text_fields="s1")
    with pytest.raises(UserError, match="--tokens_field does not apply to a classification"):
        predict.predict_file(str(saved), renamed, str(tmp_path / "q.jsonl"), tokens_field="w")
    with pytest.raises(UserError, match="--multilabel_threshold does not apply to a classif"):
        predict.predict_file(str(saved), renamed, str(tmp_path / "q.jsonl"),
                             text_fields="s1,s2", multilabel_threshold=0.4)  # fmt: skip


PAIRS_LABELS = ("contradiction", "entailment")


@pytest.mark.parametrize(("kind", "placement"), KIND_PLACEMENT_PARAMS)
def test_an_exported_fine_tune_imports_back_and_predicts_the_same(
    tmp_path, transformers, model_of, kind, placement
):
    """export -> `bertjax import`: a fine-tuned model directory again, labels included, whose
    predictions on the eval file are the original's (pre-LN: from RobertaPreLayerNormFor<Task>)."""
    saved = model_of(kind, placement)
    export_hf(saved, tmp_path / "hf")
    result = import_checkpoint(tmp_path / "hf", tmp_path / "back")
    assert result.task["kind"] == kind and result.task["name"] == (
        "squad" if kind == "qa" else "jsonl"
    )
    assert not result.ignored
    assert "bertjax predict --model=" in result.lines()[-1]
    rng = np.random.default_rng(0)
    ids, mask = rng.integers(5, 40, (2, 16)), np.ones((2, 16), np.int32)
    mask[1, 9:] = 0
    ids, segments = ids * mask, np.zeros_like(ids)
    if kind == "multiple_choice":  # one question, its two choices
        ids, segments, mask = (x[None] for x in (ids, segments, mask))
    np.testing.assert_array_equal(bertjax_logits(tmp_path / "back", ids, segments, mask),
                                  bertjax_logits(saved, ids, segments, mask))  # fmt: skip
    _, fields = task_files(tmp_path, kind)
    pairs = kind in ("classification", "multilabel", "regression")
    flags = {"text_fields": "premise,hypothesis"} if pairs else {}
    if kind == "multiple_choice":  # an imported model reads "text" and "choices" unless told
        flags = {"text_fields": "premise", "choices_field": "options"}
    original = predict.predict_file(str(saved), fields["eval_file"], str(tmp_path / "a.jsonl"))
    back = predict.predict_file(str(tmp_path / "back"), fields["eval_file"],
                                str(tmp_path / "b.jsonl"), **flags)  # fmt: skip
    assert back.task["labels"] == original.task["labels"]
    if kind == "multilabel":  # through config.json: the fine-tune's, not the default 0.5
        assert back.task["multilabel_threshold"] == original.task["multilabel_threshold"] == 0.3
    if kind == "qa":  # SQuAD v1.1 data: every question answered, before and after
        assert back.task["null_score_diff_threshold"] is None
        assert original.task["null_score_diff_threshold"] is None
    a = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    key = "predicted_tags" if kind == "tagging" else "prediction"
    assert [r[key] for r in b] == [r[key] for r in a]
    if kind in ("classification", "multilabel"):
        for x, y in zip(a, b, strict=True):
            for label, p in x["probabilities"].items():
                assert y["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_a_transformers_classifier_imports_with_its_labels_and_logits(tmp_path, transformers):
    import torch

    init = tiny_model_dir(tmp_path, TEXTS * 3)
    vocab_size = len((init / "vocab.txt").read_text().splitlines())
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128, id2label=labels,
        label2id={v: k for k, v in labels.items()}, finetuning_task="sentiment",
    )  # fmt: skip
    torch.manual_seed(0)
    hf_model = transformers.BertForSequenceClassification(config).eval()
    hf_model.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "vocab.txt").write_bytes((init / "vocab.txt").read_bytes())
    result = import_checkpoint(tmp_path / "hf", tmp_path / "model_dir")
    assert result.task == {"name": "sentiment", "kind": "classification", "pooling": "cls",
                           "sequence_head": "pooler", "max_seq_length": 128,
                           "labels": ["negative", "neutral", "positive"]}  # fmt: skip
    assert result.initialised == [] and result.ignored == []
    tok = transformers.BertTokenizer(str(init / "vocab.txt"), do_lower_case=True)
    inputs = tok(["the cat sat on the mat", "rain fell"], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = hf_model(**inputs).logits.numpy()
    ids, segments, mask = (inputs[k].numpy() for k in ("input_ids", "token_type_ids",
                                                        "attention_mask"))  # fmt: skip
    ours = bertjax_logits(tmp_path / "model_dir", ids, segments, mask)
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
    with pytest.raises(UserError, match="fill-mask needs; pass a pretraining workdir or an"):
        fill_mask.fill_mask(str(tmp_path / "model_dir"), ["the [MASK] sat"], top_k=1)
    # A regression model (one output; transformers infers problem_type from it) imports as one.
    regression = transformers.BertConfig(**(config.to_dict() | {"id2label": None,
                                                                "label2id": None}))  # fmt: skip
    regression.num_labels = 1
    hf_regression = transformers.BertForSequenceClassification(regression).eval()
    hf_regression.save_pretrained(tmp_path / "regression")
    (tmp_path / "regression" / "vocab.txt").write_bytes((init / "vocab.txt").read_bytes())
    assert import_checkpoint(tmp_path / "regression", tmp_path / "regression_dir").task == {
        "name": "sentiment", "kind": "regression", "pooling": "cls", "sequence_head": "pooler",
        "labels": [], "max_seq_length": 128}  # fmt: skip
    with torch.no_grad():
        theirs = hf_regression(**inputs).logits.numpy()
    ours = bertjax_logits(tmp_path / "regression_dir", ids, segments, mask)
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
    # A multi-label model (a sigmoid per label) imports as a multilabel one; `bertjax predict`
    # gives each label the probability a transformers pipeline gives it.
    config.problem_type = "multi_label_classification"
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "multi")
    (tmp_path / "multi" / "vocab.txt").write_bytes((init / "vocab.txt").read_bytes())
    result = import_checkpoint(tmp_path / "multi", tmp_path / "multi_dir")
    assert result.task["kind"] == "multilabel"
    assert result.task["labels"] == ["negative", "neutral", "positive"]
    assert result.task["multilabel_threshold"] == 0.5  # transformers' config has none
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"text": "the cat sat on the mat"}])
    predict.predict_file(str(tmp_path / "multi_dir"), texts, str(tmp_path / "multi.jsonl"))
    ours = json.loads((tmp_path / "multi.jsonl").read_text())
    classify = transformers.pipeline("text-classification", model=str(tmp_path / "multi"),
                                     tokenizer=tok, framework="pt")  # fmt: skip
    theirs = {e["label"]: e["score"] for e in classify("the cat sat on the mat", top_k=None)}
    assert sum(theirs.values()) != pytest.approx(1.0, abs=1e-3)  # sigmoids, not a softmax
    assert ours["probabilities"] == pytest.approx(theirs, abs=1e-5)
    assert ours["prediction"] == [label for label, p in theirs.items() if p > 0.5]
    # What bertjax does not compute is refused before anything is written.
    config.problem_type = "regression"  # with 3 outputs: no head bertjax has
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "odd")
    (tmp_path / "odd" / "vocab.txt").write_bytes((init / "vocab.txt").read_bytes())
    with pytest.raises(UserError, match="is a regression model with 3 outputs, not 1"):
        import_checkpoint(tmp_path / "odd", tmp_path / "odd_dir")
    assert not (tmp_path / "odd_dir").exists()
    config.problem_type = "multi_label_classification"
    config.multilabel_threshold = 1.5
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "odd")
    with pytest.raises(UserError, match="multilabel_threshold 1.5 is not a number in"):
        import_checkpoint(tmp_path / "odd", tmp_path / "odd_dir")
    assert not (tmp_path / "odd_dir").exists()
