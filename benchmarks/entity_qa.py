"""Extractive QA in SQuAD's layout from a BIO-tagged NER set, to measure `--task=squad` end to
end on Chinese (CMRC 2018's layout) where no Chinese QA set is at hand: each sentence that names
an entity becomes a question about one of its entity types ("文中提到的人是谁？" for PER, "...哪个
地方？" LOC, "...哪个机构？" ORG), the sentence its context and every entity of that type an answer.

  python -m benchmarks.entity_qa --source=../shared/data/zh/tasks/msra_ner --out=workdirs/ner_qa

writes OUT/train.jsonl (--train_size questions from SOURCE/train.jsonl) and OUT/test.jsonl
(--test_size from SOURCE/test.jsonl), Hugging Face's SQuAD JSON Lines. Then:

  bertjax finetune --task=squad --config.train_file=OUT/train.jsonl \
      --config.eval_file=OUT/test.jsonl --init=MODEL ...
"""

import argparse
import json
import random
from pathlib import Path

from bertjax.finetune.records import json_records

QUESTIONS = {
    "PER": "文中提到的人是谁？",
    "LOC": "文中提到了哪个地方？",
    "ORG": "文中提到了哪个机构？",
}


def entities(tokens: list[str], tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, character start, character end) of each BIO entity of a tagged sentence."""
    starts = [0]
    for token in tokens:
        starts.append(starts[-1] + len(token))
    found, current = [], None
    for index, tag in enumerate([*tags, "O"]):
        if current and not (tag.startswith("I-") and tag[2:] == current[0]):
            found.append((current[0], starts[current[1]], starts[index]))
            current = None
        if tag.startswith("B-"):
            current = (tag[2:], index)
    return found


def questions(source: Path, size: int, seed: int) -> list[dict]:
    """Up to `size` questions from the sentences of `source`, in a shuffled order (`seed`)."""
    sentences = list(json_records(source, str(source)))
    rng = random.Random(seed)
    rng.shuffle(sentences)
    out = []
    for number, sentence in enumerate(sentences):
        found = [e for e in entities(sentence["tokens"], sentence["tags"]) if e[0] in QUESTIONS]
        if not found:
            continue
        context = "".join(sentence["tokens"])
        kind = rng.choice(sorted({kind for kind, _, _ in found}))
        answers = [(context[start:end], start) for k, start, end in found if k == kind]
        out.append({
            "id": f"{source.stem}-{number}", "question": QUESTIONS[kind], "context": context,
            "answers": {"text": [a for a, _ in answers], "answer_start": [s for _, s in answers]},
        })  # fmt: skip
        if len(out) == size:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder of train.jsonl, test.jsonl")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train_size", type=int, default=3000)
    parser.add_argument("--test_size", type=int, default=500)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, size, seed in (("train", args.train_size, 1), ("test", args.test_size, 2)):
        rows = questions(Path(args.source) / f"{split}.jsonl", size, seed)
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
        print(f"{out / split}.jsonl: {len(rows)} questions")


if __name__ == "__main__":
    main()
