"""Sentence splitters compared: boundary quality on gold sentences, speed, per-source statistics.

Candidates: bertjax's rules (`split_sentences`), the rules of an earlier commit (--baseline_rev,
read with `git show`), and the PyPI segmenters sentencex, pysbd, blingfire and syntok when they
are installed (`pip install sentencex==1.0.32 pysbd==0.3.4 blingfire==0.1.8 syntok==1.4.4`).
Every library gets bertjax's paragraph handling (blank lines end paragraphs, whitespace collapses)
and is then called once per paragraph, as `split_sentences` would call it.

Quality: documents of --sentences_per_document gold sentences joined (English with a space,
Chinese with nothing); a boundary is the count of non-space characters before a sentence start,
so precision/recall/F1 do not depend on how a splitter treats whitespace. Gold sets: MR
(lowercased, tokenised movie-review sentences; about 11% of its lines hold two sentences, which
caps precision for everyone), TREC questions, WSJ sentences of CoNLL-2000 as tokens and
detokenised, UD Chinese GSDSimp sentences, and those mixed with the detokenised WSJ sentences.
Other languages: tests/data/multilingual_sentences.json, one hand-written document each in 19
languages (written for this project, and the rules against it), and multilingual_heldout.json
(19 languages, written afterwards and scored before any rule changed); sentencex and pysbd are
told the language, pysbd where it has rules for it. --truncation: what a splitter's misses cost
NSP pairs, as the share of tokens that `truncate_seq_pair` cuts from 128-token rows of documents
of 3 paragraphs of 30 sentences drawn (with replacement) from a language's hand-written ones.
Speed: characters per second of one process over every document of each pretraining corpus
(stopping after --time_budget seconds per splitter and corpus: "sampled" rows). Statistics:
per source file, for the splitters that finished the corpus.

  python -m benchmarks.sentence_split --data=../shared/data
  python -m benchmarks.sentence_split --data=../shared/data --tokenize_documents  # + pipeline time
"""

import argparse
import dataclasses
import glob
import json
import os
import random
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from bertjax.data import sentence_stats, sentences

Splitter = Callable[[str], list[str]]
REPO = Path(__file__).resolve().parents[1]
# The commit whose rules split only before capitals (the rules this benchmark was written for).
DEFAULT_BASELINE_REV = "8424034"


def _paragraphs(text: str) -> Iterator[str]:
    """bertjax's paragraph handling: blank lines split, whitespace inside collapses."""
    for paragraph in sentences._PARAGRAPH_BREAK.split(text):
        collapsed = " ".join(paragraph.split())
        if collapsed:
            yield collapsed


def _per_paragraph(segment: Callable[[str], Sequence[str]]) -> Splitter:
    def split(text: str) -> list[str]:
        return [s.strip() for p in _paragraphs(text) for s in segment(p) if s.strip()]

    return split


def _syntok_sentences(paragraph: str) -> list[str]:
    from syntok import segmenter

    found = []
    for syntok_paragraph in segmenter.process(paragraph):
        for sentence in syntok_paragraph:
            first, last = sentence[0], sentence[-1]
            found.append(
                paragraph[first.offset - len(first.spacing) : last.offset + len(last.value)]
            )
    return found


def _baseline_splitter(rev: str) -> Splitter | None:
    """`split_sentences` of bertjax/data/sentences.py at git revision `rev` (None if unreadable)."""
    show = ["git", "-C", str(REPO), "show", f"{rev}:bertjax/data/sentences.py"]
    result = subprocess.run(show, capture_output=True, text=True, check=False)
    if result.returncode:
        print(f"baseline {rev!r} skipped: {result.stderr.strip()}", file=sys.stderr)
        return None
    module = types.ModuleType(f"sentences_{rev}")
    exec(compile(result.stdout, f"{rev}:sentences.py", "exec"), module.__dict__)
    return module.split_sentences


def splitters(baseline_rev: str) -> dict[str, Splitter]:
    """Name -> splitter of every candidate that is available here."""
    found: dict[str, Splitter] = {}
    if baseline_rev and (baseline := _baseline_splitter(baseline_rev)):
        found[f"rules@{baseline_rev}"] = baseline
    found["bertjax rules"] = sentences.split_sentences
    try:
        import sentencex

        found["sentencex"] = _per_paragraph(lambda p: sentencex.segment("en", p))
    except ImportError:
        pass
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False)
        found["pysbd"] = _per_paragraph(segmenter.segment)
    except ImportError:
        pass
    try:
        import blingfire

        found["blingfire"] = _per_paragraph(lambda p: blingfire.text_to_sentences(p).split("\n"))
    except ImportError:
        pass
    try:
        import syntok  # noqa: F401

        found["syntok"] = _per_paragraph(_syntok_sentences)
    except ImportError:
        pass
    return found


# ---------------------------------------------------------------- gold sentence sets


@dataclasses.dataclass
class GoldSet:
    name: str
    documents: list[list[str]]  # gold sentences of each document
    joiners: list[list[str]]  # the text put between sentence i and i + 1 of each document


def _jsonl(pattern: str) -> list[dict]:
    return [json.loads(line) for path in sorted(glob.glob(pattern)) for line in open(path)]


def _is_chinese(sentence: str) -> bool:
    return sentences._is_cjk(sentence[:1]) or sentences._is_cjk(sentence[-2:-1])


def _joiner(left: str, right: str) -> str:
    return "" if _is_chinese(left) or _is_chinese(right) else " "


def detokenize(tokens: Sequence[str]) -> str:
    """Penn-Treebank tokens back to plain text, roughly (punctuation and clitics attached)."""
    text = ""
    for token in tokens:
        if token == "." and text.endswith("."):
            continue  # "U.S. ." at the end of a sentence is written "U.S."
        attach = token in ".,;:?!%)'' n't 's 're 've 'm 'll 'd" or token.startswith("'")
        text += token if not text or attach or text.endswith(("$", "(", "``")) else " " + token
    return text.replace("``", '"').replace("''", '"')


def _grouped(name: str, items: list[str], size: int) -> GoldSet:
    items = [" ".join(s.split()) for s in items if s.strip()]
    documents = [items[i : i + size] for i in range(0, len(items), size)]
    joiners = [[_joiner(a, b) for a, b in zip(doc, doc[1:], strict=False)] for doc in documents]
    return GoldSet(name, documents, joiners)


def gold_sets(data: Path, size: int) -> list[GoldSet]:
    """The gold sets found under `data` (a shared/data folder)."""
    mr = [r["text"] for r in _jsonl(f"{data}/tasks/mr/*.jsonl")]
    trec = [r["text"] for r in _jsonl(f"{data}/tasks/trec/*.jsonl")]
    wsj = [r["tokens"] for r in _jsonl(f"{data}/tasks/chunking/*.jsonl")]
    ud = [r["text"] for r in _jsonl(f"{data}/zh/tasks/ud_gsdsimp_seg/*.jsonl")]
    wsj_plain = [detokenize(tokens) for tokens in wsj]
    mixed = ud + wsj_plain[: len(ud)]
    random.Random(0).shuffle(mixed)
    found = [
        _grouped("MR (lowercased, tokenised)", mr, size),
        _grouped("TREC questions (tokenised)", trec, size),
        _grouped("WSJ tokenised", [" ".join(tokens) for tokens in wsj], size),
        _grouped("WSJ detokenised", wsj_plain, size),
        _grouped("UD Chinese (no spaces)", ud, size),
        _grouped("mixed Chinese/WSJ", mixed, size),
    ]
    return [gold for gold in found if gold.documents]


def _boundaries(parts: Sequence[str]) -> set[int]:
    """Non-space characters before the start of each part but the first."""
    found, count = set(), 0
    for part in parts[:-1]:
        count += len("".join(part.split()))
        found.add(count)
    return found


def score(gold: GoldSet, split: Splitter) -> dict[str, float]:
    """Boundary precision, recall and F1 of `split` on `gold`, and its seconds."""
    true_positives, predicted, expected, seconds = boundary_counts(gold, split)
    precision = true_positives / max(predicted, 1)
    recall = true_positives / max(expected, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return dict(precision=precision, recall=recall, f1=f1, seconds=seconds)


def boundary_counts(gold: GoldSet, split: Splitter) -> tuple[int, int, int, float]:
    """(boundaries right, found, expected, seconds) of `split` on `gold`."""
    true_positives = predicted = expected = 0
    seconds = 0.0
    for doc, joiners in zip(gold.documents, gold.joiners, strict=True):
        text = doc[0] + "".join(j + s for j, s in zip(joiners, doc[1:], strict=True))
        start = time.perf_counter()
        found = split(text)
        seconds += time.perf_counter() - start
        want, got = _boundaries(doc), _boundaries(found)
        true_positives += len(want & got)
        predicted, expected = predicted + len(got), expected + len(want)
    return true_positives, predicted, expected, seconds


# Hand-written: the set the rules were written against, and one written afterwards and scored
# once before any rule changed (held out).
MULTILINGUAL = REPO / "tests" / "data" / "multilingual_sentences.json"
MULTILINGUAL_HELDOUT = REPO / "tests" / "data" / "multilingual_heldout.json"


def multilingual_golds(path: Path = MULTILINGUAL) -> list[tuple[str, GoldSet]]:
    """(language code, one-document gold set) of each language of a hand-written set."""
    found = []
    for entry in json.loads(path.read_text(encoding="utf-8")):
        doc, joiner = entry["sentences"], entry.get("joiner", " ")
        found.append(
            (entry["language"], GoldSet(entry["name"], [doc], [[joiner] * (len(doc) - 1)]))
        )
    return found


def language_splitters(language: str, candidates: dict[str, Splitter]) -> dict[str, Splitter]:
    """`candidates` with sentencex and pysbd told `language` (pysbd: None without its rules)."""
    found: dict[str, Splitter | None] = dict(candidates)
    if "sentencex" in candidates:
        import sentencex

        found["sentencex"] = _per_paragraph(lambda p: sentencex.segment(language, p))
    if "pysbd" in candidates:
        import pysbd

        try:
            found["pysbd"] = _per_paragraph(pysbd.Segmenter(language=language, clean=False).segment)
        except ValueError:  # no rules for this language
            found["pysbd"] = None
    return found


def multilingual_table(candidates: dict[str, Splitter], path: Path, title: str) -> None:
    """Boundary F1 per language and micro-averaged P/R/F1 over the languages each splitter has."""
    totals = {name: [0, 0, 0] for name in candidates}
    rows = []
    for language, gold in multilingual_golds(path):
        row = [f"{gold.name} ({language})", str(len(gold.documents[0]))]
        for name, split in language_splitters(language, candidates).items():
            if split is None:
                row.append("-")
                continue
            right, found, expected, _ = boundary_counts(gold, split)
            totals[name] = [
                a + b for a, b in zip(totals[name], (right, found, expected), strict=True)
            ]
            row.append(f"{2 * right / max(found + expected, 1):.2f}")
        rows.append(row)
    pooled = ["all (P / R / F1)", str(sum(int(r[1]) for r in rows))]
    for right, found, expected in totals.values():
        precision, recall = right / max(found, 1), right / max(expected, 1)
        pooled.append(
            f"{precision:.2f} / {recall:.2f} / {2 * right / max(found + expected, 1):.2f}"
        )
    print(f"### Other languages, {title}: boundary F1 per hand-written document\n")
    _print_table(["language", "sentences", *candidates], [*rows, pooled])


# ---------------------------------------------------------------- speed and statistics


def read_corpus(pattern: str) -> list[tuple[str, str]]:
    """(file name, text) of every document of the .jsonl files matching `pattern`."""
    return [
        (os.path.basename(path), json.loads(line)["text"])
        for path in sorted(glob.glob(pattern))
        for line in open(path)
    ]


def run_corpus(
    documents: list[tuple[str, str]], split: Splitter, time_budget: float
) -> tuple[float, int, dict[str, list[list[int]]]]:
    """(seconds, characters done, file -> per-document sentence lengths) until done or budget."""
    seconds, characters = 0.0, 0
    lengths: dict[str, list[list[int]]] = {}
    for name, text in documents:
        start = time.perf_counter()
        found = split(text)
        seconds += time.perf_counter() - start
        characters += len(text)
        lengths.setdefault(name, []).append([len(s) for s in found])
        if seconds > time_budget:
            break
    return seconds, characters, lengths


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print()


def quality_table(golds: list[GoldSet], candidates: dict[str, Splitter]) -> None:
    for gold in golds:
        count = sum(len(doc) for doc in gold.documents)
        print(f"### {gold.name}: {count} sentences in {len(gold.documents)} documents\n")
        rows = []
        for name, split in candidates.items():
            s = score(gold, split)
            rows.append(
                [name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}"]
                + [f"{s['seconds']:.2f}"]
            )
        _print_table(["splitter", "precision", "recall", "F1", "seconds"], rows)


def stats_rows(name: str, lengths: dict[str, list[list[int]]]) -> list[list[str]]:
    rows = []
    for source, docs in lengths.items():
        s = sentence_stats.sentence_stats(docs)
        rows.append(
            [source, name, str(s.documents), f"{s.sentences_per_document_mean:.1f}"]
            + [f"{s.sentences_per_document_median:.0f}", f"{s.chars_per_sentence_mean:.0f}"]
            + [f"{s.chars_per_sentence_median:.0f}", f"{s.chars_per_sentence_p95:.0f}"]
            + [f"{100 * s.single_sentence_share:.1f}%"]
            + ["WARNING" if sentence_stats.unsplit_warning(source, s) else ""]
        )
    return rows


def corpus_tables(
    corpora: dict[str, list[tuple[str, str]]], candidates: dict[str, Splitter], budget: float
) -> None:
    speed_rows, stat_rows = [], []
    for corpus_name, documents in corpora.items():
        total = sum(len(text) for _, text in documents)
        for name, split in candidates.items():
            seconds, characters, lengths = run_corpus(documents, split, budget)
            done = "all" if characters == total else f"sampled {characters / total:.0%}"
            speed_rows.append(
                [corpus_name, name, f"{characters / seconds / 1e6:.2f}", f"{seconds:.1f}", done]
            )
            if characters == total:
                stat_rows.extend(stats_rows(name, lengths))
    print("### Speed (one process)\n")
    _print_table(["corpus", "splitter", "M chars/s", "seconds", "documents"], speed_rows)
    print("### Per-source statistics (characters per sentence after whitespace collapsing)\n")
    header = ["source", "splitter", "docs", "sent/doc", "median", "chars/sent", "median", "p95"]
    _print_table([*header, "1-sentence docs", "unsplit?"], sorted(stat_rows))


def tokenize_documents_seconds(
    texts: list[str], candidates: dict[str, Splitter], vocab_dir: Path, repeats: int = 2
) -> None:
    """Seconds of `documents.tokenize_documents` on `texts` with each rule-based splitter."""
    from unittest import mock

    from bertjax.data import documents, tokenizer, vocab

    path = tokenizer.train_wordpiece_vocab(texts[::10], 8000, True, vocab_dir)
    wordpiece = vocab.load_tokenizer(path, lowercase=True)
    documents.tokenize_documents(texts[:50], wordpiece)  # warm up the TF ops
    rules = {k: v for k, v in candidates.items() if k.startswith(("rules@", "bertjax"))}
    seconds: dict[str, list[float]] = {name: [] for name in rules}
    counts = {}
    for _ in range(repeats):  # alternating, so a busy machine hurts every splitter alike
        for name, split in rules.items():
            with mock.patch.object(sentences, "split_sentences", split):
                start = time.perf_counter()
                _, counts[name] = documents.tokenize_documents(texts, wordpiece)
                seconds[name].append(time.perf_counter() - start)
    rows = [
        [name, f"{min(s):.1f}", f"{max(s):.1f}", str(counts[name])] for name, s in seconds.items()
    ]
    print(f"### documents.tokenize_documents on the English corpus, best and worst of {repeats}\n")
    _print_table(["splitter", "best s", "worst s", "sentences"], rows)


def _truncated_share(texts: list[str], split: Splitter, wordpiece) -> tuple[int, float]:
    """(sentences, share of tokens cut) of NSP rows (128 tokens) from `texts` split by `split`."""
    from unittest import mock

    from bertjax.data import documents, pretraining_examples

    with mock.patch.object(sentences, "split_sentences", split):
        docs, count = documents.tokenize_documents(texts, wordpiece)
    cut = [0]
    truncate = pretraining_examples.truncate_seq_pair

    def counting(tokens_a, tokens_b, max_num_tokens, rng):
        before = len(tokens_a) + len(tokens_b)
        truncate(tokens_a, tokens_b, max_num_tokens, rng)
        cut[0] += before - len(tokens_a) - len(tokens_b)

    special = dict(cls_id=wordpiece.cls_id, sep_id=wordpiece.sep_id, pad_id=wordpiece.pad_id)
    with mock.patch.object(pretraining_examples, "truncate_seq_pair", counting):
        pretraining_examples.create_instances(
            docs, max_seq_length=128, short_seq_prob=0.1, dupe_factor=1, seed=0, **special
        )
    return count, cut[0] / sum(len(s) for doc in docs for s in doc)


def truncation_table(candidates: dict[str, Splitter], vocab_dir: Path) -> None:
    """Per language: sentences found and tokens cut from NSP rows, by each rule-based splitter."""
    from bertjax.data import tokenizer, vocab

    rules = {k: v for k, v in candidates.items() if k.startswith(("rules@", "bertjax"))}
    rng = random.Random(0)
    rows = []
    for language, gold in multilingual_golds():
        pool, joiner = gold.documents[0], (gold.joiners[0] or [" "])[0]
        paragraphs = [joiner.join(rng.choices(pool, k=30)) for _ in range(60)]
        texts = ["\n\n".join(paragraphs[i : i + 3]) for i in range(0, 60, 3)]
        path = tokenizer.train_wordpiece_vocab(texts, 2000, True, vocab_dir / language)
        wordpiece = vocab.load_tokenizer(path, lowercase=True)
        row = [f"{gold.name} ({language})"]
        for split in rules.values():
            count, share = _truncated_share(texts, split, wordpiece)
            row.append(f"{count} / {share:.0%}")
        rows.append(row)
    print("### NSP rows of 1,800 sentences a language: sentences found / tokens cut\n")
    _print_table(["language", *rules], rows)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--baseline_rev", default=DEFAULT_BASELINE_REV, help="'' = none")
    parser.add_argument("--sentences_per_document", type=int, default=10)
    parser.add_argument("--time_budget", type=float, default=30.0, help="seconds per corpus")
    parser.add_argument("--only", default="", help="comma-separated splitter names")
    parser.add_argument("--tokenize_documents", action="store_true")
    parser.add_argument("--truncation", action="store_true", help="NSP cuts, other languages")
    parser.add_argument("--skip", default="", help="comma-separated: quality,speed")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    data = Path(args.data)
    if not (data / "pretrain").is_dir():
        sys.exit(f"no {data}/pretrain; pass --data=PATH/shared/data")
    candidates = splitters(args.baseline_rev)
    if args.only:
        candidates = {k: v for k, v in candidates.items() if k in args.only.split(",")}
    print(f"splitters: {', '.join(candidates)}\n")
    if "quality" not in args.skip:
        quality_table(gold_sets(data, args.sentences_per_document), candidates)
        multilingual_table(candidates, MULTILINGUAL, "the rules' set")
        multilingual_table(candidates, MULTILINGUAL_HELDOUT, "held out")
    english = read_corpus(f"{data}/pretrain/*.jsonl")
    if "speed" not in args.skip:
        corpora = {"English": english, "Chinese": read_corpus(f"{data}/zh/pretrain/*.jsonl")}
        corpus_tables(corpora, candidates, args.time_budget)
    if args.truncation:
        import tempfile

        with tempfile.TemporaryDirectory() as vocab_dir:
            truncation_table(candidates, Path(vocab_dir))
    if args.tokenize_documents:
        import tempfile

        with tempfile.TemporaryDirectory() as vocab_dir:
            texts = [text for _, text in english]
            tokenize_documents_seconds(texts, candidates, Path(vocab_dir))
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
