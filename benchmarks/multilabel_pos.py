"""A multi-label task from real sentences, to measure `--config.kind=multilabel` end to end:
which grammatical features a sentence has (a modal verb, a number, a past-tense verb, ...),
read off the part-of-speech tags of a CoNLL-2000-style JSON Lines file ({"tokens", "pos"}).
A sentence has any number of them, none included.

  python -m benchmarks.multilabel_pos --source=../shared/data/tasks/chunking \
      --out=workdirs/pos_multilabel --train_size=3000

writes OUT/train.jsonl (the first --train_size sentences of SOURCE/train.jsonl) and
OUT/test.jsonl ({"text", "features": [names]}), and prints each label's share of the training
sentences and the scores of the best constant answer (every label on more than half of the
training sentences, and only those), the floor a fine-tuned model has to clear. Then:

  bertjax finetune --task=jsonl --config.kind=multilabel --config.label_field=features \
      --config.train_file=OUT/train.jsonl --config.eval_file=OUT/test.jsonl --init=MODEL ...
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from bertjax.finetune.records import json_records
from bertjax.finetune.scores import multilabel_scores

# Label name -> the Penn Treebank tags that show it.
FEATURES = {
    "modal": {"MD"},
    "number": {"CD"},
    "past_tense": {"VBD"},
    "possessive": {"POS"},
    "comparative": {"JJR", "RBR"},
    "superlative": {"JJS", "RBS"},
    "wh_word": {"WDT", "WP", "WP$", "WRB"},
    "pronoun": {"PRP", "PRP$"},
    "gerund": {"VBG"},
    "proper_noun": {"NNP", "NNPS"},
}


def features_of(pos: list[str]) -> list[str]:
    tags = set(pos)
    return [name for name, shown_by in FEATURES.items() if tags & shown_by]


def derive(path: Path, limit: int | None) -> list[dict]:
    """The first `limit` records of `path` (all for None) as {"text", "features"}."""
    return [
        {"text": " ".join(record["tokens"]), "features": features_of(record["pos"])}
        for record in itertools.islice(json_records(path, str(path)), limit)
    ]


def multi_hot(records: list[dict]) -> np.ndarray:
    return np.array([[name in r["features"] for name in FEATURES] for r in records], np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder with train.jsonl and test.jsonl")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train_size", type=int, default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": derive(Path(args.source) / "train.jsonl", args.train_size),
        "test": derive(Path(args.source) / "test.jsonl", None),
    }
    for name, records in splits.items():
        lines = (json.dumps(r) + "\n" for r in records)
        (out / f"{name}.jsonl").write_text("".join(lines), encoding="utf-8")
    train, test = multi_hot(splits["train"]), multi_hot(splits["test"])
    print(f"{len(train)} training and {len(test)} test sentences; share with each label:")
    for name, share in zip(FEATURES, train.mean(axis=0), strict=True):
        print(f"  {name:12s} {share:.3f}")
    constant = np.broadcast_to(train.mean(axis=0) > 0.5, test.shape)
    scores = multilabel_scores(constant, test)
    print("best constant answer on test:", {k: round(v, 3) for k, v in scores.items()})


if __name__ == "__main__":
    main()
