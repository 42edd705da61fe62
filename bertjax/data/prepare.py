"""`bertjax prepare`: corpus -> sharded TFRecord files of tokenized instances + a manifest.

Each shard is built by its own worker process (local cores in parallel): read its share of the
corpus, split sentences, tokenize, build NSP pairs (or packed rows) with seed ``seed + shard``,
write ``instances-SSSSS-of-NNNNN.tfrecord``. A shard's share is a set of whole files when there
are at least as many files as shards, else every num_shards-th document of the corpus. NSP
random partners come from the same shard, as in google-research/bert's per-file-group runs.
With one shard the instances equal the in-memory path's (`pipeline.build_pretraining_data`)
for the same corpus, vocabulary, settings and seed.

Records hold the unpadded rows (``input_ids``, ``segment_ids``, packed: ``attention_segment_ids``;
with a word segmenter: ``word_starts``; ``next_sentence_labels``); masking happens at training
time (`sources.prepared` reads them). The manifest (``manifest.json``, written last, so its
presence marks a complete directory) records the counts per shard, the settings, the
vocabulary's sha256 and the input sources; the vocabulary is copied to ``vocab/`` so the
directory is self-contained. With ``eval_holdout_fraction`` the documents `corpus.is_held_out`
picks are left out of the shards and written to ``heldout.jsonl.gz`` (field ``text``, shard
order): the held-out set a run trained from the directory evaluates on.
"""

import gzip
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
from absl import logging

from bertjax import paths, startup
from bertjax.data import (
    corpus,
    documents,
    packing,
    pretraining_examples,
    spec,
    text_encodings,
    vocab,
)
from bertjax.data import word_segmenter as word_segmenter_module
from bertjax.data.tokenizer import META_FILE, VOCAB_FILE
from bertjax.errors import UserError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
VOCAB_SUBDIR = "vocab"
HELDOUT_FILE = "heldout.jsonl.gz"


def shard_name(shard: int, num_shards: int) -> str:
    return f"instances-{shard:05d}-of-{num_shards:05d}.tfrecord"


def _read_settings(settings: dict) -> dict:
    """`corpus.read_documents`' keyword arguments of the manifest's settings."""
    return dict(text_field=settings["text_field"], text_format=settings["text_format"],
                text_encoding=settings.get("text_encoding", ""))  # fmt: skip


def _shard_texts(sources: list[str], shard: int, num_shards: int, settings: dict):
    """This shard's documents: whole files, or every num_shards-th document."""
    read = _read_settings(settings)
    if len(sources) >= num_shards:
        yield from corpus.read_documents(sources[shard::num_shards], **read)
        return
    for index, text in enumerate(corpus.read_documents(sources, **read)):
        if index % num_shards == shard:
            yield text


def _split_held_out(texts, fraction: float, held_out: list[str]):
    """Yields the training documents of `texts`; appends the held-out ones to `held_out`."""
    for text in texts:
        if fraction and corpus.is_held_out(text, fraction):
            held_out.append(text)
        else:
            yield text


def _heldout_part(shard: int, num_shards: int) -> str:
    return f"heldout-{shard:05d}-of-{num_shards:05d}.jsonl.gz"


def _shard_bytes(sources: list[str], shard: int, num_shards: int) -> int:
    """Input bytes of a shard made of whole files (0 for tfds sources and interleaved shards)."""
    if len(sources) < num_shards:
        return 0
    return sum(corpus.source_size(source) for source in sources[shard::num_shards])


def _join_heldout_parts(out_dir: Path, num_shards: int) -> None:
    """The shards' held-out parts -> one ``heldout.jsonl.gz`` in shard order (gzip members
    concatenate into one valid file), parts removed."""
    parts = [out_dir / _heldout_part(s, num_shards) for s in range(num_shards)]
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


def _prepare_shard(args: tuple) -> dict:
    """Worker: builds and writes one shard; returns its counts and build seconds."""
    sources, shard, num_shards, settings, vocab_dir, out_dir = args
    start = time.perf_counter()
    tokenizer = vocab.load_tokenizer(Path(vocab_dir) / VOCAB_FILE, settings["lowercase"])
    held_out: list[str] = []
    problem = ""  # why the shard read no document, said if no shard makes a row
    texts = _split_held_out(
        _shard_texts(sources, shard, num_shards, settings),
        settings["eval_holdout_fraction"],
        held_out,
    )
    try:
        docs, num_sentences = documents.tokenize_documents(
            texts,
            tokenizer,
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
        part = Path(out_dir) / _heldout_part(shard, num_shards)
        with gzip.open(part, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in held_out)
    return _write_shard(path, rows, docs, num_sentences, tokenizer.unk_id) | {
        "unpaired_documents": len(lone["docs"]) if lone else 0,
        "heldout_documents": len(held_out),
        "seconds": round(time.perf_counter() - start, 3),  # after the worker's imports
        "problem": problem,  # not in the manifest
        "lone": lone,  # not in the manifest: paired with other shards' (`_pair_lone_documents`)
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
        "instances": num_instances,
        "documents": len(docs),
        "sentences": num_sentences,
        "tokens": num_tokens,
        "unknown_tokens": num_unknown,
    }


def _pair_lone_documents(shards: list[dict], settings: dict, vocab_dir: Path, out_dir: Path):
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


def run_prepare(
    input: str,
    vocab_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    dupe_factor: int = 5,
    seed: int = 0,
    packing: bool = False,
    text_field: str = "text",
    text_format: str = "sentences",
    lowercase: bool | None = None,
    num_shards: int | None = None,
    num_workers: int | None = None,
    word_segmenter: str = "",
    eval_holdout_fraction: float = 0.0,
    text_encoding: str = "",
) -> dict:
    """Tokenizes `input` into sharded TFRecord instances under `out_dir`; returns the manifest.

    Args:
      input: corpus files/globs or ``tfds:`` sources (as ``--config.corpus``).
      vocab_dir: directory with vocab.txt (and sentencepiece.model), e.g. from `run_vocab`.
      out_dir: output directory (created; existing shards of the same name are overwritten).
      max_seq_length, short_seq_prob, dupe_factor, seed, packing, text_field, text_format:
        as the config fields of the same names.
      lowercase: tokenizer casing; None = the vocabulary's vocab_meta.json (else True).
      num_shards: output files; None = one per input file (NSP from 'paragraphs' files, one
        document each: one per two files), at most 256. Use at least as many as training
        processes (each process reads its own shards).
      num_workers: parallel worker processes; None = all local cores (at most num_shards).
      word_segmenter: "rjieba"/"fugashi" stores each token's ``word_starts`` (words for
        whole-word and span masking, see `word_segmenter`); "" = none.
      text_encoding: the text files' encoding, as the config field ("" = UTF-8).
      eval_holdout_fraction: as the config field: these documents go to ``heldout.jsonl.gz``,
        not to the shards; a run from the directory with the same fraction evaluates on them.
    """
    paths.require_local(vocab_dir, "--vocab")
    paths.require_local(out_dir, "--out")
    vocab_dir = Path(vocab_dir).expanduser()
    if not (vocab_dir / VOCAB_FILE).is_file():
        raise UserError(f"--vocab={str(vocab_dir)!r} holds no vocab.txt; run `bertjax vocab`")
    meta_path = vocab_dir / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    settings = _checked_settings(
        max_seq_length=max_seq_length,
        short_seq_prob=short_seq_prob,
        dupe_factor=dupe_factor,
        seed=seed,
        packing=packing,
        text_field=text_field,
        text_format=text_format,
        lowercase=meta.get("lowercase", True) if lowercase is None else lowercase,
        eval_holdout_fraction=eval_holdout_fraction,
        word_segmenter=word_segmenter,
        text_encoding=text_encoding,
    )
    sources = corpus.resolve_files(input)
    sharded = sources
    if num_shards is None:
        sharded, num_shards = _default_sharding(sources, settings)
    if num_shards < 1:
        raise UserError(f"--num_shards={num_shards} must be >= 1")
    out_dir = paths.make_local_dir(out_dir, "--out")
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    (out_dir / HELDOUT_FILE).unlink(missing_ok=True)
    jobs = [
        (sharded, s, num_shards, settings, str(vocab_dir), str(out_dir)) for s in range(num_shards)
    ]
    shards = _prepare_shards(jobs, max(1, min(num_workers or os.cpu_count() or 1, num_shards)))
    if not settings["packing"]:
        _pair_lone_documents(shards, settings, vocab_dir, out_dir)
    for shard in shards:
        shard.pop("lone")
    problems = [shard.pop("problem") for shard in shards]
    _check_pairs(shards, input, next(filter(None, problems), ""))
    shutil.copytree(vocab_dir, out_dir / VOCAB_SUBDIR, dirs_exist_ok=True)
    if eval_holdout_fraction:
        _join_heldout_parts(out_dir, num_shards)
    manifest = _manifest(shards, settings, sources, vocab_dir, meta.get("vocab_size"))
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    _log_manifest(manifest, out_dir, vocab.vocabulary_kind(vocab_dir / VOCAB_FILE))
    return manifest


def _log_manifest(manifest: dict, out_dir: Path, vocab_kind: str) -> None:
    """Logs what was prepared, and warnings: no document held out, many [UNK] tokens (their
    causes those of a `vocab_kind` vocabulary)."""
    fraction = manifest["settings"]["eval_holdout_fraction"]
    if fraction and not manifest["num_heldout_documents"]:
        logging.warning(
            "eval_holdout_fraction=%s held out no document of %d; raise it to evaluate",
            fraction,
            manifest["num_documents"],
        )
    unknown = documents.unknown_tokens_warning(
        manifest["num_tokens"], manifest["num_unknown_tokens"], vocab_kind
    )
    if unknown:
        logging.warning("%s", unknown)
    logging.info(
        "Prepared %d instances from %d documents in %d shards -> %s",
        manifest["num_instances"],
        manifest["num_documents"],
        len(manifest["shards"]),
        out_dir,
    )


def _default_sharding(sources: list[str], settings: dict) -> tuple[list[str], int]:
    """The sources to shard and the number of shards when --num_shards is not given: one shard
    per input file, at most 256. For NSP pairs from files of one document each (text_format
    'paragraphs'), two files a shard, random partners coming from the shard: files without a
    document (empty, in another encoding) are left out first, else a book paired with one is
    alone in its shard and dropped (reads each file's first document once more)."""
    if settings["text_format"] != "paragraphs" or settings["packing"]:
        return sources, max(1, min(len(sources), 256))
    with_documents = [source for source in sources if _has_a_document(source, settings)]
    kept = with_documents or sources  # none: the shards' reading reports why
    return kept, max(1, min(len(kept) // 2, 256))


def _has_a_document(source: str, settings: dict) -> bool:
    """Whether `source` yields a document (its skip warning logged when it does not)."""
    read = _read_settings(settings)
    try:
        return next(corpus.read_documents([source], **read), None) is not None
    except UserError:  # raised by a source without a document
        return False


def _check_pairs(shards: list[dict], input: str, problem: str) -> None:
    """UserError when no shard made a row (the `problem` a shard met reading, if any); a warning
    for the documents left out because they were alone in their shard (NSP pairs need 2)."""
    lone = sum(s["unpaired_documents"] for s in shards)  # 1 at most: 2+ were paired
    if sum(s["instances"] for s in shards) == 0:
        if lone:
            raise UserError(
                f"corpus {input!r} holds one document, and NSP pairs need 2 (in a .txt file, a "
                "blank line ends a document); add documents or pass --packing"
            )
        raise UserError(problem or f"corpus {input!r} yields no training instance; check --input")
    if lone:
        alone = [s["file"] for s in shards if s["unpaired_documents"]]
        logging.warning(
            "%d document alone in its shard (%s) is left out: NSP pairs take their random "
            "partners from their shard; prepare with fewer --num_shards to keep it",
            lone, ", ".join(alone),
        )  # fmt: skip


def _checked_settings(*, word_segmenter: str, text_encoding: str, **settings) -> dict:
    """The manifest's settings, each checked (a bad one is a one-line error naming its flag)."""
    word_segmenter_module.check_segmenter(word_segmenter, "--word_segmenter")
    text_encodings.check_encoding_name(text_encoding, "--text_encoding")
    spec.require_row_length(settings["max_seq_length"], settings["packing"])
    short_seq_prob, dupe_factor = settings["short_seq_prob"], settings["dupe_factor"]
    fraction, text_format = settings["eval_holdout_fraction"], settings["text_format"]
    for valid, problem in (
        (0 <= short_seq_prob <= 1, f"--short_seq_prob={short_seq_prob} must be in [0, 1]"),
        (dupe_factor >= 1, f"--dupe_factor={dupe_factor} must be >= 1"),
        (0 <= fraction < 1, f"--eval_holdout_fraction={fraction} must be in [0, 1), e.g. 0.01"),
        (
            text_format in corpus.TEXT_FORMATS,
            f"--text_format={text_format!r} is unknown; use one of {corpus.TEXT_FORMATS}",
        ),
    ):
        if not valid:
            raise UserError(problem)
    if word_segmenter:  # absent otherwise: manifests without it read as ""
        settings["word_segmenter"] = word_segmenter
    if text_encoding:  # the same
        settings["text_encoding"] = text_encoding
    return settings


def _prepare_shards(jobs: list[tuple], num_workers: int) -> list[dict]:
    """Each job's shard (in shard order), built by `num_workers` worker processes."""
    if num_workers == 1:
        return [_prepare_shard(job) for job in jobs]
    # Largest shards first, so that the last one to start is a small one (balance). spawn:
    # TensorFlow is not fork-safe once imported.
    sources, _, num_shards = jobs[0][:3]
    order = sorted(range(num_shards), key=lambda s: -_shard_bytes(sources, s, num_shards))
    context = multiprocessing.get_context("spawn")
    with context.Pool(num_workers, initializer=startup.import_tensorflow_quietly) as pool:
        done = pool.map(_prepare_shard, [jobs[s] for s in order], chunksize=1)
    return [shard for _, shard in sorted(zip(order, done, strict=True))]


def _manifest(shards: list[dict], settings: dict, sources, vocab_dir: Path, vocab_size) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "num_instances": sum(s["instances"] for s in shards),
        "num_documents": sum(s["documents"] for s in shards),
        "num_sentences": sum(s["sentences"] for s in shards),
        "num_tokens": sum(s["tokens"] for s in shards),
        "num_unknown_tokens": sum(s["unknown_tokens"] for s in shards),
        "num_heldout_documents": sum(s["heldout_documents"] for s in shards),
        "shards": shards,
        "settings": settings,
        "vocab_sha256": vocab.vocab_sha256(vocab_dir),
        "vocab_size": vocab_size,
        "sources": sources,
    }
