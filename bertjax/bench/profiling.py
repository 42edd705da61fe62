"""Where a compiled step spends its time: a `jax.profiler` trace summarised per XLA operation.

`summarize(profile_dir, hlo_text, steps)` reads the newest `*.trace.json.gz` under `profile_dir`,
sums the duration of every XLA operation (the executor threads' events; runtime wrappers and Python
frames left out), and names each by its optimized-HLO instruction: what it computes (a matmul, or
element-wise / reduction work), its output shape, forward or backward pass, and the JAX operation
it came from. Used by `bertjax bench --profile_dir`; docs/performance.md has what it found.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import re
from pathlib import Path

# Events that wrap or wait for operations rather than being one.
_WRAPPERS = (
    "ThunkExecutor", "SlinkyThreadPool", "ParallelLoopRunner", "PjitFunction", "CommonPjRt",
)  # fmt: skip
# `%name = f32[4096,1024]{1,0} fusion(...), calls=%fused_computation.7, metadata={op_name="..."`
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT )?%?(?P<name>[\w.\-]+) = (?P<shape>\S+) (?P<opcode>[\w\-]+)\((?P<rest>.*)$"
)
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_COMPUTATION = re.compile(r"^%?(?P<name>[\w.\-]+) .*\{\s*$")


@dataclasses.dataclass(frozen=True)
class Operation:
    name: str
    shape: str
    kind: str  # "matmul" or "element-wise/reduction" (or "other": copies, loops, collectives)
    jax_op: str  # the JAX operation of the HLO metadata, e.g. jit(train_step)/jvp(...)/dot_general
    milliseconds_per_step: float

    @property
    def direction(self) -> str:
        if "transpose(" in self.jax_op:
            return "backward"
        return "forward" if "jvp(" in self.jax_op else "other"


def find_trace(profile_dir: str | Path) -> Path:
    traces = sorted(Path(profile_dir).rglob("*.trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not traces:
        raise FileNotFoundError(f"no *.trace.json.gz under {profile_dir}")
    return traces[-1]


def operation_microseconds(trace_path: Path) -> dict[str, float]:
    """Total duration (µs) of each XLA operation in the trace, summed over its runs."""
    trace = json.loads(gzip.open(trace_path).read())
    totals: dict[str, float] = collections.defaultdict(float)
    for event in trace.get("traceEvents", []):
        name = event.get("name", "")
        if event.get("ph") != "X" or name.startswith(("$", *_WRAPPERS)):
            continue
        totals[name] += float(event.get("dur", 0.0))
    return totals


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """instruction name -> (output shape, kind, JAX op name) of an optimized HLO module."""
    bodies: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header and "=" not in line.split("{")[0]:
            current = header["name"]
            bodies[current] = []
        elif current is not None:
            bodies[current].append(line)
    instructions = {}
    for lines in bodies.values():
        for line in lines:
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            called = _CALLS.search(match["rest"])
            body = bodies.get(called[1], []) if called else []
            opcodes = {m["opcode"] for m in map(_INSTRUCTION.match, body) if m} | {match["opcode"]}
            op_name = _OP_NAME.search(match["rest"])
            instructions[match["name"]] = (
                match["shape"].split("{")[0],
                _kind(opcodes),
                op_name[1] if op_name else "",
            )
    return instructions


def _kind(opcodes: set[str]) -> str:
    if opcodes & {"dot", "convolution", "custom-call"}:
        return "matmul"
    if opcodes <= {"copy", "bitcast", "transpose", "parameter", "tuple", "get-tuple-element"}:
        return "copy/transpose"
    if opcodes & {"while", "conditional", "call"}:
        return "other"
    return "element-wise/reduction"


def summarize(profile_dir: str | Path, hlo_text: str, steps: int) -> list[Operation]:
    """Every XLA operation of the traced steps, longest first, in milliseconds per step."""
    instructions = hlo_instructions(hlo_text)
    operations = []
    for name, micros in operation_microseconds(find_trace(profile_dir)).items():
        shape, kind, jax_op = instructions.get(name, ("?", "other", ""))
        operations.append(Operation(name, shape, kind, jax_op, micros / 1e3 / steps))
    return sorted(operations, key=lambda op: -op.milliseconds_per_step)


def report_lines(operations: list[Operation], top: int = 12) -> list[str]:
    """Time per kind of work, then the `top` longest operations."""
    total = sum(op.milliseconds_per_step for op in operations) or 1.0
    by_kind: dict[str, float] = collections.defaultdict(float)
    for op in operations:
        by_kind[op.kind] += op.milliseconds_per_step
    lines = [f"  profile: {total:.1f} ms of XLA operations per step (summed over threads)"]
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {kind:<24} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
    lines.append(f"  longest {top} operations (ms/step, kind, output shape, pass, JAX op):")
    for op in operations[:top]:
        source = op.jax_op.removeprefix("jit(train_step)/")[-48:]
        lines.append(
            f"    {op.milliseconds_per_step:7.1f}  {op.kind[:12]:<12} {op.shape:<18} "
            f"{op.direction:<9} {source}"
        )
    return lines
