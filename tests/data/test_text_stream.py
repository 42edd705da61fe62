"""Tests for bertjax/data/text_stream.py: raw text streamed per process, paired and masked on the
fly, through the make_dataset contract (config.streaming)."""

import dataclasses
import gzip
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants as tfds_constants

from bertjax import config as base_config
from bertjax import train
from bertjax.config import validate
from bertjax.data import corpus, pipeline, tfds_corpus
from bertjax.data.corpus import SAMPLE_CORPUS
from bertjax.data.documents import tokenize_documents
from bertjax.data.masking import MaskingSpec
from bertjax.data.sources import text_stream
from bertjax.data.spec import DataSpec
from bertjax.data.tokenizer import train_wordpiece_vocab
from bertjax.errors import UserError
from tests.helpers import load_config

LENGTH = 64
NUM_FILES = 4
CHUNK = 4  # documents per chunk: several chunks per file and epoch
REPO = str(Path(__file__).resolve().parents[2])
TFDS_DOCS = 42  # 4 processes do not divide it: uneven parts
TFDS_SOURCE = "tfds:bertjax_stream_docs@train"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """24 inaugural addresses in 4 JSON Lines files, and a 1,000-token vocabulary."""
    root = tmp_path_factory.mktemp("text_stream")
    with gzip.open(SAMPLE_CORPUS.replace("*", "inaugural"), "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:24]
    for i in range(NUM_FILES):
        lines = [json.dumps({"text": t}) for t in texts[i::NUM_FILES]]
        (root / f"part-{i}.jsonl").write_text("\n".join(lines) + "\n")
    train_wordpiece_vocab(texts, 1000, True, root / "vocab")
    return root


def _overrides(corpus_dir) -> dict:
    return dict(
        corpus=f"{corpus_dir}/part-*.jsonl",
        vocab_dir=str(corpus_dir / "vocab"),
        vocab_size=1000,
        max_seq_length=LENGTH,
        max_predictions_per_seq=10,
        dupe_factor=1,
        seed=5,
        streaming=True,
        stream_chunk_documents=CHUNK,
    )


def _config(corpus_dir, **overrides):
    config = base_config.defaults()
    config.update(_overrides(corpus_dir), **overrides)
    return config


def _stream(config, index_dir="") -> text_stream.TextStream:
    data = DataSpec.from_config(config)
    stream = pipeline.build_pretraining_data(data, index_dir=str(index_dir)).source
    assert isinstance(stream, text_stream.TextStream)
    return stream


def _dataset(source, config, tokenizer=None, **kwargs):
    kwargs = {"global_batch_size": 8, "seed": config.seed, **kwargs}
    masking = MaskingSpec.from_config(config)
    return pipeline.make_dataset(source, masking, tokenizer or source.tokenizer, **kwargs)


def _take(dataset, num):
    return list(itertools.islice(dataset.as_numpy_iterator(), num))


def _assert_batches_equal(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _epoch_rows(stream, files, epoch=0, seed=5) -> np.ndarray:
    """input_ids of every row of one epoch of `files`, in stream order (unmasked)."""
    index = text_stream.ChunkIndex(stream, seed, 0, 1)
    docs = text_stream.documents(text_stream.epoch_files(files, seed, 0, epoch), stream.settings)
    num_chunks = len(list(text_stream.chunks(docs, CHUNK)))
    rows = text_stream.chunk_rows(stream, files, seed, 0, index, (epoch, 0, (0, 0)))
    return np.concatenate([r["input_ids"] for r in itertools.islice(rows, num_chunks)])


@pytest.mark.parametrize("packing", [False, True])
def test_features_are_the_in_memory_streams(corpus_dir, packing):
    config = _config(corpus_dir, packing=packing)
    in_memory = pipeline.build_pretraining_data(
        DataSpec.from_config(_config(corpus_dir, packing=packing, streaming=False))
    )
    (expected,) = _take(_dataset(in_memory.source, config, in_memory.tokenizer), 1)
    (batch,) = _take(_dataset(_stream(config), config), 1)
    assert tuple(batch) == tuple(expected)
    assert ("attention_segment_ids" in batch) == packing
    for key in expected:
        assert batch[key].dtype == expected[key].dtype and batch[key].shape == expected[key].shape
    assert batch["masked_lm_weights"].sum() > 8 and np.all(batch["input_mask"][:, 0] == 1)


def test_same_config_gives_the_same_batches_and_the_seed_matters(corpus_dir):
    config = _config(corpus_dir)
    stream = _stream(config)
    first = _take(_dataset(stream, config), 3)
    _assert_batches_equal(first, _take(_dataset(_stream(config), config), 3))
    other = _take(_dataset(stream, config, seed=6), 1)
    assert not np.array_equal(first[0]["input_ids"], other[0]["input_ids"])


@pytest.mark.parametrize("with_index", [True, False])
def test_resume_gives_exactly_the_uninterrupted_batches(corpus_dir, tmp_path, with_index):
    config = _config(corpus_dir)
    index_dir = tmp_path / "index" if with_index else ""
    stream = _stream(config, index_dir)
    epoch_size = len(_epoch_rows(stream, stream.files))
    steps = -(-epoch_size // 64) + 2  # global batch 64: into the second epoch
    full = _take(_dataset(stream, config, global_batch_size=64), steps)
    for start in (1, steps - 3, steps - 1):  # inside epoch 0, at its end, inside epoch 1
        resumed = _take(_dataset(_stream(config, index_dir), config, global_batch_size=64,
                                 start_step=start), steps - start)  # fmt: skip
        _assert_batches_equal(full[start:], resumed)
    index = text_stream.ChunkIndex(stream, config.seed, 0, 1)
    epoch, chunk, position, skip = index.resume_point((steps - 1) * 64)
    if with_index:  # whole epochs and chunks are skipped unread, at most a chunk is rebuilt
        assert index.read(0)[1], "epoch 0 is recorded as complete"
        assert epoch == 1 and skip < index.read(1)[0][chunk][0], "inside the resume chunk"
    else:  # no index: everything before is replayed
        assert (epoch, chunk, position, skip) == (0, 0, (0, 0), (steps - 1) * 64)


# Run by a fresh interpreter: the stream of _config resumed at a step, batches saved as .npz.
_RESUME_SCRIPT = """
import itertools, json, sys
import numpy as np
from bertjax.data import pipeline
from bertjax import config as base_config
from bertjax.data.masking import MaskingSpec
from bertjax.data.spec import DataSpec
overrides, index_dir, start_step, out = json.loads(sys.argv[1])
config = base_config.defaults()
config.update(overrides)
data = pipeline.build_pretraining_data(DataSpec.from_config(config), index_dir=index_dir)
dataset = pipeline.make_dataset(data.source, MaskingSpec.from_config(config), data.tokenizer,
    global_batch_size=64, seed=config.seed, start_step=start_step)
for i, batch in enumerate(itertools.islice(dataset.as_numpy_iterator(), 2)):
    np.savez(f"{out}-{i}.npz", **batch)
"""


def test_resume_in_a_new_process(corpus_dir, tmp_path):
    config = _config(corpus_dir)
    full = _take(_dataset(_stream(config, tmp_path), config, global_batch_size=64), 6)
    args = json.dumps([_overrides(corpus_dir), str(tmp_path), 4, str(tmp_path / "resumed")])
    env = {
        **os.environ,
        "PYTHONPATH": REPO,
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    subprocess.run([sys.executable, "-c", _RESUME_SCRIPT, args], check=True, cwd=REPO, env=env)
    resumed = [dict(np.load(tmp_path / f"resumed-{i}.npz")) for i in range(2)]
    _assert_batches_equal(full[4:], resumed)


def test_torn_index_is_read_up_to_its_last_whole_line(corpus_dir, tmp_path):
    config = _config(corpus_dir)
    stream = _stream(config, tmp_path / "whole")
    full = _take(_dataset(stream, config, global_batch_size=64), 4)
    entries, _ = text_stream.ChunkIndex(stream, config.seed, 0, 1).read(0)
    assert len(entries) >= 2
    text = "".join(" ".join(map(str, entry)) + "\n" for entry in entries)
    torn = text_stream.ChunkIndex(_stream(config, tmp_path / "torn"), config.seed, 0, 1)
    torn.directory.mkdir(parents=True)
    # one whole line, then a torn one
    (torn.directory / torn.name.format(0)).write_text(text[: text.index("\n") + 3])
    assert torn.read(0) == (entries[:1], False)
    resumed = _take(_dataset(_stream(config, tmp_path / "torn"), config, global_batch_size=64,
                             start_step=3), 1)  # fmt: skip
    _assert_batches_equal(full[3:], resumed)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_processes_read_disjoint_files_that_cover_the_corpus(corpus_dir, process_count):
    config = _config(corpus_dir)
    stream = _stream(config)
    files, texts = [], []
    for p in range(process_count):
        own = text_stream.process_files(stream.files, p, process_count)
        files.extend(own)
        ordered = text_stream.epoch_files(own, config.seed, p, epoch=0)
        assert sorted(ordered) == sorted(own)
        texts.extend(text for text, _ in text_stream.documents(ordered, stream.settings))
        dataset = _dataset(stream, config, global_batch_size=2 * process_count, process_index=p,
                           process_count=process_count)  # fmt: skip
        (batch,) = _take(dataset, 1)
        assert batch["input_ids"].shape == (2, LENGTH)
    assert sorted(files) == stream.files and len(set(files)) == NUM_FILES
    assert sorted(texts) == sorted(corpus.read_documents(config.corpus))
    with pytest.raises(UserError, match=r"corpus has 4 files for 5 processes; split it into at "):
        _dataset(stream, config, global_batch_size=5, process_index=0, process_count=5)


def test_too_few_files_for_the_processes_is_refused_before_the_workdir(
    corpus_dir, tmp_path, monkeypatch
):
    """Until 2026-12-06 the data build refused it after the workdir held a config.json, the
    vocabulary and a checkpoints directory."""
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 5)
    config = _config(corpus_dir, streaming=True)
    with pytest.raises(UserError, match=r"corpus has 4 files for 5 processes"):
        validate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_epochs_read_files_in_fresh_orders_and_pair_afresh(corpus_dir):
    stream = _stream(_config(corpus_dir))
    orders = {tuple(text_stream.epoch_files(stream.files, 5, 0, e)) for e in range(6)}
    assert len(orders) > 1
    first, second = _epoch_rows(stream, stream.files, 0), _epoch_rows(stream, stream.files, 1)
    assert first.shape != second.shape or not np.array_equal(first, second)


def test_held_out_documents_are_never_streamed(corpus_dir):
    config = _config(corpus_dir, eval_holdout_fraction=0.3)
    stream = _stream(config)
    all_texts = list(corpus.read_documents(config.corpus))
    held_out = [text for text in all_texts if corpus.is_held_out(text, 0.3)]
    assert 0 < len(held_out) < len(all_texts)
    streamed = [text for text, _ in text_stream.documents(stream.files, stream.settings)]
    assert sorted(streamed) == sorted(set(all_texts) - set(held_out))
    rows = {" ".join(map(str, row[row != 0])) for row in _epoch_rows(stream, stream.files)}
    text = " | ".join(rows)

    def found(document):  # the middle 12 tokens of the document's longer sentences
        sentences = tokenize_documents([document], stream.tokenizer)[0][0]
        spans = [s[len(s) // 2 - 6 : len(s) // 2 + 6] for s in sentences if len(s) >= 30]
        return sum(f" {' '.join(map(str, span))} " in f" {text} " for span in spans), len(spans)

    assert all(found(document)[0] == 0 for document in held_out)
    hits, total = np.sum([found(d) for d in streamed[:3]], axis=0)
    assert hits > total / 2, "the check finds the training documents' sentences"


def test_bad_input_is_skipped_and_counted(corpus_dir, tmp_path, caplog):
    good = (corpus_dir / "part-0.jsonl").read_text()
    (tmp_path / "a-good.jsonl").write_text(good)
    (tmp_path / "b-bad.jsonl").write_bytes(
        b'{"text": "caf\xe9 bytes. Second one."}\n{broken\n{"text": "\x00\x01\x07"}\n'
        b'{"text": "Bell\x07 inside. Fine otherwise."}\n'
    )
    (tmp_path / "c-empty.txt").write_text("")
    (tmp_path / "d-big.jsonl").write_text(json.dumps({"text": "word and more " * 700_000}) + "\n")
    (tmp_path / "e-gone.jsonl").write_text(good)
    config = _config(corpus_dir, corpus=f"{tmp_path}/*,{tmp_path}/none/*.txt")
    stream = _stream(config)
    assert "none/*.txt' matched no files" in caplog.text
    (tmp_path / "e-gone.jsonl").unlink()
    reports = []
    texts = [t for t, _ in text_stream.documents(stream.files, stream.settings, reports=reports)]
    assert len(texts) == 6 + 2 + 1
    counts = {r.source.rsplit("/", 1)[1]: (r.documents, dict(r.skipped)) for r in reports}
    assert counts == {
        "a-good.jsonl": (6, {}),
        "b-bad.jsonl": (2, {"invalid JSON": 1, "empty documents": 1}),
        "c-empty.txt": (0, {}),
        "d-big.jsonl": (1, {}),
        "e-gone.jsonl": (0, {"missing file": 1}),
    }
    assert "b-bad.jsonl: 2 documents; skipped 1 empty documents" in caplog.text
    assert "repaired 2 documents with control characters, 1 lines with invalid UTF-8" in (
        caplog.text
    )
    big = text_stream.build_chunk(texts[-2:], stream, seed=0)  # a 10 MB line: many rows, their
    assert len(big["input_ids"]) > 20_000 and big["input_mask"].mean() > 0.8  # random Bs short
    (batch,) = _take(_dataset(stream, config), 1)
    assert batch["input_ids"].shape == (8, LENGTH)


def test_a_corpus_without_documents_is_a_one_line_error(corpus_dir, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bad.jsonl").write_bytes(b"{broken\n[1, 2]\n")
    config = _config(corpus_dir, corpus=f"{tmp_path}/*")
    with pytest.raises(UserError, match="process 0 found 0 training documents in its 2") as info:
        _dataset(_stream(config), config)
    assert "\n" not in str(info.value) and "1 invalid JSON" in str(info.value)
    assert str(info.value).endswith("; check --config.corpus")
    # Records without the text field: the field is what to check, as in-memory reading says.
    (tmp_path / "zh.jsonl").write_text('{"正文": "第一句。第二句。"}\n' * 3, encoding="utf-8")
    config = _config(corpus_dir, corpus=f"{tmp_path}/zh.jsonl")
    with pytest.raises(UserError, match=r"skipped 3 without field 'text'.*; check "
                                        r"--config.text_field \(the JSON field"):  # fmt: skip
        _dataset(_stream(config), config)


def test_prepared_dir_and_one_document_chunks_are_one_line_errors():
    config = load_config("cpu_smoke")
    config.update(streaming=True, prepared_dir="/some/prepared")
    with pytest.raises(UserError, match="streaming=True and prepared_dir are two data sources"):
        validate(config)
    config.update(prepared_dir="", stream_chunk_documents=1)
    with pytest.raises(UserError, match="stream_chunk_documents=1 must be >= 2"):
        validate(config)


def _tfds_texts() -> list[str]:
    """TFDS_DOCS distinct documents of several sentences: openings of inaugural addresses."""
    with gzip.open(SAMPLE_CORPUS.replace("*", "inaugural"), "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"][:900] for line in f][-TFDS_DOCS:]


class BertjaxStreamDocs(tfds.core.GeneratorBasedBuilder):
    """A real local TFDS dataset (tfds.testing.mock_data ignores split slicing): `_tfds_texts`
    in one train split, built by the `tfds_data` fixture without a download."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # no checksums file to look for (tfds would need importlib_resources)

    def _info(self):
        features = tfds.features.FeaturesDict({"text": tfds.features.Text()})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        yield from enumerate({"text": text} for text in _tfds_texts())


@pytest.fixture(scope="module")
def tfds_data(tmp_path_factory):
    """BertjaxStreamDocs built in a fresh TFDS data dir, where tfds.load looks while in use (the
    TFDS_DATA_DIR variable is read once, at import)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    no_gcs = tfds.download.DownloadConfig(try_download_gcs=False)
    BertjaxStreamDocs(data_dir=data_dir).download_and_prepare(download_config=no_gcs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfds_constants, "DATA_DIR", data_dir)
        yield data_dir


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_processes_read_disjoint_parts_of_a_tfds_split(corpus_dir, tfds_data, process_count):
    stream = _stream(_config(corpus_dir, corpus=TFDS_SOURCE))
    assert stream.files == [TFDS_SOURCE]
    parts = []
    for p in range(process_count):
        (own,) = text_stream.process_files(stream.files, p, process_count)
        assert own == tfds_corpus.part(TFDS_SOURCE, p, process_count)
        parts.append([text for text, _ in text_stream.documents([own], stream.settings)])
    sizes = sorted(map(len, parts))
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == TFDS_DOCS, sizes
    texts = [text for part in parts for text in part]
    assert len(set(texts)) == TFDS_DOCS
    assert sorted(texts) == sorted(corpus.read_documents(TFDS_SOURCE)), "the whole split"
    # files are still dealt out, and a tfds source gives each process something to read
    files = [f"/corpus/part-{i}.jsonl" for i in range(3)]
    for p in range(process_count + 1):
        own = text_stream.process_files([*files, TFDS_SOURCE], p, process_count + 1)
        assert own == files[p :: process_count + 1] + [
            tfds_corpus.part(TFDS_SOURCE, p, process_count + 1)
        ]


def test_a_tfds_source_streams_batches_and_resumes_exactly(corpus_dir, tfds_data, tmp_path):
    config = _config(corpus_dir, corpus=TFDS_SOURCE)
    stream = _stream(config, tmp_path)
    epoch_size = len(_epoch_rows(stream, stream.files))
    steps = -(-epoch_size // 64) + 2  # global batch 64: into the second epoch
    full = _take(_dataset(stream, config, global_batch_size=64), steps)
    assert full[0]["input_ids"].shape == (64, LENGTH)
    for start in (1, steps - 1):  # inside epoch 0, inside epoch 1
        resumed = _take(_dataset(_stream(config, tmp_path), config, global_batch_size=64,
                                 start_step=start), steps - start)  # fmt: skip
        _assert_batches_equal(full[start:], resumed)
    index = text_stream.ChunkIndex(stream, config.seed, 0, 1)
    epoch, chunk, _, skip = index.resume_point((steps - 1) * 64)
    assert index.read(0)[1] and epoch == 1 and skip < index.read(1)[0][chunk][0]
    firsts = [_take(_dataset(stream, config, process_index=p, process_count=2), 1)[0]
              for p in range(2)]  # fmt: skip
    assert firsts[0]["input_ids"].shape == (4, LENGTH)
    assert not np.array_equal(firsts[0]["input_ids"], firsts[1]["input_ids"])
    other = dataclasses.replace(stream, files=[TFDS_SOURCE + "[:50%]"])
    keys = {text_stream.ChunkIndex(s, config.seed, 0, n).directory
            for s in (stream, other) for n in (1, 2)}  # fmt: skip
    assert len(keys) == 4, "the index follows the tfds source and the process count"


def test_a_tfds_resume_costs_the_same_late_as_early(corpus_dir, tfds_data, tmp_path, monkeypatch):
    """The resume chunk of a tfds part is read from its first example on
    (`tfds_corpus.starting_at`), so a resume late in the part reads no more examples than one at
    its start; before, a resume re-read the part from its start, a cost that grew with how far
    the run got."""
    config = _config(corpus_dir, corpus=TFDS_SOURCE)
    stream = dataclasses.replace(_stream(config, tmp_path), num_workers=1)
    files = text_stream.process_files(stream.files, 0, 1)
    index = text_stream.ChunkIndex(stream, config.seed, 0, 1)
    epoch_files = text_stream.epoch_files(files, config.seed, 0, 0)
    num_chunks = len(list(text_stream.chunks(text_stream.documents(epoch_files, stream.settings),
                                             CHUNK)))  # fmt: skip
    built = text_stream.chunk_rows(stream, files, config.seed, 0, index, (0, 0, (0, 0)))
    rows = list(itertools.islice(built, num_chunks))
    assert len(index.read(0)[0]) == num_chunks >= 8, "epoch 0's chunks are all in the index"
    read = []
    read_tfds = tfds_corpus.read_texts

    def counting(source, text_field, report):
        for text in read_tfds(source, text_field, report):
            read.append(text)
            yield text

    monkeypatch.setattr(tfds_corpus, "read_texts", counting)

    def resume(chunk: int) -> tuple[int, dict]:
        """(tfds examples read, rows) to rebuild chunk `chunk` of epoch 0 at a resume there."""
        first = sum(len(r["input_ids"]) for r in rows[:chunk])
        epoch, resume_chunk, position, skip = index.resume_point(first)
        assert (epoch, resume_chunk, skip) == (0, chunk, 0)
        read.clear()
        generator = text_stream.chunk_rows(stream, files, config.seed, 0, index,
                                           (epoch, resume_chunk, position))  # fmt: skip
        rebuilt = next(generator)
        generator.close()
        return len(read), rebuilt

    early, early_rows = resume(1)
    late, late_rows = resume(num_chunks - 2)
    print(f"tfds examples read to resume at chunk 1: {early}, at chunk {num_chunks - 2}: {late}")
    assert late <= early <= 3 * CHUNK, (early, late)  # the chunk and the one built ahead
    for chunk, rebuilt in ((1, early_rows), (num_chunks - 2, late_rows)):
        for key, value in rows[chunk].items():
            np.testing.assert_array_equal(rebuilt[key], value, err_msg=key)


def test_a_missing_tfds_dataset_is_a_counted_skip_or_a_one_line_error(
    corpus_dir, tfds_data, caplog
):
    missing = "tfds:bertjax_no_such_docs"
    config = _config(corpus_dir, corpus=f"{corpus_dir}/part-0.jsonl,{missing}")
    with caplog.at_level(logging.INFO, logger="absl"):
        stream = _stream(config)
    assert "Streaming raw text from 1 corpus files and 1 tfds sources" in caplog.text
    reports = []
    texts = [t for t, _ in text_stream.documents(stream.files, stream.settings, reports=reports)]
    assert len(texts) == 24 // NUM_FILES
    counts = [(r.documents, dict(r.skipped)) for r in reports]
    assert counts == [(len(texts), {}), (0, {"unloadable dataset": 1})]
    (batch,) = _take(_dataset(stream, config), 1)
    assert batch["input_ids"].shape == (8, LENGTH)
    # process 1 of 2 has no file, only its part of the missing dataset
    pattern = r"process 1 found 0 training documents .*1 unloadable dataset .*bertjax_no_such_d"
    with pytest.raises(UserError, match=pattern) as info:
        _dataset(stream, config, process_index=1, process_count=2)
    assert "\n" not in str(info.value)


@pytest.mark.slow  # stream resume is covered in-process and in a new process by the default suite
def test_bertjax_train_streams_end_to_end_and_resumes(corpus_dir, tmp_path):
    """`bertjax train --config.streaming=True` for 3 steps, resumed in this process to 5 steps:
    the same losses as 5 steps in one go (warm-up over the first 3 steps: the learning rates
    of steps 1-3 do not depend on num_train_steps)."""
    overrides = dict(
        _overrides(corpus_dir), batch_size=8, num_train_steps=3, warmup_steps=3, log_every=1,
        checkpoint_every=2, progress_bar=False,
    )  # fmt: skip
    flags = [f"--config.{name}={value}" for name, value in overrides.items()]
    command = [sys.executable, "-m", "bertjax", "train", "--config=configs/cpu_smoke.py"]
    result = subprocess.run([*command, f"--workdir={tmp_path / 'resumed'}", *flags], cwd=REPO,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "resumed" / "text_stream_index").glob("*/process-00000-epoch-*"))
    config = load_config("cpu_smoke")
    config.update(overrides, num_train_steps=5)
    resumed = train.train_and_evaluate(config, tmp_path / "resumed")
    assert resumed.start_step == 3 and resumed.steps == 5
    assert train.train_and_evaluate(config, tmp_path / "straight").steps == 5
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").open()]
        for run in ("resumed", "straight")
    ]
    assert len(losses[0]) == 5
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_a_stream_the_vocabulary_cannot_spell_warns_once(corpus_dir, tmp_path, caplog):
    """Greek text with an English vocabulary is mostly [UNK]: the stream says so, once (another
    stream, once again: whatever streams built chunks before in this process)."""
    greek = "Η Αθήνα είναι πρωτεύουσα. Είναι μεγάλη πόλη. Ναι, πολύ! Θα ξαναπάμε τον Μάιο."
    lines = [json.dumps({"text": greek}, ensure_ascii=False)] * 6
    (tmp_path / "greek.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = _stream(_config(corpus_dir, corpus=f"{tmp_path}/greek.jsonl"))
    for seed in range(3):
        text_stream.build_chunk([greek] * 3, stream, seed=seed)
    warnings = [r for r in caplog.records if "are [UNK]" in r.getMessage()]
    assert len(warnings) == 1 and "Text stream: " in warnings[0].getMessage()
    another = _stream(_config(corpus_dir, corpus=f"{tmp_path}/greek.jsonl"))
    text_stream.build_chunk([greek] * 3, another, seed=0)
    assert len([r for r in caplog.records if "are [UNK]" in r.getMessage()]) == 2


def test_a_lone_last_document_joins_the_chunk_before_it():
    """Chunks of `size` documents, each with the position after its last; a last document that
    would be a chunk alone (it could not pair a random next sentence) joins the one before."""
    docs = [(f"d{i}", (0, i + 1)) for i in range(8)]
    got = list(text_stream.chunks(iter(docs[:7]), 3))
    assert got == [(["d0", "d1", "d2"], (0, 3)), (["d3", "d4", "d5", "d6"], (0, 7))]
    got = list(text_stream.chunks(iter(docs), 3))
    assert got == [(["d0", "d1", "d2"], (0, 3)), (["d3", "d4", "d5"], (0, 6)),
                   (["d6", "d7"], (0, 8))]  # fmt: skip
    assert list(text_stream.chunks(iter(docs[:1]), 3)) == [(["d0"], (0, 1))]


def test_a_chunks_rows_are_shuffled_by_the_seed(corpus_dir, monkeypatch):
    """Rows leave a chunk in a seeded random order, not document by document (a batch would
    hold the pairs of one or two documents)."""
    from bertjax.data import pretraining_examples

    def numbered_rows(docs, **kwargs):
        ids = np.zeros([12, LENGTH], np.int32)
        ids[:, 0] = np.arange(12)
        return {"input_ids": ids, "next_sentence_labels": np.arange(12, dtype=np.int32)}

    monkeypatch.setattr(pretraining_examples, "create_instances", numbered_rows)
    stream = _stream(_config(corpus_dir))
    texts = ["One sentence here. And another one.", "A second document. It has two."] * 3
    orders = [text_stream.build_chunk(texts, stream, seed)["input_ids"][:, 0] for seed in (1, 2)]
    for order in orders:
        assert sorted(order) == list(range(12)) and list(order) != list(range(12))
    assert list(orders[0]) != list(orders[1])
    again = text_stream.build_chunk(texts, stream, 1)
    np.testing.assert_array_equal(again["next_sentence_labels"], orders[0])
