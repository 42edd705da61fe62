"""Flag tables of the `bertjax` commands (bertjax/commands.py): the ones several commands share
and the long ones. A flag: (kind, name, default, help). Kinds: string, integer, float, bool,
"enum:a|b|c", and config (an ml_collections config file, with --config.FIELD=VALUE overrides).
Nothing heavy is imported here: the tables are read for every command line, --help included."""

from __future__ import annotations

import os
from typing import Any

FlagSpec = tuple[str, str, Any, str]

# The source checkout's configs/ (bertjax is installed from its checkout: `pip install -e .`).
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
FINETUNE_CONFIG = os.path.join(CONFIGS_DIR, "finetune.py")  # the recipe's defaults


def config_path(name: str) -> str:
    """configs/NAME as a printed command names it: relative within the checkout, else absolute
    (a command run from elsewhere would not find "configs/NAME")."""
    path = os.path.join(CONFIGS_DIR, name)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


WORKDIR = ("string", "workdir", None, "A training workdir or a `bertjax import` directory.")
STEP = ("integer", "step", None, "Checkpoint step (default: the latest).")
CORPUS_FLAGS = (
    ("string", "input", None, "Corpus files, globs or tfds:NAME (comma-separated)."),
    ("string", "out", None, "Output directory."),
    ("string", "text_field", "text", "JSON Lines field or table column of the text."),
    (
        "enum:sentences|lines|paragraphs",
        "text_format",
        "sentences",
        ".txt layout: sentences on lines (a line of several split), lines (each line one "
        "sentence, as given) or paragraphs of prose.",
    ),
    (
        "string",
        "text_encoding",
        "",
        "Text files' encoding: gb18030, big5, shift_jis, ... (default: UTF-8).",
    ),
    ("integer", "seed", 0, "Random seed."),
)
# How `bertjax evaluate` reads --data when it is not laid out as the run's corpus (None: as it).
DATA_READING_FLAGS = (
    ("string", "text_field", None, "--data's JSONL field or table column (default: the run's)."),
    ("enum:sentences|lines|paragraphs", "text_format", None, "--data's .txt layout (the run's)."),
    ("string", "text_encoding", None, "--data's encoding: gb18030, ... (default: the run's)."),
)  # fmt: skip
INPUT_FILE_FLAGS = (
    ("string", "column_names", "",
     "A CSV/TSV input without a header row: its columns' names, a,b,... (default: its first row)."),
    ("string", "text_encoding", "", "The input's encoding: gb18030, big5, ... (default: UTF-8)."),
)  # fmt: skip
PREDICT_FLAGS = (
    ("string", "model", None, "A fine-tuned model: FINETUNE_DIR/seed_<s>/model."),
    ("string", "input", None, "Records (JSON Lines/JSON, Parquet, Arrow, CSV, TSV, "
     "CoNLL), or a SQuAD file for QA."),
    ("string", "out", None, "Predictions, JSON Lines: one line per input record "
     "(FILE.json: a JSON array, e.g. Label Studio tasks to import; QA: SQuAD's "
     "{id: answer})."),
    ("integer", "batch_size", 64, "Rows per batch (a multiple of the devices)."),
    ("string", "text_fields", "",
     "Text models (classification, multilabel, regression): the input's text "
     "field(s), a or a,b; multiple choice: its context's; a tagger fine-tuned on "
     "spans: its text field (default: the model's)."),
    ("string", "tokens_field", "",
     "Tagging: the input's word-list field (default: the model's)."),
    ("string", "choices_field", "",
     "Multiple choice: the input's field with a list of the choices, or its fields "
     "of one choice each, a,b,... (default: the model's)."),
    ("float", "null_score_diff_threshold", None,
     "QA: answer \"\" where a question's null score beats its best span's by more than T "
     "(default: the model's; SQuAD 2.0 fine-tunes report best_f1_threshold)."),
    ("float", "multilabel_threshold", None,
     "Multilabel: predict the labels whose probability is over P (default: the "
     "model's threshold, 0.5 unless fine-tuned with another)."),
    *INPUT_FILE_FLAGS,
)  # fmt: skip
EMBED_FLAGS = (
    ("string", "model", None, "A workdir, `bertjax import` directory or fine-tuned model."),
    ("string", "input", None, "Records: JSON Lines/JSON, Parquet, Arrow, CSV, TSV."),
    ("string", "out", None, "FILE.npy: float32 [records, hidden], rows in input order; "
     "FILE.jsonl: each record with its \"embedding\"."),
    ("string", "text_fields", "",
     "The text field, or a pair: a,b (default: a fine-tuned text model's, else text)."),
    ("enum:mean|cls", "pooling", None, "Default: the model's (mean for a BERT)."),
    ("enum:yes|no", "normalize", None, "Length 1 (default: the model's; no for a BERT)."),
    ("integer", "max_seq_length", 0, "Tokens per text (default: the model's)."),
    ("integer", "batch_size", 64, "Rows per batch (a multiple of the devices)."),
    STEP,
    *INPUT_FILE_FLAGS,
)  # fmt: skip
