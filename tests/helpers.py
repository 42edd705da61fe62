"""Shared test helpers."""

from pathlib import Path

import ml_collections

from bertjax.config import load_config as load_config_file

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def truncate_checkpoint(step_dir: Path) -> None:
    """Halves every array file of a checkpoint step's state, as a writer killed mid-save leaves
    it (restoring it fails)."""
    for path in (step_dir / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 100:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def load_config(name: str) -> ml_collections.ConfigDict:
    """configs/NAME.py's config, loaded by path as `--config=configs/NAME.py` loads it."""
    return load_config_file(CONFIGS_DIR / f"{name}.py")
