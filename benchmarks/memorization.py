"""How fast each architecture variant learns to use context: the memorisation check.

Four short documents of the embedded corpus (~1,600 wordpieces), packed MLM-only rows with
dupe_factor 50, BERT-tiny, lr 1e-3, batch 16, no dropout, 600 steps: the training MLM accuracy
after ~1,000 passes over the text. A model that can attend to neighbouring tokens memorises such
a text; one that cannot stays near what token frequencies and the document's bag of words give.

  python -m benchmarks.memorization --out=workdirs/memorization
"""

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

from bertjax.data.corpus import SAMPLE_CORPUS

VARIANTS = {
    "BERT (post-LN, absolute positions)": {},
    "pre-LN, sinusoidal position init": dict(
        layer_norm_placement="pre", position_embedding_init="sinusoidal"
    ),
    "pre-LN, sinusoidal, lr 5e-3": dict(
        layer_norm_placement="pre", position_embedding_init="sinusoidal", learning_rate=5e-3
    ),
    "pre-LN, sinusoidal, mimetic attention init": dict(
        layer_norm_placement="pre", position_embedding_init="sinusoidal", attention_init="mimetic"
    ),
    "pre-LN, sinusoidal, initializer_range 0.1": dict(
        layer_norm_placement="pre", position_embedding_init="sinusoidal", initializer_range=0.1
    ),
    "post-LN, relative positions, local init": dict(
        position_embedding_type="relative_key", position_embedding_init="local"
    ),
    "pre-LN, relative positions, local init": dict(
        layer_norm_placement="pre",
        position_embedding_type="relative_key",
        position_embedding_init="local",
    ),  # fmt: skip
}
SETTINGS = dict(
    num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512,
    vocab_size=2000, packing=True, dupe_factor=50, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0, batch_size=16, num_train_steps=600, warmup_steps=60,
    learning_rate=1e-3, log_every=50, checkpoint_every=600, keep_checkpoints=1,
    progress_bar=False,
)  # fmt: skip


def write_corpus(path: Path, documents: int = 4, chars: int = 1400) -> None:
    """The first `documents` inaugural addresses, cut to `chars` characters each."""
    source = Path(SAMPLE_CORPUS.replace("*", "inaugural"))
    with gzip.open(source, "rt", encoding="utf-8") as f:
        lines = [line for _, line in zip(range(documents), f, strict=False)]
    texts = [json.loads(line)["text"][:chars] for line in lines]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def run(name: str, fields: dict, root: Path, corpus: Path) -> float:
    """Trains one variant (resuming if done) and returns its last logged MLM accuracy."""
    workdir = root / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    flags = {**SETTINGS, **fields, "corpus": str(corpus), "cache_dir": str(root / "cache")}
    overrides = [f"--config.{key}={value}" for key, value in flags.items()]
    command = [sys.executable, "-m", "bertjax", "train", "--config=configs/base.py",
               f"--workdir={workdir}", *overrides]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["mlm_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="workdirs/memorization", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "four_documents.jsonl"
    write_corpus(corpus)
    print("| variant | training MLM accuracy after 600 steps |\n|---|---|")
    for name, fields in VARIANTS.items():
        print(f"| {name} | {run(name, fields, args.out, corpus):.3f} |", flush=True)


if __name__ == "__main__":
    main()
