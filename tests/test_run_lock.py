"""One run at a time in a workdir (bertjax/run_lock.py): a second run is refused in one line
naming the holder; the lock goes with its holder's process, however it ends."""

import subprocess
import sys
import textwrap

import pytest

from bertjax import run_lock, train
from bertjax.errors import UserError
from tests.test_smoke import small_smoke_config

HOLD = textwrap.dedent(
    """
    import sys, time
    from bertjax import run_lock
    with run_lock.held(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_second_run_in_a_held_workdir_is_refused_until_the_holder_ends(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        config = small_smoke_config(tmp_path)
        with pytest.raises(UserError, match=rf"^--workdir={tmp_path}/run is in use by another "
                                            rf"run \(pid {holder.pid} on .*, since "):  # fmt: skip
            train.train_and_evaluate(config, tmp_path / "run")
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [run_lock.LOCK_FILE]
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        holder.wait()
    with run_lock.held(tmp_path / "run"):  # free again, though its file stays
        with pytest.raises(UserError, match="is in use by another run"):
            with run_lock.held(tmp_path / "run", "--out"):  # one process, another open file
                pass
    with run_lock.held(tmp_path / "run"), run_lock.held(tmp_path / "run", lead=False):
        pass  # a multi-host run's other processes do not take it


def test_a_fine_tune_holds_its_workdir(tmp_path):
    """Refused before it writes finetune_settings.json (what would claim the workdir)."""
    from bertjax.finetune import trainer
    from tests.test_finetune import config_for, synthetic_sentiment, tiny_model_dir, write_jsonl

    records = synthetic_sentiment(16, seed=0)
    init = tiny_model_dir(tmp_path, [r["text"] for r in records] * 5)
    data = write_jsonl(tmp_path / "train.jsonl", records)
    config = config_for(kind="classification", train_file=data, eval_file=data, num_epochs=1)
    with run_lock.held(tmp_path / "ft"):
        with pytest.raises(UserError, match=f"--workdir={tmp_path}/ft is in use by another run"):
            trainer.finetune("jsonl", str(init), str(tmp_path / "ft"), config)
    assert sorted(p.name for p in (tmp_path / "ft").iterdir()) == [run_lock.LOCK_FILE]


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "run" / run_lock.LOCK_FILE).mkdir(parents=True)
    with pytest.raises(UserError, match=r"cannot open .*run.lock, the run lock: .*; remove what"):
        with run_lock.held(tmp_path / "run"):
            pass


def test_a_run_in_a_workdir_given_with_a_tilde_writes_every_file_there(tmp_path, monkeypatch):
    """`--workdir=~/run` (a shell does not expand ~ after =): its config.json, vocabulary and
    metrics went to a literal ./~/run, its checkpoints and lock to ~/run."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = small_smoke_config(tmp_path, num_train_steps=2, checkpoint_every=2, log_every=1)
    train.train_and_evaluate(config, "~/run")
    written = {p.name for p in (tmp_path / "home" / "run").iterdir()}
    assert {"checkpoints", "config.json", "vocab.txt", "metrics.jsonl", "run.lock"} <= written
    assert not (tmp_path / "~").exists()


def test_vocab_and_prepare_hold_their_out_directory_and_write_it_whole(tmp_path, monkeypatch):
    """Before: two `vocab` or `prepare` runs into one --out both wrote there and claimed success;
    a vocab stopped mid-write (a full disk) left a 0-byte vocab_meta.json later commands read."""
    from bertjax.data import prepare, tokenizer, vocab
    from bertjax.data.corpus import SAMPLE_CORPUS

    corpus = SAMPLE_CORPUS.replace("*", "inaugural")
    killed = tmp_path / "vocab" / ".vocab-k1ll3d"  # the staging folder of a SIGKILLed run
    killed.mkdir(parents=True)
    (killed / "vocab.txt").write_text("[PAD]\n")
    vocab.run_vocab(corpus, size=300, out_dir=tmp_path / "vocab", sample_bytes=50_000)
    assert not killed.exists()  # the lock held: no run is using it

    def files():  # but the lock's, whose holder line each run rewrites
        directory = tmp_path / "vocab"
        return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != run_lock.LOCK_FILE}

    written = files()
    with run_lock.held(tmp_path / "vocab"):
        with pytest.raises(UserError, match=r"^--out=.*vocab is in use by another run"):
            vocab.run_vocab(corpus, size=400, out_dir=tmp_path / "vocab", sample_bytes=50_000)
    with run_lock.held(tmp_path / "prepared"):
        with pytest.raises(UserError, match=r"^--out=.*prepared is in use by another run"):
            prepare.run_prepare(corpus, tmp_path / "vocab", tmp_path / "prepared")
    assert {p.name for p in (tmp_path / "prepared").iterdir()} == {run_lock.LOCK_FILE}

    def full_disk(path, *args, **kwargs):  # opened (emptied), then no byte written
        open(path, "w").close()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokenizer.Path, "write_text", full_disk)  # every file of a vocabulary
    with pytest.raises(OSError, match="No space left"):
        vocab.run_vocab(corpus, size=400, out_dir=tmp_path / "vocab", sample_bytes=50_000)
    monkeypatch.undo()
    assert files() == written and len(written) == 2  # vocab.txt, vocab_meta.json
    prepare.run_prepare(corpus, tmp_path / "vocab", tmp_path / "prepared", num_workers=1,
                        max_seq_length=64, dupe_factor=1)  # fmt: skip
    assert run_lock.LOCK_FILE not in {p.name for p in (tmp_path / "prepared" / "vocab").iterdir()}
