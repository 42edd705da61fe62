"""XLA_FLAGS of the test processes (no imports: set before JAX is imported).

`--xla_backend_optimization_level=0` skips LLVM's optimization of the CPU code: the suite's
tiny models spend more time compiling than running. The HLO passes (fusion, layout, sharding)
still run, so what is tested is the program users run, compiled with less effort. Measured on
the 2-core CPU machine, `pytest -n 0 tests/test_electra.py tests/test_train.py`: 351 s at the
default level, 278 s at 0 (the ELECTRA toy run's fixture 100 s -> 47 s; the one compute-bound
test, overfitting one batch, 24 s -> 41 s). The whole default suite (two workers): 27 min 3 s
-> 25 min 31 s, 52.4 -> 49.3 CPU-minutes summed over the tests (2026-12-03).

`--xla_cpu_use_fusion_emitters=false` compiles each fusion with XLA's older elemental emitter
instead of the MLIR fusion emitters: the same HLO program (fusion decisions included), emitted
faster. A BERT-tiny fine-tune's train step has ~470 fusions; compiling them took 11.9 s with
the new emitters and 6.6 s without (all of that fine-tune's compiles 28.5 s -> 12.9 s, the
fine-tune 33 s -> 19 s; 2-core CPU machine, 2026-12-07).
"""


def host_flags(devices: int) -> str:
    """XLA_FLAGS for a test process with `devices` forced CPU devices."""
    return (
        f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
        " --xla_cpu_use_fusion_emitters=false"
    )


def client_threads(devices: int) -> str:
    """PJRT_NPROC for a test process with `devices` forced CPU devices: twice that many threads.

    XLA's CPU client runs every device's part of a program on one thread pool of max(cores,
    devices) threads: 8 for the suite's 8 devices on a 2-core machine, exactly the threads one
    collective holds while its participants wait for each other. A worker died twice in
    tests/test_finetune.py's MR test (CI, then here: SIGABRT, its message lost to output
    capture); run alone without capture, the test aborted once in 56 runs, when an all-reduce
    waited 40 s for its 8th participant ("Termination timeout for `all reduce ...` exceeded ...
    only 7 of them arrived"). PJRT_NPROC (XLA's DefaultThreadPoolSize) gives the pool room
    beside a collective. A mitigation, not a proven fix: the stuck participant was never caught
    in a stack dump.
    """
    return str(2 * devices)
