"""Multiple choice in SWAG's layout from a corpus of documents, to measure
`--config.kind=multiple_choice` end to end where no SWAG, RACE or C3 is at hand: each question
is a sentence of a document (the context) and four candidate next sentences, the one that
follows it in the document and three drawn from other documents (SWAG's endings are written to
fool a model; these are not, so this checks the wiring and what pretraining gives, not a SWAG
score). Documents are split between train and test, so no test context was trained on.

  python -m benchmarks.next_sentence_choice --corpus=../shared/data/pretrain/brown.jsonl \
      --out=workdirs/nsc

writes OUT/train.jsonl (--train_size questions) and OUT/test.jsonl (--test_size), records
{"context", "choices", "label"}. Then:

  bertjax finetune --task=jsonl --config.kind=multiple_choice --config.text_fields=context \
      --config.train_file=OUT/train.jsonl --config.eval_file=OUT/test.jsonl --init=MODEL ...
"""

import argparse
import json
import random
from pathlib import Path

from bertjax.data.sentences import split_sentences
from bertjax.finetune.records import json_records

CHOICES = 4
MIN_WORDS = 4  # shorter "sentences" (headings, list items) say too little to choose by


def documents(corpus: Path) -> list[list[str]]:
    """Each document's sentences of at least MIN_WORDS words, in order (documents with two or
    more only)."""
    found = []
    for record in json_records(corpus, str(corpus)):
        sentences = [s for s in split_sentences(record["text"]) if len(s.split()) >= MIN_WORDS]
        if len(sentences) >= 2:
            found.append(sentences)
    return found


def questions(docs: list[list[str]], size: int, rng: random.Random) -> list[dict]:
    """Up to `size` questions from `docs`: a context sentence, its successor among CHOICES - 1
    sentences of other documents, at a random position."""
    out = []
    for _ in range(size):
        index = rng.randrange(len(docs))
        sentences = docs[index]
        position = rng.randrange(len(sentences) - 1)
        others = [d for d in rng.sample(range(len(docs)), CHOICES) if d != index][: CHOICES - 1]
        choices = [rng.choice(docs[d]) for d in others]
        label = rng.randrange(CHOICES)
        choices.insert(label, sentences[position + 1])
        out.append({"context": sentences[position], "choices": choices, "label": label})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help='JSON Lines documents, {"text"}')
    parser.add_argument("--out", required=True)
    parser.add_argument("--train_size", type=int, default=2000)
    parser.add_argument("--test_size", type=int, default=500)
    parser.add_argument("--test_fraction", type=float, default=0.2, help="of the documents")
    args = parser.parse_args()
    rng = random.Random(0)
    docs = documents(Path(args.corpus))
    rng.shuffle(docs)
    cut = max(CHOICES, round(len(docs) * args.test_fraction))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, part, size in (("test", docs[:cut], args.test_size),
                              ("train", docs[cut:], args.train_size)):  # fmt: skip
        rows = questions(part, size, rng)
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
        print(f"{out / split}.jsonl: {len(rows)} questions from {len(part)} documents")


if __name__ == "__main__":
    main()
