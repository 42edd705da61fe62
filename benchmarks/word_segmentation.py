"""Chinese word segmenters for whole-word masking: word F1 on gold segmentation, and speed.

Quality: UD_Chinese-GSDSimp dev and test (`../shared/data/zh/tasks/ud_gsdsimp_seg`), each
sentence's `text` segmented and compared with its gold `words`: a word counts when its span of
non-space characters matches a gold word's (precision = right / predicted, recall = right / gold,
F1 their harmonic mean; micro over all words). Speed: characters per CPU-second of one process over
every sentence of the Chinese pretraining corpus (sentences from `sentences.split_sentences`,
segmented one call per sentence as `documents.tokenize_documents` does), after a warm-up call
that loads the dictionary.

Candidates: rjieba (jieba-rs binding, the segmenter `--config.word_segmenter=rjieba` uses) with
and without its HMM for unknown words, and jieba when installed (`pip install jieba==0.42.1`).

  python -m benchmarks.word_segmentation --data=../shared/data/zh
"""

import argparse
import glob
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bertjax.data import sentences

Segmenter = Callable[[str], list[str]]


def candidates() -> dict[str, Segmenter]:
    import rjieba

    found = {
        "rjieba 0.2.2 (HMM)": lambda text: rjieba.cut(text, True),
        "rjieba 0.2.2 (no HMM)": lambda text: rjieba.cut(text, False),
    }
    try:
        import jieba

        jieba.setLogLevel(60)
        found[f"jieba {jieba.__version__} (HMM)"] = lambda text: jieba.lcut(text, HMM=True)
        found[f"jieba {jieba.__version__} (no HMM)"] = lambda text: jieba.lcut(text, HMM=False)
    except ImportError:
        pass
    return found


def spans(words: Iterable[str]) -> set[tuple[int, int]]:
    """(start, end) of each word over the non-space characters of the text."""
    result, position = set(), 0
    for word in words:
        length = len("".join(word.split()))
        if length:
            result.add((position, position + length))
            position += length
    return result


def word_scores(segment: Segmenter, records: list[dict]) -> dict[str, float]:
    right = predicted = gold = 0
    for record in records:
        found, truth = spans(segment(record["text"])), spans(record["words"])
        if max(end for _, end in found) != max(end for _, end in truth):
            raise ValueError(f"{record['id']}: the segmenter lost or added characters")
        right += len(found & truth)
        predicted += len(found)
        gold += len(truth)
    precision, recall = right / predicted, right / gold
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "words": gold,
    }


def chars_per_cpu_second(segment: Segmenter, texts: list[str]) -> float:
    """Characters per CPU-second of this process: the segmenters run on one thread, so this is
    their idle single-core speed even on a machine other jobs keep busy (wall time is not)."""
    segment(texts[0])  # loads the dictionary
    start = time.process_time()
    for text in texts:
        segment(text)
    return sum(map(len, texts)) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/zh")
    args = parser.parse_args()
    data = Path(args.data)
    splits = {}
    for split in ("dev", "test"):
        with (data / "tasks" / "ud_gsdsimp_seg" / f"{split}.jsonl").open(encoding="utf-8") as f:
            splits[split] = [json.loads(line) for line in f]
    texts = []
    for path in sorted(glob.glob(str(data / "pretrain" / "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                texts.extend(sentences.split_sentences(json.loads(line)["text"]))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"speed: {len(texts):,} sentences, {sum(map(len, texts)):,} characters\n")
    print("| segmenter | dev P / R / F1 | test P / R / F1 | M chars per CPU-s |")
    print("|---|---|---|---|")
    for name, segment in candidates().items():
        cells = []
        for records in splits.values():
            s = word_scores(segment, records)
            cells.append(f"{s['precision']:.3f} / {s['recall']:.3f} / **{s['f1']:.3f}**")
        speed = chars_per_cpu_second(segment, texts)
        print(f"| {name} | {cells[0]} | {cells[1]} | {speed / 1e6:.2f} |", flush=True)
    gold = {name: sum(len(spans(r["words"])) for r in records) for name, records in splits.items()}
    print(f"\n(gold words: dev {gold['dev']:,}, test {gold['test']:,})")


if __name__ == "__main__":
    main()
