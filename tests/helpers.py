"""Shared test helpers."""

from pathlib import Path

import ml_collections

from bertjax.config import load_config as load_config_file

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_config(name: str) -> ml_collections.ConfigDict:
    """configs/NAME.py's config, loaded by path as `--config=configs/NAME.py` loads it."""
    return load_config_file(CONFIGS_DIR / f"{name}.py")
