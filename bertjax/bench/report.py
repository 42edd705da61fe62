"""The printed report of `bertjax bench`: the model and FLOPs convention, one row per
measurement, the profile and the peers; the last line is `tokens_per_second=<float> mfu=<float>`.
"""

from bertjax.bench import peers

PROFILE_STEPS = 3
FLOPS_FORMULA = "6·L·(4·d² + 2·d·d_ff) + 12·L·s·d + 6·(d² + d·V)·f_pred"


def _measurement_rows(r: dict) -> list[tuple[str, str]]:
    """(label, value) of every measurement present in the result `r`."""
    rows = [
        ("compile (lower + compile), s", f"{r['compile_seconds']:.2f}"),
        ("attention kernel in the compiled step", r.get("attention_kernel", "?")),
        (f"train step, mean of {r['steps']} after warm-up, ms", f"{1e3*r['seconds_per_step']:.2f}"),
        ("sequences/s", f"{r['sequences_per_second']:.2f}"),
        ("tokens/s (batch x seq_len)", f"{r['tokens_per_second']:.1f}"),
        ("real tokens/s (input_mask = 1)", f"{r['real_tokens_per_second']:.1f}"),
        ("model FLOP/s", f"{r['model_flops_per_second']:.4g}"),
        ("MFU", f"{r['mfu']:.4f}"),
        ("XLA memory per device, MiB (arg + out + temp - alias)",
         f"{r['xla_total_mib']:.1f} = {r['xla_argument_mib']:.1f} + {r['xla_output_mib']:.1f} + "
         f"{r['xla_temp_mib']:.1f} - {r['xla_alias_mib']:.1f}"),
        ("XLA peak_memory_in_bytes, MiB", f"{r['xla_peak_mib']:.1f}"),
        ("host peak RSS (whole process), MiB", f"{r['host_peak_rss_mib']:.0f}"),
        ("host page faults / kernel CPU ms, per step",
         f"{r['page_faults_per_step']:.0f} / {1e3 * r['kernel_cpu_seconds_per_step']:.0f}"),
        ("host malloc", r["host_malloc"]),
    ]  # fmt: skip
    if r.get("device_peak_mib") is not None:
        rows.insert(-1, ("device peak_bytes_in_use, MiB", f"{r['device_peak_mib']:.1f}"))
    if "input_sequences_per_second" in r:
        rows.append(("input pipeline only, masked sequences/s (real tokens/s)",
                     f"{r['input_sequences_per_second']:.1f} "
                     f"({r['input_real_tokens_per_second']:.0f})"))  # fmt: skip
    if "checkpoint_total_seconds" in r:
        rows.append((f"checkpoint save ({r['checkpoint_mib']:.1f} MiB) blocking / total, s",
                     f"{r['checkpoint_blocking_seconds']:.3f} / "
                     f"{r['checkpoint_total_seconds']:.3f}"))  # fmt: skip
    if r.get("profile_dir"):
        rows.append(
            (f"profile ({PROFILE_STEPS} steps)", f"tensorboard --logdir {r['profile_dir']}")
        )
    return rows


def report_lines(r: dict) -> list[str]:
    """The printed report; the last line is `tokens_per_second=<float> mfu=<float>`."""
    lines = [
        f"bertjax bench: BERT-{r['model']} (L={r['num_hidden_layers']}, d={r['hidden_size']}, "
        f"heads={r['num_attention_heads']}, d_ff={r['intermediate_size']}, V={r['vocab_size']}), "
        f"seq_len {r['seq_len']}, batch {r['batch_size']}, {r['precision']}, "
        f"{r.get('positions', 'absolute')} positions, dropout on, "
        f"{r['num_devices']} x {r['device_kind']}, jax {r['jax_version']}",
        f"model FLOPs/token (fwd+bwd) = {FLOPS_FORMULA} = {r['flops_per_token']:.4g}",
        f"  with f_pred = P/s = {r['predictions_per_seq']}/{r['seq_len']} (MLM head on the masked "
        "positions only); attention score FLOPs counted, embeddings/LayerNorm/softmax not",
        f"MFU peak: {r['peak_flops']:.4g} FLOP/s ({r['peak_source']})",
        "",
    ]
    lines += [f"  {label:<54} {value}" for label, value in _measurement_rows(r)]
    lines += r.get("profile_lines", [])
    if r.get("peers"):
        lines += peers.report_lines(r)
    return lines + [f"tokens_per_second={r['tokens_per_second']:.2f} mfu={r['mfu']:.6f}"]
