"""One process of a multi-process training run on localhost (started by tests/test_multiprocess.py).

usage: python -m tests.multiprocess_worker PORT NUM_PROCESSES PROCESS_ID WORKDIR TMP_DIR
    [STEPS [DCN_DATA [VOCAB_DIR [OVERRIDES]]]]

WORKDIR, VOCAB_DIR (--config.vocab_dir): "{process}" replaced by PROCESS_ID. OVERRIDES: JSON,
{"PROCESS_ID": {config field: value}}, this process's config changes.
"""

import json
import os
import sys
from pathlib import Path

from tests import xla_flags

os.environ["XLA_FLAGS"] = xla_flags.host_flags(4)
os.environ["PJRT_NPROC"] = xla_flags.client_threads(4)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
from absl import logging  # noqa: E402

from bertjax import distributed, train  # noqa: E402
from tests.test_multiprocess import multiprocess_config  # noqa: E402


def main(port, num_processes, process_id, workdir, tmp_dir, steps="6", dcn_data="1", vocab="",
         overrides="{}"):  # fmt: skip
    jax.config.update("jax_platforms", "cpu")
    logging.set_verbosity(logging.INFO)  # the run's log lines in the output the tests read
    distributed.initialize(f"localhost:{port}", int(num_processes), int(process_id))
    assert jax.device_count() == 4 * int(num_processes), jax.devices()
    config = multiprocess_config(Path(tmp_dir), num_train_steps=int(steps))
    config.dcn_mesh_shape = {"data": int(dcn_data), "fsdp": 1, "tensor": 1}
    config.vocab_dir = vocab.format(process=process_id)
    config.update(json.loads(overrides).get(process_id, {}))
    summary = train.train_and_evaluate(config, workdir.format(process=process_id))
    print(f"process {jax.process_index()} finished at step {summary.steps}")


if __name__ == "__main__":
    main(*sys.argv[1:])
