"""Benchmarks of bertjax, behind `bertjax bench` (also `python -m bertjax.bench`).

  run.py        the train-step benchmark: throughput, compile time, memory, MFU; its flags
  report.py     the printed report
  workload.py   model sizes, the random-token batch, peak host memory (no JAX at import)
  peers.py      the Hugging Face peers (`--peers`; their scripts are in benchmarks/peers/)
  profiling.py  a jax.profiler trace summarised per XLA operation (`--profile_dir`)

This package measures the library from outside: it imports bertjax, and no other bertjax module
imports it (only the command line, when the command is `bench`).
"""
