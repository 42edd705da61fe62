"""An output directory that cannot be created where a command is told to write (a file of that
name, a path under a file, a URI where only local paths work) is a one-line UserError naming the
flag, not a traceback, and the file in the way is left as it was (bertjax/paths.make_local_dir)."""

import pytest
from flax import nnx

from bertjax import paths
from bertjax.convert import export, importer, model_dir
from bertjax.data import prepare, vocab
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.tokenizer import train_wordpiece_vocab
from bertjax.errors import UserError
from bertjax.evaluate_checkpoints import run_evaluate
from bertjax.finetune import trainer
from bertjax.models.bert import BertConfig, create_model
from tests.helpers import load_config

TAKEN = r"cannot create {flag}=.*taken: a file of that name exists; choose another {flag}"


def test_make_local_dir(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("keep")
    with pytest.raises(UserError, match=TAKEN.format(flag="--out")):
        paths.make_local_dir(taken, "--out")
    with pytest.raises(UserError, match=r"--out=.*taken/sub: Not a directory; choose another"):
        paths.make_local_dir(taken / "sub", "--out")
    with pytest.raises(UserError, match="--out=gs://b/x is not a local directory"):
        paths.make_local_dir("gs://b/x", "--out")
    assert paths.make_local_dir(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and taken.read_text() == "keep"


def test_every_command_refuses_a_file_as_its_output_directory(tmp_path):
    """Before: export, import, vocab, prepare and fine-tuning ended in FileExistsError's
    traceback; evaluate --out=DIR in IsADirectoryError's after evaluating every checkpoint."""
    taken = tmp_path / "taken"
    taken.write_text("keep")
    texts = ["The people of the United States.", "A more perfect union of states."] * 20
    vocab_path = train_wordpiece_vocab(texts, 200, True, tmp_path / "vocab")
    config = BertConfig(
        vocab_size=sum(1 for _ in vocab_path.open()), hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    params = nnx.state(create_model(config, 0), nnx.Param).to_pure_dict()
    model_dir.write(tmp_path / "model", params, config, vocab_path, True, "test")
    export.export_hf(tmp_path / "model", tmp_path / "hf")

    with pytest.raises(UserError, match=TAKEN.format(flag="--out")):
        export.export_hf(tmp_path / "model", taken)
    with pytest.raises(UserError, match=TAKEN.format(flag="--out")):
        importer.import_checkpoint(tmp_path / "hf", taken)
    with pytest.raises(UserError, match=TAKEN.format(flag="--out")):
        vocab.run_vocab(SAMPLE_CORPUS, "wordpiece", 300, taken, True, 10**5)
    with pytest.raises(UserError, match=TAKEN.format(flag="--out")):
        prepare.run_prepare(SAMPLE_CORPUS, tmp_path / "vocab", taken)
    with pytest.raises(UserError, match=TAKEN.format(flag="--workdir")):
        trainer.finetune("mr", str(tmp_path / "model"), str(taken), load_config("finetune"))
    with pytest.raises(UserError, match=r"--out=.* is a directory; name a file, e.g. .*/eval"):
        run_evaluate(str(tmp_path / "no_run"), out=str(tmp_path))
    assert taken.read_text() == "keep"


def test_a_file_where_a_runs_checkpoints_go_is_one_line_before_training(tmp_path):
    """Before: the run trained to its first save, hung ~5 minutes in Orbax, then tracebacks."""
    from bertjax import train
    from tests.test_smoke import small_smoke_config

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("keep")
    with pytest.raises(UserError, match=r"run/checkpoints is a file where checkpoints go; move"):
        train.train_and_evaluate(small_smoke_config(tmp_path), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints").read_text() == "keep"
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
