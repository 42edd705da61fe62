"""The pins a user reads (requirements*.txt) and the lock pip applies (constraints.txt) agree:
a pin changed in one file only would make a fresh install fail to resolve."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", re.M)


def pins(name: str) -> dict[str, str]:
    text = (REPO / name).read_text()
    return {re.sub(r"[-_.]+", "-", p.lower()): v for p, v in PIN.findall(text)}


def test_every_pin_matches_the_lock():
    lock = pins("constraints.txt")
    assert "-c constraints.txt" in (REPO / "requirements.txt").read_text()
    for requirements in ("requirements.txt", "requirements-test.txt"):
        for package, version in pins(requirements).items():
            assert lock.get(package) == version.removesuffix("+cpu"), (
                f"{requirements} pins {package}=={version}, constraints.txt "
                f"{lock.get(package)}; regenerate constraints.txt (its header says how)"
            )
