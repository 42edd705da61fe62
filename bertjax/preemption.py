"""Preemption: SIGTERM (TPU maintenance, spot/preemptible VMs, `kill`) asks the run to finish the
current step, checkpoint it, and exit cleanly.

With several processes, every process must stop at the same step, so the decision goes through
JAX's preemption sync point (the coordination service relays the signal to all processes).
"""

import signal
import threading

import jax
from jax.experimental import multihost_utils


class PreemptionWatcher:
    """`should_stop(step)` turns True once SIGTERM has been received (on any process)."""

    def __init__(self):
        self._requested = threading.Event()
        self._previous_handler = None
        self._multihost = jax.process_count() > 1

    def __enter__(self) -> "PreemptionWatcher":
        # With jax.distributed, JAX's own notifier owns SIGTERM and the sync point reads it.
        if not self._multihost and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def _on_sigterm(self, signum, frame) -> None:
        self._requested.set()

    def should_stop(self, step: int) -> bool:
        if self._multihost:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._requested.is_set()
