"""Checkpoints other tools read and write: Hugging Face BERT export/import, TF1 BERT import.

  export_hf(workdir, out_dir, step=None)     a workdir's checkpoint -> Hugging Face BERT directory
  import_checkpoint(source, out_dir)         Hugging Face directory or TF1 checkpoint -> model dir
  load_model(directory, step=None)           BertForPreTraining from a model dir or workdir

`hf` holds the name/shape mapping both ways, `tf1` the TF1 variable names, `model_dir` the
on-disk layout of a bertjax model directory.
"""

from bertjax.convert.export import ExportResult, export_hf
from bertjax.convert.importer import ImportResult, import_checkpoint
from bertjax.convert.model_dir import load_model

__all__ = ["ExportResult", "ImportResult", "export_hf", "import_checkpoint", "load_model"]
