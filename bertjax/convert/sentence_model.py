"""A sentence-transformers model directory's embedding recipe, read at `bertjax import` so
`bertjax embed` pools as the model was trained to.

sentence-transformers saves its pipeline beside the Hugging Face files: `modules.json` lists
the modules in order (Transformer, Pooling, optionally Normalize), `1_Pooling/config.json` the
pooling mode, `sentence_bert_config.json` the maximum length in tokens. bertjax computes mean
and CLS pooling and the L2 normalisation; a pipeline with anything else (max or weighted
pooling, a Dense projection, ...) imports as an encoder whose embeddings `bertjax embed`
refuses in one line, naming what it lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bertjax.convert import weight_files
from bertjax.errors import UserError

MODULES_FILE = "modules.json"
METADATA_ENTRY = "sentence_embedding"  # where a model directory keeps the recipe
POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
COMPUTED = ("Transformer", "Pooling", "Normalize")  # sentence_transformers.models.<name>


def embedding_recipe(source: Path) -> dict[str, Any] | None:
    """{"pooling": "mean"|"cls", "normalize": bool, "max_seq_length": int} of a
    sentence-transformers directory, {"not_computed": [what bertjax lacks]} for a pipeline
    bertjax cannot run, None for a directory without `modules.json`."""
    if not (source / MODULES_FILE).is_file():
        return None
    modules = weight_files.read_json(source / MODULES_FILE)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise UserError(f"{source / MODULES_FILE} is not a list of modules; fix or remove it")
    by_name = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    lacking = [name for name in by_name if name not in COMPUTED]
    modes = []
    if "Pooling" in by_name:
        pooling_dir = source / by_name["Pooling"].get("path", "")
        settings = weight_files.read_json(pooling_dir / "config.json")
        modes = [key for key, on in settings.items() if key.startswith("pooling_mode_") and on]
        lacking += [mode for mode in modes if mode not in POOLING_MODES]
    if len(modes) != 1 and not lacking:  # several modes are concatenated: not computed either
        lacking.append(" + ".join(modes) or "a pooling mode")
    if lacking:
        return {"not_computed": lacking}
    recipe = {"pooling": POOLING_MODES[modes[0]], "normalize": "Normalize" in by_name}
    lengths = source / "sentence_bert_config.json"
    length = weight_files.read_json(lengths).get("max_seq_length") if lengths.is_file() else None
    return recipe | ({"max_seq_length": int(length)} if length else {})


def describe(recipe: dict[str, Any]) -> str:
    """One line of the import report about the recipe."""
    if "not_computed" in recipe:
        return (
            "sentence-transformers pipeline with "
            f"{', '.join(recipe['not_computed'])}, which bertjax embed does not compute: "
            "the encoder is imported, its embeddings are not"
        )
    normalised = ", normalised" if recipe["normalize"] else ""
    length = f", {recipe['max_seq_length']} tokens" if "max_seq_length" in recipe else ""
    return f"sentence embeddings: {recipe['pooling']} pooling{normalised}{length} (bertjax embed)"
