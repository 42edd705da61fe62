"""bertjax/progress.py: a bar on a terminal, one plain line per report in a log file."""

import io

from bertjax import progress
from bertjax.progress import Progress


def run_loop(bar: Progress, steps: int, report_every: int) -> None:
    for step in range(1, steps + 1):
        bar.update()
        if step % report_every == 0 or step in (1, steps):
            bar.report({"loss": f"{10 / step:.3f}"})
    bar.close()


def test_off_a_terminal_each_report_is_one_line():
    log = io.StringIO()
    run_loop(Progress(10, stream=log), 10, 4)  # StringIO is not a terminal
    lines = log.getvalue().splitlines()
    assert [line.split("  ")[:2] for line in lines] == [
        ["step 1/10 (10%)", "loss 10.000"],
        ["step 4/10 (40%)", "loss 2.500"],
        ["step 8/10 (80%)", "loss 1.250"],
        ["step 10/10 (100%)", "loss 1.000"],
    ]
    assert "\r" not in log.getvalue() and "eta" not in lines[0]
    assert all(" eta " in line for line in lines[1:])


def test_on_a_terminal_it_is_a_bar_and_no_lines():
    screen = io.StringIO()
    run_loop(Progress(10, stream=screen, interactive=True), 10, 4)
    assert "\r" in screen.getvalue() and "loss=1.000" in screen.getvalue()
    assert "step 1/10 (" not in screen.getvalue()


def test_disabled_shows_nothing():
    for interactive in (True, False):
        log = io.StringIO()
        run_loop(Progress(10, stream=log, enabled=False, interactive=interactive), 10, 4)
        assert log.getvalue() == ""


def test_the_estimate_leaves_out_the_time_before_the_first_report():
    bar = Progress(100, initial=20, description="seed 3", stream=io.StringIO())
    bar.start = 0.0
    bar.done = 21
    first = bar.line({"loss": "1.0"}, now=30.0)  # the first step took 30 s (compiling)
    assert first == "seed 3: step 21/100 (21%)  loss 1.0  elapsed 30s"
    bar.done = 41
    # 20 steps in 10 s after the first report: 59 steps left take 29.5 s
    assert bar.line({}, now=40.0) == "seed 3: step 41/100 (41%)  elapsed 40s  eta 30s"


def test_durations():
    assert [progress.duration(s) for s in (0, 59.4, 61, 3599, 3600, 7380)] == [
        "0s", "59s", "1m01s", "59m59s", "1h00m", "2h03m",
    ]  # fmt: skip
