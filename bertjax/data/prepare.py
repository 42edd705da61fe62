"""`bertjax prepare`: corpus -> sharded TFRecord files of tokenized instances + a manifest.

Each shard is built by its own worker process (local cores in parallel; `prepare_shards.py`): read
its share of the corpus, split sentences, tokenize, build NSP pairs (or packed rows) with seed
``seed + shard``, write ``instances-SSSSS-of-NNNNN.tfrecord``. A shard's share is a set of whole
files when there are at least as many files as shards, else every num_shards-th document of the
corpus. NSP random partners come from the same shard, as in google-research/bert's per-file-group
runs. With one shard the instances equal the in-memory path's (`pipeline.build_pretraining_data`)
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

import json
import os
import shutil
from pathlib import Path

from absl import logging

from bertjax import paths, run_lock
from bertjax.data import (
    corpus,
    documents,
    prepare_shards,
    sentence_stats,
    spec,
    text_encodings,
    vocab,
)
from bertjax.data import word_segmenter as word_segmenter_module
from bertjax.data.vocab_files import META_FILE, VOCAB_FILE
from bertjax.errors import UserError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
VOCAB_SUBDIR = "vocab"
HELDOUT_FILE = prepare_shards.HELDOUT_FILE


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
      out_dir: output directory (created; refused when it holds a prepared dataset, the
        shards of a stopped prepare removed).
      max_seq_length, short_seq_prob, dupe_factor, seed, packing, text_field, text_format:
        as the config fields of the same names.
      lowercase: tokenizer casing; None = the vocabulary's vocab_meta.json, else uncased unless
        its vocab.txt has upper-case tokens (`vocab.default_lowercase`).
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
    if lowercase is None:
        lowercase = vocab.default_lowercase(vocab_dir)
    settings = _checked_settings(
        max_seq_length=max_seq_length,
        short_seq_prob=short_seq_prob,
        dupe_factor=dupe_factor,
        seed=seed,
        packing=packing,
        text_field=text_field,
        text_format=text_format,
        lowercase=lowercase,
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
    with run_lock.held(out_dir, "--out"):  # a second prepare into it is refused
        _clear_unfinished(out_dir)
        jobs = [(sharded, s, num_shards, settings, str(vocab_dir), str(out_dir))
                for s in range(num_shards)]  # fmt: skip
        workers = max(1, min(num_workers or os.cpu_count() or 1, num_shards))
        shards = _built_shards(jobs, workers, settings, vocab_dir, out_dir, input)
        shutil.copytree(
            vocab_dir, out_dir / VOCAB_SUBDIR, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(run_lock.LOCK_FILE, ".*"),  # a `vocab` run's own
        )  # fmt: skip
        if eval_holdout_fraction:
            prepare_shards.join_heldout_parts(out_dir, num_shards)
        manifest = _manifest(shards, settings, sources, vocab_dir, meta.get("vocab_size"))
        if eval_holdout_fraction:
            manifest["heldout_bytes"] = (out_dir / HELDOUT_FILE).stat().st_size
        # last, whole or not at all: its presence marks a finished dataset
        paths.write_text_atomically(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    _log_manifest(manifest, out_dir, vocab.vocabulary_kind(vocab_dir / VOCAB_FILE))
    return manifest


def _clear_unfinished(out_dir: Path) -> None:
    """Refuses an `out_dir` that holds a finished dataset (its manifest: a second prepare there
    deleted it first, and left shards of another count and the other vocabulary's files beside
    its own); removes what a stopped prepare left there, which no manifest names."""
    paths.refuse_leftovers(
        out_dir, [MANIFEST_FILE], "--out", "is a prepared dataset this one would write over"
    )
    shards = out_dir.glob(prepare_shards.shard_name(0, 0).replace("00000", "*"))
    parts = out_dir.glob(prepare_shards.heldout_part(0, 0).replace("00000", "*"))
    for stale in [*shards, *parts, out_dir / HELDOUT_FILE]:
        stale.unlink(missing_ok=True)
    shutil.rmtree(out_dir / VOCAB_SUBDIR, ignore_errors=True)


def _built_shards(jobs, workers: int, settings: dict, vocab_dir: Path, out_dir: Path, input: str):
    """The shards of `jobs`, built by `workers` processes, lone documents paired (NSP), their
    manifest entries checked: UserError when no shard made a row."""
    shards = prepare_shards.prepare_shards(jobs, workers)
    if not settings["packing"]:
        prepare_shards.pair_lone_documents(shards, settings, vocab_dir, out_dir)
    for shard in shards:
        shard.pop("lone")
    _log_sentence_stats([shard.pop("sentence_stats") for shard in shards], settings["packing"])
    problems = [shard.pop("problem") for shard in shards]
    _check_pairs(shards, input, next(filter(None, problems), ""))
    return shards


def _log_sentence_stats(by_shard: list[dict], packing: bool) -> None:
    """Logs how each source split into sentences (and warns of an unsplit one, for NSP pairs),
    from the shard that read most of its documents: all of them when shards are whole files,
    else every num_shards-th one, a fair sample."""
    chosen: dict[str, sentence_stats.SentenceStats] = {}
    for stats in by_shard:
        for source, source_stats in stats.items():
            if source not in chosen or source_stats.documents > chosen[source].documents:
                chosen[source] = source_stats
    for source, stats in chosen.items():
        sentence_stats.log_source_stats(os.path.basename(source), stats, nsp=not packing)


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
    read = prepare_shards.read_settings(settings)
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
