"""The compute path on a machine without TensorFlow (an accelerator host with only JAX): a
subprocess where TensorFlow, tensorflow-text, tensorflow-datasets, TensorBoard, sentencepiece and
ml_collections cannot be imported runs the model, training on carried .npy batches, a checkpoint
restore and a replay from the halfway checkpoint; then, with ml_collections carried (the
device's one extra wheel, docs/performance.md "On a GPU"), `bertjax bench` on random tokens,
and `bertjax export` and `import`, which do not even try to import TensorFlow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import xla_flags

REPO = Path(__file__).resolve().parent.parent
# Absent on the device; ml_collections is carried there for `bertjax bench` and the CLI.
ABSENT = ("tensorflow", "tensorflow_text", "tensorflow_datasets", "tensorboard", "sentencepiece")
ABSENT_UNTIL_CARRIED = ("ml_collections",)

WORKER = r"""
import importlib.util, json, shutil, sys
from pathlib import Path

absent, carried_later, scratch = sys.argv[1].split(","), sys.argv[2].split(","), Path(sys.argv[3])
bench_possible = all(importlib.util.find_spec(name) for name in carried_later)
for name in absent + carried_later:
    sys.modules[name] = None  # as if not installed: import raises, find_spec returns None
import builtins
tried, real_import = set(), builtins.__import__
def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.partition(".")[0] in absent:
        tried.add(name.partition(".")[0])  # refused above, or caught where a module is optional
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = recording_import

import jax
import numpy as np
jax.config.update("jax_compilation_cache_dir", str(scratch / "jax_cache"))  # the replay's compile
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
from bertjax import optim
from bertjax import train_from_batches as carried
from bertjax.data import batch_files
from bertjax.train_state import create_train_state

report = {}
fields = dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64,
              max_seq_length=16, max_predictions_per_seq=3, batch_size=8, num_train_steps=4,
              warmup_steps=0, learning_rate=1e-3, log_every=1, checkpoint_every=2,
              keep_checkpoints=3, progress_bar=False)
rng = np.random.default_rng(0)
def batch():
    return {
        "input_ids": rng.integers(5, 100, (8, 16)).astype(np.int32),
        "input_mask": (np.arange(16)[None] < rng.integers(8, 17, (8, 1))).astype(np.int32),
        "segment_ids": (np.arange(16)[None] >= 8).repeat(8, 0).astype(np.int32),
        "masked_lm_positions": np.sort(rng.integers(1, 8, (8, 3)), 1).astype(np.int32),
        "masked_lm_ids": rng.integers(5, 100, (8, 3)).astype(np.int32),
        "masked_lm_weights": np.ones((8, 3), np.float32),
        "next_sentence_labels": rng.integers(0, 2, 8).astype(np.int32),
    }
batches = scratch / "batches"
manifest = batch_files.write_batches((batch() for _ in range(3)), batches, 3,
                                     metadata={"vocab_size": 100})
tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(5, 100)]
(batches / "vocab.txt").write_text("".join(f"{token}\n" for token in tokens))
files = batch_files.load_batch_files(batches)
report["stored_dtypes"] = {k: v["stored_dtype"] for k, v in manifest["features"].items()}
assert all(np.array_equal(files.batch(4)[k], files.batch(1)[k]) for k in files.arrays)

spec = carried.spec_for_batches(carried.run_spec(fields), files)
tx, mesh = optim.create_optimizer(spec.optimizer), spec.mesh.create_mesh()
state, setup = create_train_state(spec.model, tx, mesh, spec.mesh.logical_axis_rules, 0)
outputs = jax.jit(setup.pretraining_outputs)(state.params, files.batch(0))
report["forward_shapes"] = {k: list(v.shape) for k, v in outputs.items()}
report["forward_finite"] = all(bool(np.isfinite(np.asarray(v)).all()) for v in outputs.values())

run_spec = carried.run_spec(fields)
summary = carried.train_from_batches(run_spec, batches, scratch / "run")
report["steps"], report["final_loss"] = summary.steps, summary.final_metrics["loss"]
step, trained = carried.restore_latest(run_spec, batches, scratch / "run")
shutil.copytree(scratch / "run", scratch / "replay", ignore=shutil.ignore_patterns("4"))
replay = carried.train_from_batches(run_spec, batches, scratch / "replay")
replay_step, replayed = carried.restore_latest(run_spec, batches, scratch / "replay")
report["restored_step"], report["replay_start"] = step, replay.start_step
report["replay_max_difference"] = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(trained.params), jax.tree.leaves(replayed.params), strict=True))
# Batches of another vocabulary (same size) do not resume the run, and change nothing in it.
other = scratch / "other_batches"
shutil.copytree(batches, other)
(other / "vocab.txt").write_text("".join(f"u{i}\n" for i in range(100)))
kept = (scratch / "run" / "config.json").read_bytes(), (scratch / "run" / "vocab.txt").read_bytes()
try:
    carried.train_from_batches(run_spec, other, scratch / "run")
except Exception as e:
    report["other_vocabulary"] = str(e)
# A second run into a workdir one trains in is refused before it writes anything.
from bertjax import run_lock
with run_lock.held(scratch / "run"):
    try:
        carried.train_from_batches(run_spec, batches, scratch / "run")
    except Exception as e:
        report["locked"] = str(e)
report["run_kept"] = kept == ((scratch / "run" / "config.json").read_bytes(),
                              (scratch / "run" / "vocab.txt").read_bytes())
report["imported_absent"] = [n for n in absent + carried_later if sys.modules.get(n) is not None]
print("REPORT " + json.dumps(report), flush=True)

if bench_possible:
    for name in carried_later:
        del sys.modules[name]  # carried: importable from here on
    from bertjax import cli
    cli.main(["bertjax", "bench", "--model=tiny", "--seq_len=16", "--batch_size=8", "--steps=1",
              "--warmup_steps=0"])
    print("BENCH_ABSENT " + json.dumps([n for n in absent if sys.modules.get(n) is not None]))
    # export and import (a Hugging Face directory) do not even try to import TensorFlow.
    tried.clear()
    cli.main(["bertjax", "export", f"--workdir={scratch / 'run'}", f"--out={scratch / 'hf'}"])
    cli.main(["bertjax", "import", f"--from={scratch / 'hf'}", f"--out={scratch / 'imported'}"])
    print("CONVERT_TRIED " + json.dumps(sorted(tried)))
"""


def test_compute_path_runs_without_tensorflow(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = xla_flags.host_flags(2)
    env["PJRT_NPROC"] = xla_flags.client_threads(2)
    result = subprocess.run(
        [sys.executable, "-c", WORKER, ",".join(ABSENT), ",".join(ABSENT_UNTIL_CARRIED), tmp_path],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1800,  # ~1 min on an idle 2-core machine; compiles crawl on a busy one
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report["imported_absent"] == []
    assert report["stored_dtypes"]["input_ids"] == "uint8"  # ids < 100
    assert report["stored_dtypes"]["masked_lm_weights"] == "uint8"
    assert report["forward_finite"]
    assert report["forward_shapes"]["mlm_logits"] == [8, 3, 100]
    assert report["steps"] == 4 and report["restored_step"] == 4
    assert report["replay_start"] == 2
    assert report["replay_max_difference"] < 1e-5  # the restored run retraces the first exactly
    assert (tmp_path / "run" / "metrics.jsonl").is_file()
    assert not (tmp_path / "run" / "tensorboard").exists()  # JSON Lines only without TensorFlow
    assert "was trained with another vocabulary (its vocab.txt)" in report["other_vocabulary"]
    assert "is in use by another run" in report["locked"]
    assert report["run_kept"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["vocab_size"] == 100 and config["num_hidden_layers"] == 1
    if "BENCH_ABSENT" in result.stdout:  # ml_collections installed here: the bench ran too
        assert "BENCH_ABSENT []" in result.stdout
        assert "tokens_per_second=" in result.stdout
        assert "CONVERT_TRIED []" in result.stdout
        assert (tmp_path / "hf" / "model.safetensors").is_file()
        assert (tmp_path / "imported" / "config.json").is_file()


@pytest.mark.parametrize("damage, message", [
    ("manifest", r"batches.json' is damaged \(JSONDecodeError"),
    ("cut", r"batch file '.*input_ids.npy' is damaged \(.*\); export the batches again$"),
    ("fewer", r"input_ids.npy' holds \(2, 4\) batches x rows, its manifest \(3, 4\); export"),
])  # fmt: skip
def test_damaged_batch_files_are_one_line(tmp_path, damage, message):
    from bertjax.data import batch_files
    from bertjax.errors import UserError

    rng = np.random.default_rng(0)
    batches = ({"input_ids": rng.integers(0, 9, (4, 8)), "masked_lm_positions": np.ones((4, 2))}
               for _ in range(3))  # fmt: skip
    batch_files.write_batches(batches, tmp_path, 3)
    ids = tmp_path / "input_ids.npy"
    if damage == "manifest":
        (tmp_path / batch_files.MANIFEST_FILE).write_text('{"features": ')
    elif damage == "cut":
        ids.write_bytes(ids.read_bytes()[:-10])
    else:
        np.save(ids, np.load(ids)[:2])
    with pytest.raises(UserError, match=message):
        batch_files.load_batch_files(tmp_path)
