"""Progress of a loop of steps: a tqdm bar on a terminal; one plain line per report elsewhere.

Off a terminal (SLURM, TPU VM logs, CI, `| tee`) a bar rewrites itself with a carriage return on
every step, all of which a log file keeps (200 steps of the CPU smoke run: 206 updates, 23.7 KB of
log in all; 2.9 KB with lines); such logs get one line each time the loop reports its metrics
instead (every log_every steps), e.g. from `bertjax train`:

  step 50/200 (25%)  loss 8.822  mlm_acc 0.040  tok/s 573  elapsed 10m27s  eta 17m53s

The estimate comes from the steps since the first report, so compilation is not counted in it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def duration(seconds: float) -> str:
    """'12s', '4m05s', '1h02m'."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """`update()` after every step, `report(values)` when there are metrics to show (the bar's
    postfix on a terminal, a line elsewhere), `close()` at the end. `description` prefixes the
    bar and the lines (e.g. "seed 0"); `enabled=False` shows nothing (e.g. every process but the
    first); `interactive` defaults to whether `stream` (default stderr) is a terminal."""

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        label: str = "step",
        description: str = "",
        enabled: bool = True,
        stream: TextIO | None = None,
        interactive: bool | None = None,
    ):
        self.stream = sys.stderr if stream is None else stream
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self.total, self.done, self.label, self.enabled = total, initial, label, enabled
        self.description = description
        self.start = time.perf_counter()
        self._first_report: tuple[int, float] | None = None  # (step, time) for the estimate
        self._bar = None
        if enabled and self.interactive:
            from tqdm import tqdm  # deferred: only a bar on a terminal needs it

            self._bar = tqdm(total=total, initial=initial, desc=description or None, unit=label,
                             file=self.stream, dynamic_ncols=True)  # fmt: skip

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)

    def report(self, values: dict[str, str]) -> None:
        """Shows `values` (name -> formatted value) for the steps done so far."""
        if not self.enabled:
            return
        if self.interactive:
            self._bar.set_postfix(values)
            return
        print(self.line(values, time.perf_counter()), file=self.stream, flush=True)

    def line(self, values: dict[str, str], now: float) -> str:
        """The plain line for the steps done so far at time `now` (perf_counter seconds)."""
        percent = 100 * self.done // max(self.total, 1)
        parts = [f"{self.label} {self.done}/{self.total} ({percent}%)"]
        if self.description:
            parts[0] = f"{self.description}: {parts[0]}"
        parts += [f"{name} {value}" for name, value in values.items()]
        parts.append(f"elapsed {duration(now - self.start)}")
        if self._first_report is None:
            self._first_report = (self.done, now)
        elif self.done > self._first_report[0]:
            step, then = self._first_report
            remaining = (self.total - self.done) * (now - then) / (self.done - step)
            parts.append(f"eta {duration(remaining)}")
        return "  ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
