"""Preemption: SIGTERM (TPU maintenance, spot/preemptible VMs, `kill`) asks the run to finish the
current step, checkpoint it, and exit cleanly; so does Ctrl-C (SIGINT) in a single-process run,
where a second Ctrl-C stops at once.

With several processes, every process must stop at the same step, so the decision goes through
JAX's preemption sync point (the coordination service relays the signal to all processes).
"""

import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils


class PreemptionWatcher:
    """`should_stop(step)` turns True once SIGTERM has been received (on any process), or Ctrl-C
    in a single-process run; `stopped_by` says which."""

    def __init__(self):
        self._requested = threading.Event()
        self._previous_handlers = {}
        self._multihost = jax.process_count() > 1
        self.stopped_by = "Preempted (SIGTERM)"

    def __enter__(self) -> "PreemptionWatcher":
        # With jax.distributed, JAX's own notifier owns SIGTERM and the sync point reads it.
        if not self._multihost and threading.current_thread() is threading.main_thread():
            for signum, handler in ((signal.SIGTERM, self._on_sigterm),
                                    (signal.SIGINT, self._on_sigint)):  # fmt: skip
                self._previous_handlers[signum] = signal.signal(signum, handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def _on_sigterm(self, signum, frame) -> None:
        self._requested.set()

    def _on_sigint(self, signum, frame) -> None:
        if self._requested.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, from the last checkpoint
        self.stopped_by = "Stopped (Ctrl-C)"
        self._requested.set()
        print(
            "\nCtrl-C: finishing this step and saving a checkpoint (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def should_stop(self, step: int) -> bool:
        if self._multihost:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._requested.is_set()
