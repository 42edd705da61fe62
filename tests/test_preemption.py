"""The preemption watcher in this process: SIGTERM and Ctrl-C ask for a stop at the next step
and name themselves; a second Ctrl-C stops at once; the handlers before it are put back.
(tests/test_reliability.py sends SIGTERM to a real run; Ctrl-C's run there is marked slow.)"""

import os
import signal

import pytest

from bertjax.preemption import PreemptionWatcher


def test_sigterm_asks_for_a_stop_and_names_itself():
    with PreemptionWatcher() as watcher:
        assert not watcher.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert watcher.should_stop(2) and watcher.stopped_by == "Preempted (SIGTERM)"


def test_ctrl_c_asks_for_a_stop_and_a_second_one_stops_at_once(capsys):
    with PreemptionWatcher() as watcher:
        os.kill(os.getpid(), signal.SIGINT)
        assert watcher.should_stop(1) and watcher.stopped_by == "Stopped (Ctrl-C)"
        assert "Ctrl-C again stops at once" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_the_handlers_before_it_are_put_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with PreemptionWatcher():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
