"""A run that lives in a bucket: corpora, vocabularies, prepared corpora and workdirs named by a
gs:// URI are read where they are (bertjax/paths.py, etils.epath), and the outputs that must be
local say so in one line.

There is no bucket here. The `bucket` fixture serves gs://bucket from a local folder through
etils' own epath test mock (every epath call on a gs:// path is redirected there) and opens Orbax
on the local copy at checkpointing's one Orbax reader, after recording the URI Orbax was given.
Orbax's own gs:// I/O (TensorStore) and tf.data's (TFRecord shards) are theirs, not exercised.
"""

import dataclasses
import gzip
import itertools
import json
import os
import shutil
import types
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath
from etils.epath import testing as epath_testing

from bertjax import checkpointing, evaluate_checkpoints, fill_mask, paths, train
from bertjax import config as base_config
from bertjax.convert.export import export_hf
from bertjax.convert.importer import import_checkpoint
from bertjax.data import compressed_files, corpus, pipeline, prepare, vocab
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.masking_spec import MaskingSpec
from bertjax.data.sources import prepared as prepared_source
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import train_wordpiece_vocab
from bertjax.errors import UserError
from bertjax.finetune import model, trainer
from tests.test_finetune import NEGATIVE, POSITIVE, config_for, write_jsonl
from tests.test_smoke import small_smoke_config

URI = "gs://bucket"


@dataclasses.dataclass
class FakeBucket:
    root: Path  # what gs://bucket holds
    orbax_opened: list[str]  # the directories checkpointing handed to Orbax


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    root = tmp_path / "bucket"
    root.mkdir()

    def local(path) -> str:
        text = os.fspath(path)
        return str(root) + text[len(URI) :] if text.startswith(URI) else text

    def remote(path) -> str:
        text = os.fspath(path)
        return URI + text[len(str(root)) :] if text.startswith(str(root)) else text

    def one(fn, path, *args, **kwargs):
        return fn(local(path), *args, **kwargs)

    def two(fn, path, dst, *args, **kwargs):
        return fn(local(path), local(dst), *args, **kwargs)

    def glob(fn, pattern):
        return [remote(p) for p in fn(local(pattern))]

    def walk(fn, top, *args, **kwargs):
        for directory, dirs, files in fn(local(top), *args, **kwargs):
            yield remote(directory), dirs, files

    opened = []
    orbax_reader = checkpointing._reader

    def reader(directory):
        opened.append(str(directory))
        return orbax_reader(epath.Path(local(directory)))

    monkeypatch.setattr(checkpointing, "_reader", reader)
    # With TensorFlow installed, epath sends gs:// to tf.io.gfile whatever backend the mock sets.
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
    names = ("open", "exists", "isdir", "listdir", "makedirs", "mkdir", "remove", "rmtree", "stat")
    redirected = {name: one for name in names} | {"copy": two, "rename": two, "replace": two}
    with epath_testing.mock_epath(glob=glob, walk=walk, **redirected):
        yield FakeBucket(root, opened)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """12 inaugural addresses in 4 files (JSON Lines gzipped, plain and Zstandard; Parquet),
    part-1's in UTF-16, and an 800-token vocabulary."""
    root = tmp_path_factory.mktemp("remote_corpus")
    with gzip.open(SAMPLE_CORPUS.replace("*", "inaugural"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:12]
    for i, compress in enumerate((gzip.compress, None, compressed_files.zstd_module().compress)):
        lines = "".join(json.dumps({"text": t}) + "\n" for t in texts[i::4]).encode()
        suffix = {gzip.compress: ".gz", None: ""}.get(compress, ".zst")
        (root / f"part-{i}.jsonl{suffix}").write_bytes(compress(lines) if compress else lines)
    pq.write_table(pa.table({"text": texts[3::4]}), root / "part-3.parquet")
    (root / "utf16.jsonl").write_bytes((root / "part-1.jsonl").read_text().encode("utf-16"))
    train_wordpiece_vocab(texts, 800, True, root / "vocab")
    return root


def upload(bucket: FakeBucket, source: Path, name: str) -> str:
    """Copies a local file or folder into the bucket; returns its gs:// URI."""
    copy = shutil.copytree if source.is_dir() else shutil.copyfile
    copy(source, bucket.root / name)
    return f"{URI}/{name}"


def test_a_corpus_in_a_bucket_is_listed_read_and_fingerprinted_like_local_files(bucket, corpus_dir):
    local_files = corpus.resolve_files(f"{corpus_dir}/part-*")
    upload(bucket, corpus_dir, "corpus")
    (bucket.root / "corpus" / "README.md").write_text("not a corpus file\n")
    files = corpus.resolve_files(f"{URI}/corpus/part-*")
    assert files == [f"{URI}/corpus/{os.path.basename(f)}" for f in local_files]
    assert corpus.resolve_files(files[0]) == files[:1]  # a name without wildcards
    assert corpus.corpus_fingerprint(files) == corpus.corpus_fingerprint(local_files)
    assert [corpus.source_size(f) for f in files] == [os.path.getsize(f) for f in local_files]
    documents = list(corpus.read_documents(files, "text"))
    assert len(documents) == 12 and documents == list(corpus.read_documents(local_files, "text"))
    for pattern, message in [
        (f"{URI}/corpus", "is a directory"),
        (f"{URI}/corpus/*.md", "unsupported suffix"),
        (f"{URI}/**/*.jsonl", "no '\\*\\*'"),
        (f"{URI}/elsewhere/*.jsonl", "matched no files"),
    ]:
        with pytest.raises(UserError, match=message):
            corpus.resolve_files(pattern)


def test_tf_io_gfile_reads_corpora_and_vocabularies_as_the_local_backend_does(
    corpus_dir, monkeypatch
):
    """On a machine with TensorFlow, epath reads gs:// through tf.io.gfile (the fake bucket
    above cannot): the same reads of local files through it give the same answers."""
    files = corpus.resolve_files(f"{corpus_dir}/part-*")
    expected = (corpus.corpus_fingerprint(files), [corpus.source_size(f) for f in files],
                list(corpus.read_documents(files, "text")),
                vocab.load_tokenizer(corpus_dir / "vocab" / "vocab.txt", True).vocab)  # fmt: skip
    utf8 = list(corpus.read_documents(str(corpus_dir / "part-1.jsonl"), "text"))
    monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, None, epath_backend.tf_backend)
    assert epath.Path(files[0])._backend is epath_backend.tf_backend
    got = (corpus.corpus_fingerprint(files), [corpus.source_size(f) for f in files],
           list(corpus.read_documents(files, "text")),
           vocab.load_tokenizer(corpus_dir / "vocab" / "vocab.txt", True).vocab)  # fmt: skip
    assert got == expected
    # GFile cannot peek at a UTF-16 file's byte-order mark: a buffer over it does.
    assert list(corpus.read_documents(str(corpus_dir / "utf16.jsonl"), "text")) == utf8


def _data_config(corpus_pattern: str, vocab_dir: str, **overrides):
    config = base_config.defaults()
    config.update(corpus=corpus_pattern, vocab_dir=vocab_dir, vocab_size=800, max_seq_length=64,
                  max_predictions_per_seq=10, dupe_factor=1, seed=3, stream_chunk_documents=4,
                  **overrides)  # fmt: skip
    return config


def _batches(config, num: int = 2) -> list[dict]:
    data = pipeline.build_pretraining_data(DataSpec.from_config(config))
    dataset = pipeline.make_dataset(
        data.source, MaskingSpec.from_config(config), data.tokenizer, global_batch_size=4, seed=3
    )
    return list(itertools.islice(dataset.as_numpy_iterator(), num))


@pytest.mark.parametrize("streaming", [False, True])
def test_training_data_from_a_bucket_is_the_data_of_the_local_files(bucket, corpus_dir, streaming):
    expected = _batches(
        _data_config(f"{corpus_dir}/part-*", str(corpus_dir / "vocab"), streaming=streaming)
    )
    upload(bucket, corpus_dir, "corpus")
    config = _data_config(f"{URI}/corpus/part-*", f"{URI}/corpus/vocab", streaming=streaming)
    base_config.validate(config, workdir=None)  # the vocabulary's size is read there
    batches = _batches(config)
    for got, want in zip(batches, expected, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_prepared_corpus_in_a_bucket_is_checked_and_named_by_its_uri(bucket, corpus_dir):
    local = corpus_dir / "prepared"
    prepare.run_prepare(f"{corpus_dir}/part-*", corpus_dir / "vocab", local, max_seq_length=64,
                        dupe_factor=1, num_shards=2, num_workers=1,
                        eval_holdout_fraction=0.5)  # fmt: skip
    prepared = prepared_source.load_prepared(upload(bucket, local, "prepared"))
    # Its held-out documents are read from the bucket: the same evaluation instances.
    held_out = [
        pipeline.build_pretraining_data(DataSpec.from_config(_data_config(
            "unused", "", prepared_dir=directory, eval_holdout_fraction=0.5
        )), split="eval")
        for directory in (str(local), f"{URI}/prepared")
    ]  # fmt: skip
    assert held_out[1].num_documents == prepared.manifest["num_heldout_documents"] > 0
    for key, want in held_out[0].source.arrays.items():
        np.testing.assert_array_equal(held_out[1].source.arrays[key], want, err_msg=key)
    assert prepared.files == [f"{URI}/prepared/{s['file']}" for s in prepared.manifest["shards"]]
    assert str(prepared.vocab_dir).startswith(f"{URI}/prepared/")
    tokenizer = vocab.load_tokenizer(prepared.vocab_dir / "vocab.txt", lowercase=True)
    assert tokenizer.vocab == vocab.load_tokenizer(corpus_dir / "vocab" / "vocab.txt", True).vocab
    (bucket.root / "prepared" / prepared.manifest["shards"][1]["file"]).unlink()
    with pytest.raises(UserError, match="prepared file .*gs://bucket/prepared/.* is missing"):
        prepared_source.load_prepared(f"{URI}/prepared")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small finished training workdir with held-out evaluation (local)."""
    tmp_path = tmp_path_factory.mktemp("remote_run")
    config = small_smoke_config(tmp_path, eval_every=3, eval_holdout_fraction=0.2,
                                eval_examples=16, eval_batch_size=8)  # fmt: skip
    train.train_and_evaluate(config, tmp_path / "workdir")
    return tmp_path / "workdir"


def test_a_workdir_in_a_bucket_exports_evaluates_and_fills_masks_where_it_is(
    bucket, trained, tmp_path
):
    run = upload(bucket, trained, "run")
    export_hf(trained, tmp_path / "from_local")
    result = export_hf(run, tmp_path / "from_bucket")
    assert str(result.workdir) == run and result.step == 6
    names = sorted(p.name for p in (tmp_path / "from_local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "from_bucket").iterdir())
    for name in names:
        local_bytes = (tmp_path / "from_local" / name).read_bytes()
        assert (tmp_path / "from_bucket" / name).read_bytes() == local_bytes, name
    assert evaluate_checkpoints.run_evaluate(
        run, all_steps=True
    ) == evaluate_checkpoints.run_evaluate(str(trained), all_steps=True)
    texts = ["the [MASK] of the union", "we [MASK] the people"]
    assert fill_mask.fill_mask(run, texts) == fill_mask.fill_mask(trained, texts)
    from_bucket = {p for p in bucket.orbax_opened if not p.startswith(str(trained))}
    assert from_bucket == {f"{run}/checkpoints"}  # Orbax got the URI, never a local path


def test_a_fine_tunes_encoder_loads_from_a_workdir_in_a_bucket(bucket, trained):
    run = upload(bucket, trained, "run")
    config_bucket, encoder_bucket, lowercase, vocab_path, _ = model.load_encoder(run)
    config_local, encoder_local, *_ = model.load_encoder(str(trained))
    assert config_bucket == config_local and str(vocab_path) == f"{run}/vocab.txt"
    for got, want in zip(*map(jax.tree.leaves, (encoder_bucket, encoder_local)), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow  # 28 s; the encoder's load from a bucket is the test above
def test_fine_tuning_starts_from_a_workdir_in_a_bucket(bucket, trained, tmp_path):
    run = upload(bucket, trained, "run")
    records = [{"text": t, "label": "pos"} for t in POSITIVE]
    records += [{"text": t, "label": "neg"} for t in NEGATIVE]
    data = write_jsonl(tmp_path / "d.jsonl", records)
    config = config_for(train_file=data, eval_file=data, kind="classification", num_epochs=1)
    results = trainer.finetune("jsonl", run, str(tmp_path / "ft"), config)
    settings = json.loads((tmp_path / "ft" / "finetune_settings.json").read_text())
    assert results["init"] == settings["init"] == run  # the tokenizer came from the bucket


def test_outputs_that_must_be_local_refuse_a_uri_in_one_line(tmp_path):
    config = config_for(train_file="x.jsonl", eval_file="x.jsonl", kind="classification")
    for call, flag in [
        (lambda: export_hf(tmp_path, f"{URI}/hf"), "--out"),
        (lambda: import_checkpoint(str(tmp_path), f"{URI}/imported"), "--out"),
        (lambda: import_checkpoint(f"{URI}/hf", tmp_path / "imported"), "--from"),
        (lambda: trainer.finetune("jsonl", str(tmp_path), f"{URI}/ft", config), "--workdir"),
        (lambda: prepare.run_prepare("x.jsonl", tmp_path, f"{URI}/prepared"), "--out"),
        (lambda: prepare.run_prepare("x.jsonl", f"{URI}/vocab", tmp_path), "--vocab"),
        (lambda: vocab.run_vocab("x.jsonl", out_dir=f"{URI}/vocab"), "--out"),
    ]:
        with pytest.raises(UserError, match=f"^{flag}=gs://bucket/.* is not a local directory"):
            call()
    assert not (tmp_path / "gs:").exists()


def test_an_unreachable_bucket_is_one_line_naming_the_uri(monkeypatch, tmp_path):
    """tf.io.gfile, gcsfs and google-auth raise their own types when a bucket is unreachable;
    whatever they raise for a URI becomes a one-line UserError, a local path's error is kept."""

    def unreachable(fn, path, *args, **kwargs):
        if os.fspath(path).startswith(URI):
            raise RuntimeError("Could not resolve host: storage.googleapis.com\n(details)")
        return fn(path, *args, **kwargs)

    def no_directory(fn, path):  # tf.io.gfile's isdir answers False for an unreachable bucket
        return False if os.fspath(path).startswith(URI) else fn(path)

    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
    calls = {name: unreachable for name in ("exists", "glob", "open", "stat", "makedirs")}
    calls["isdir"] = no_directory
    reach = "cannot reach gs://bucket/.*: Could not resolve host: .* \\(details\\)"
    fresh_run = types.SimpleNamespace(latest_step=lambda: None)  # a checkpoint manager's answer
    with epath_testing.mock_epath(**calls):
        for call in [
            lambda: corpus.resolve_files(f"{URI}/corpus/*.jsonl"),
            lambda: checkpointing.open_workdir(f"{URI}/run"),
            lambda: evaluate_checkpoints.workdir_config(f"{URI}/run"),
            lambda: base_config.validate(base_config.defaults(), workdir=f"{URI}/run"),
            lambda: train._check_vocabulary(tmp_path, tmp_path, fresh_run, f"{URI}/phase1"),
        ]:
            with pytest.raises(UserError, match=f"^{reach}; check the bucket's name"):
                call()
        with pytest.raises(FileNotFoundError):
            with paths.remote_errors(tmp_path / "x"):
                (tmp_path / "x").read_text()
    # The cause stays chained (`bertjax --debug` prints it); a bug is no "cannot reach".
    with pytest.raises(UserError) as unreachable:
        with paths.remote_errors(f"{URI}/x"):
            raise ConnectionError("Could not resolve host")
    assert isinstance(unreachable.value.__cause__, ConnectionError)
    with pytest.raises(TypeError):
        with paths.remote_errors(f"{URI}/x"):
            raise TypeError("unsupported operand")
