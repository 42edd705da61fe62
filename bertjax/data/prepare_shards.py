"""One shard of `bertjax prepare` (data/prepare.py): its share of the corpus read, tokenized and
made into NSP pairs or packed rows with seed ``seed + shard``, written as
``instances-SSSSS-of-NNNNN.tfrecord`` (unpadded rows as `tf.train.Example`s) by a worker process;
its held-out documents as a part of ``heldout.jsonl.gz``. Shards of a lone document each have their
documents paired with each other (`pair_lone_documents`).
"""

import gzip
import json
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
from absl import logging

from bertjax import startup
from bertjax.data import (
    corpus,
    documents,
    packing,
    pretraining_examples,
    sentence_stats,
    spec,
    vocab,
)
from bertjax.data.vocab_files import VOCAB_FILE
from bertjax.errors import UserError

HELDOUT_FILE = "heldout.jsonl.gz"


def shard_name(shard: int, num_shards: int) -> str:
    return f"instances-{shard:05d}-of-{num_shards:05d}.tfrecord"


def read_settings(settings: dict) -> dict:
    """`corpus.read_documents`' keyword arguments of the manifest's settings."""
    return dict(text_field=settings["text_field"], text_format=settings["text_format"],
                text_encoding=settings.get("text_encoding", ""))  # fmt: skip


def _shard_texts(sources: list[str], shard: int, num_shards: int, settings: dict):
    """This shard's documents as (source, text): whole files, or every num_shards-th document."""
    read = read_settings(settings)
    names: list[str] = []  # the source of each document read
    if len(sources) >= num_shards:
        texts = corpus.read_documents(sources[shard::num_shards], sources=names, **read)
        for index, text in enumerate(texts):
            yield names[index], text
        return
    for index, text in enumerate(corpus.read_documents(sources, sources=names, **read)):
        if index % num_shards == shard:
            yield names[index], text


def _split_held_out(texts, fraction: float, held_out: list[str], kept_sources: list[str]):
    """Yields the training documents of (source, text) pairs, appending their sources to
    `kept_sources`; appends the held-out texts to `held_out`."""
    for source, text in texts:
        if fraction and corpus.is_held_out(text, fraction):
            held_out.append(text)
        else:
            kept_sources.append(source)
            yield text


def heldout_part(shard: int, num_shards: int) -> str:
    return f"heldout-{shard:05d}-of-{num_shards:05d}.jsonl.gz"


def shard_bytes(sources: list[str], shard: int, num_shards: int) -> int:
    """Input bytes of a shard made of whole files (0 for tfds sources and interleaved shards)."""
    if len(sources) < num_shards:
        return 0
    return sum(corpus.source_size(source) for source in sources[shard::num_shards])


def join_heldout_parts(out_dir: Path, num_shards: int) -> None:
    """The shards' held-out parts -> one ``heldout.jsonl.gz`` in shard order (gzip members
    concatenate into one valid file), parts removed."""
    parts = [out_dir / heldout_part(s, num_shards) for s in range(num_shards)]
    with open(out_dir / HELDOUT_FILE, "wb") as joined:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, joined)
    for part in parts:
        part.unlink()


def _example(row: dict[str, np.ndarray], length: int):
    import tensorflow as tf

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "input_ids": ints(row["input_ids"][:length]),
        "segment_ids": ints(row["segment_ids"][:length]),
        "next_sentence_labels": ints([row["next_sentence_labels"]]),
    }
    for name in ("attention_segment_ids", "word_starts"):
        if name in row:
            features[name] = ints(row[name][:length])
    return tf.train.Example(features=tf.train.Features(feature=features))


def _shard_rows(docs: list, settings: dict, seed: int, tokenizer) -> dict[str, np.ndarray] | None:
    """Packed rows or NSP pairs of a shard's documents; None when they make none (no document,
    or NSP from a single one)."""
    special = dict(cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
    common = dict(
        max_seq_length=settings["max_seq_length"],
        dupe_factor=settings["dupe_factor"],
        seed=seed,
        word_starts=bool(settings.get("word_segmenter")),
        **special,
    )
    if len(docs) < spec.min_documents(settings["packing"]):
        return None
    if settings["packing"]:
        return packing.pack_documents(docs, **common)
    return pretraining_examples.create_instances(
        docs, short_seq_prob=settings["short_seq_prob"], **common
    )


def prepare_shard(args: tuple) -> dict:
    """Worker: builds and writes one shard; returns its counts and build seconds."""
    sources, shard, num_shards, settings, vocab_dir, out_dir = args
    start = time.perf_counter()
    tokenizer = vocab.load_tokenizer(Path(vocab_dir) / VOCAB_FILE, settings["lowercase"])
    held_out: list[str] = []
    doc_sources: list[str] = []  # the source of each training document
    lengths: list[list[int]] = []  # the character lengths of its sentences
    problem = ""  # why the shard read no document, said if no shard makes a row
    texts = _split_held_out(
        _shard_texts(sources, shard, num_shards, settings),
        settings["eval_holdout_fraction"],
        held_out,
        doc_sources,
    )
    try:
        docs, num_sentences = documents.tokenize_documents(
            texts,
            tokenizer,
            sentence_lengths=lengths,
            segmenter=settings.get("word_segmenter", ""),
        )
    except UserError as e:  # this shard got no document (e.g. more shards than documents)
        docs, num_sentences, problem = [], 0, str(e)
    rows = _shard_rows(docs, settings, settings["seed"] + shard, tokenizer)
    lone = None  # NSP partners come from the same shard: a lone document makes no pair here
    if rows is None and docs:
        lone, docs, num_sentences = {"docs": docs, "sentences": num_sentences}, [], 0
    path = Path(out_dir) / shard_name(shard, num_shards)
    if settings["eval_holdout_fraction"]:
        part = Path(out_dir) / heldout_part(shard, num_shards)
        with gzip.open(part, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in held_out)
    return _write_shard(path, rows, docs, num_sentences, tokenizer.unk_id) | {
        "unpaired_documents": len(lone["docs"]) if lone else 0,
        "heldout_documents": len(held_out),
        "seconds": round(time.perf_counter() - start, 3),  # after the worker's imports
        "problem": problem,  # not in the manifest
        # not in the manifest: how each source's documents here split into sentences
        "sentence_stats": sentence_stats.stats_by_source(doc_sources, lengths) if lengths else {},
        "lone": lone,  # not in the manifest: paired with other shards' (`pair_lone_documents`)
    }


def _write_shard(path: Path, rows, docs: list, num_sentences: int, unk_id: int) -> dict:
    """Writes `rows` (None: none) as the TFRecord shard `path`; its manifest counts."""
    import tensorflow as tf

    num_instances = 0 if rows is None else len(rows["input_ids"])
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(num_instances):
            row = {key: value[i] for key, value in rows.items()}
            length = int(rows["input_mask"][i].sum())
            writer.write(_example(row, length).SerializeToString(deterministic=True))
    num_tokens, num_unknown = documents.count_tokens(docs, unk_id)
    return {
        "file": path.name,
        "bytes": path.stat().st_size,  # checked when read (`prepared.load_prepared`)
        "instances": num_instances,
        "documents": len(docs),
        "sentences": num_sentences,
        "tokens": num_tokens,
        "unknown_tokens": num_unknown,
    }


def pair_lone_documents(shards: list[dict], settings: dict, vocab_dir: Path, out_dir: Path):
    """NSP from shards of one document each (files of one document: a book without blank
    lines; more shards than documents): their documents, which made no pair alone, are paired
    with each other in the first such shard (random partners from among them); two or more
    are needed. Before, each was left out, and a corpus of such books lost all but one."""
    lone = [shard for shard in shards if shard["lone"]]
    if len(lone) < 2:
        return
    docs = [doc for shard in lone for doc in shard["lone"]["docs"]]
    sentences = sum(shard["lone"]["sentences"] for shard in lone)
    tokenizer = vocab.load_tokenizer(vocab_dir / VOCAB_FILE, settings["lowercase"])
    rows = _shard_rows(docs, settings, settings["seed"] + len(shards), tokenizer)
    first = lone[0]
    first |= _write_shard(out_dir / first["file"], rows, docs, sentences, tokenizer.unk_id)
    for shard in lone:
        shard["unpaired_documents"] = 0
    logging.info(
        "%d shards of one document each: their documents are paired with each other in %s",
        len(lone), first["file"],
    )  # fmt: skip


def prepare_shards(jobs: list[tuple], num_workers: int) -> list[dict]:
    """Each job's shard (in shard order), built by `num_workers` worker processes."""
    if num_workers == 1:
        return [prepare_shard(job) for job in jobs]
    # Largest shards first, so that the last one to start is a small one (balance). spawn:
    # TensorFlow is not fork-safe once imported.
    sources, _, num_shards = jobs[0][:3]
    order = sorted(range(num_shards), key=lambda s: -shard_bytes(sources, s, num_shards))
    context = multiprocessing.get_context("spawn")
    with context.Pool(num_workers, initializer=startup.import_tensorflow_quietly) as pool:
        done = pool.map(prepare_shard, [jobs[s] for s in order], chunksize=1)
    return [shard for _, shard in sorted(zip(order, done, strict=True))]
