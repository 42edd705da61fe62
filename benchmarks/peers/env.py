"""The peers' virtual environment, created on first use: transformers (Flax and PyTorch BERT),
the CPU build of torch, and the jax/jaxlib/flax/optax (and numpy, tokenizers, safetensors) pins of
requirements.txt. Prints the environment's python on stdout (pip's output goes to stderr).

  python -m benchmarks.peers.env [--venv=.venv-peers]

A marker file records what was installed; a venv whose marker matches is reused as it is.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PEER_PINS = ("transformers==4.57.6",)
TORCH_VERSION = "2.13.0"
# Shared with bertjax, pinned as requirements.txt pins them.
SHARED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "tokenizers", "safetensors")
LOCAL_WHEELS = Path("/opt/wheels")  # this machine's local CPU torch wheel, when present
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MARKER = "bertjax-peers.json"


def shared_pins(requirements: Path) -> list[str]:
    """`name==version` lines of `requirements` for SHARED_PACKAGES, in that order."""
    pins = {}
    for line in requirements.read_text().splitlines():
        spec = line.split("#")[0].strip()
        if "==" in spec:
            pins[spec.split("==")[0].strip().lower()] = spec
    missing = [name for name in SHARED_PACKAGES if name not in pins]
    if missing:
        raise SystemExit(f"{requirements} pins none of {missing}; pin them with ==")
    return [pins[name] for name in SHARED_PACKAGES]


def torch_requirement(local_wheels: Path = LOCAL_WHEELS) -> tuple[str, list[str]]:
    """(requirement, pip flags) that install the CPU build of torch, never a CUDA one: the
    local wheel directory when it holds it, else PyTorch's CPU index."""
    requirement = f"torch=={TORCH_VERSION}+cpu"
    if list(local_wheels.glob(f"torch-{TORCH_VERSION}+cpu-*.whl")):
        return requirement, ["--find-links", str(local_wheels)]
    return requirement, ["--extra-index-url", TORCH_CPU_INDEX]


def install_plan(requirements: Path) -> dict:
    """What the venv must hold: pinned requirements and the pip flags that find them."""
    torch, flags = torch_requirement()
    return {"requirements": [*shared_pins(requirements), *PEER_PINS, torch], "pip_flags": flags}


def ensure_env(venv: Path, requirements: Path = REPO_ROOT / "requirements.txt") -> Path:
    """Creates (or reuses) the peer venv at `venv`; returns its python."""
    python = venv / "bin" / "python"
    marker = venv / MARKER
    plan = install_plan(requirements)
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == plan:
        return python
    print(f"creating the peer venv {venv} (first use: a few minutes)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, *plan["pip_flags"], *plan["requirements"]], check=True, stdout=sys.stderr)
    marker.write_text(json.dumps(plan, indent=2) + "\n")
    return python


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(REPO_ROOT / ".venv-peers"))
    args = parser.parse_args(argv)
    print(ensure_env(Path(args.venv).absolute()))


if __name__ == "__main__":
    main()
