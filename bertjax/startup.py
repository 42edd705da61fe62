"""A quiet start for the command line: TensorFlow's and XLA's start-up notices hidden, the rest of
stderr kept (`bertjax COMMAND --debug` shows everything).

Importing TensorFlow prints its notices from C++ static initialisers, before it reads
TF_CPP_MIN_LOG_LEVEL and before absl's C++ logging is initialised, so no environment variable
removes them: "WARNING: All log messages before absl::InitializeLog() ...", "oneDNN custom
operations are on ...", "Could not find cuda drivers on your machine ...", twice (two of its
shared libraries log). Starting JAX adds "Unable to initialize backend 'tpu' ..." (a Python INFO
record); TensorFlow's CUDA build, on a machine without a GPU, logs "failed call to cuInit" when it
first looks for devices, as does a JAX CUDA plugin. So the command line imports TensorFlow and
JAX, lists TensorFlow's devices and starts JAX's backends inside `filtered_stderr()`,
which sends file descriptor 2 to a temporary file and then writes back every line that is not one
of those notices (`is_noise`); and `NoiseFilter` drops the same records from Python logging.
oneDNN stays on (its notice only warns of round-off differences in TensorFlow ops; bertjax's
model runs in JAX).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator, MutableMapping

# Environment defaults set before TensorFlow, JAX or gRPC load (a value the user set is kept).
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow C++: errors only, once it has started
    "GRPC_VERBOSITY": "ERROR",  # gRPC (jax.distributed, TensorFlow): no info lines
}
NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to",
        r"^I\d{4} .*\] oneDNN custom operations are on\.",
        r"^I\d{4} .*\] Could not find cuda drivers on your machine, GPU will not be used\.",
        r"^I\d{4} .*\] This TensorFlow binary is optimized to use available CPU instructions",
        r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate",
        r"^E\d{4} .*\] failed call to cuInit",
        r"^I\d{4} .*cuda_diagnostics\.cc:\d+\]",
        r"^I\d{4} .*\] Unable to initialize backend '\w+'",  # JAX: that hardware is absent
    )
)
# JAX's INFO record for a backend whose hardware or library is absent (a backend named in
# JAX_PLATFORMS that fails to start raises instead).
MISSING_BACKEND = re.compile(r"^Unable to initialize backend '\w+'")


def is_noise(line: str) -> bool:
    """Whether `line` (of stderr or a log message) is a start-up notice hidden by default."""
    return any(pattern.search(line) for pattern in NOISE)


def quiet_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Sets QUIET_ENVIRONMENT's values where `environ` (default os.environ) has none."""
    environ = os.environ if environ is None else environ
    for name, value in QUIET_ENVIRONMENT.items():
        environ.setdefault(name, value)


def drop_closed_loop_callbacks() -> None:
    """Drops the "Event loop is closed" RuntimeErrors that tensorstore's write callbacks raise,
    as unraisable exceptions, after Orbax aborted a save (a full disk: ~120 tracebacks before
    the command's one line); every other unraisable exception is reported as before."""
    report = sys.unraisablehook

    def hook(unraisable) -> None:
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            report(unraisable)

    sys.unraisablehook = hook


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[None]:
    """Everything written to file descriptor 2 inside the block (C++ included) is held in a
    temporary file and written back afterwards without the `is_noise` lines."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_noise(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class NoiseFilter(logging.Filter):
    """Drops JAX's INFO records about backends whose hardware is absent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not MISSING_BACKEND.match(record.getMessage())


def import_quietly(quiet: bool, tensorflow: bool = True) -> None:
    """Imports JAX and, for a command whose library code uses it (`tensorflow`), TensorFlow, with
    the notices hidden (`import_tensorflow_quietly`). Without TensorFlow installed (an
    accelerator machine fed with carried batches, tests/test_tf_free.py) only JAX."""
    with filtered_stderr(quiet):
        import jax  # noqa: F401
    if tensorflow:
        with contextlib.suppress(ImportError):
            import_tensorflow_quietly(quiet)


def import_tensorflow_quietly(quiet: bool = True) -> types.ModuleType:
    """Imports TensorFlow with its start-up notices hidden, lists its devices (where a CUDA
    build calls cuInit) and hides the GPUs from it (`hide_gpus_from_tensorflow`); returns the
    module. Also the initializer of worker processes (`bertjax prepare`'s), which start it
    afresh, and the import where a command without it needs it after all: a TF1 checkpoint's
    reader, an export from a bucket (etils reads gs:// through TensorFlow's gfile)."""
    with filtered_stderr(quiet):
        import tensorflow as tf

        tf.config.list_physical_devices()
        hide_gpus_from_tensorflow(tf)
    return tf


def hide_gpus_from_tensorflow(tf) -> None:
    """tf.data runs on the host and the model in JAX: a TensorFlow that can use CUDA would
    otherwise reserve most of each GPU's memory when its runtime starts (at the first tf.data
    op), beside JAX's own pool. Listing devices does not start that runtime; once something has,
    TensorFlow refuses the change and the GPUs stay visible to it."""
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")


def start_jax(quiet: bool) -> None:
    """Starts JAX's backends with the notices hidden. Call after `jax.distributed.initialize`
    (multi-process runs) and before anything else touches a device."""
    with filtered_stderr(quiet):
        import jax

        jax.devices()
