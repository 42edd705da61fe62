"""Fine-tuning BERT on downstream tasks: heads, task readers, scores."""
