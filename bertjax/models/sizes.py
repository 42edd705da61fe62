"""The named BERT sizes (Turc et al. 2019, "Well-Read Students Learn Better"), set on a config by
`bertjax.config.set_model_size` and offered by `bertjax bench --model`.

Plain data with no imports, so a command can list the sizes in its --help without importing JAX.
"""

MODEL_SIZES = {
    # name: (num_hidden_layers, hidden_size, num_attention_heads); intermediate_size is 4H
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}

ELECTRA_SIZES = {
    # name: (layers, hidden, heads, embedding width, generator width as a fraction of hidden):
    # ELECTRA's Small, Base and Large (Clark et al. 2020, Table 6); intermediate_size is 4H
    "small": (12, 256, 4, 128, 1 / 4),
    "base": (12, 768, 12, 768, 1 / 3),
    "large": (24, 1024, 16, 1024, 1 / 4),
}
