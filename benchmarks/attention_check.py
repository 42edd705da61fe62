"""cuDNN attention against XLA attention: forward values and q/k/v gradients, bf16, on padded rows
and on packed rows, as bertjax's model calls them (`bertjax.models.attention.fused_attention`),
and with a [B, N, L, L] logit bias and its gradient (what relative positions send).

  python -m benchmarks.attention_check --out=results/attention.json [--cpu]

Both bf16 implementations are compared with the same attention computed in float32 (the explicit
einsum-softmax path on float32 copies of the inputs, matmuls at full float32 precision: the GPU's
default would be TF32), on the rows that carry tokens. Passes when, for the output and each of
dq, dk, dv (and dbias), cuDNN's largest error against float32 is at most
max(2 x XLA's own bf16 error, 0.01 x the largest float32 value): cuDNN is as exact as XLA's bf16
path, give or take a factor of 2. Every value, padding rows included, must be finite: a packed
row's padding positions attend to nothing, and a NaN there would reach real tokens through the
next layer's matmuls. The JSON is rewritten after every case, so a run stopped midway keeps the
cases it finished.

With --cpu there is no cuDNN: the same comparison runs with the explicit bf16 path standing in
for cuDNN, to rehearse the script.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TOLERANCE_FACTOR = 2.0  # cuDNN's error may be this many times XLA's bf16 error
TOLERANCE_FLOOR = 0.01  # ... or this fraction of the largest float32 value, whichever is larger


def attention_inputs(key, batch: int, length: int, heads: int, head_dim: int, packed: bool):
    """q, k, v [B, L, N, D] float32 and the boolean mask bertjax's model builds: key padding
    [B, 1, 1, L], or for packed rows padding & same document [B, 1, L, L]. Rows hold 40-100% real
    tokens (padding is a suffix); packed rows hold 1-4 documents. Also returns [B, L] real-token
    weights."""
    import jax
    import jax.numpy as jnp

    from bertjax.models.attention import padding_mask

    keys = jax.random.split(key, 5)
    q, k, v = (jax.random.normal(keys[i], (batch, length, heads, head_dim)) for i in range(3))
    lengths = jax.random.randint(keys[3], (batch,), int(0.4 * length), length + 1)
    positions = jnp.arange(length)[None, :]
    input_mask = (positions < lengths[:, None]).astype(jnp.int32)
    mask = padding_mask(input_mask)
    if packed:
        # Document boundaries at random positions: ids 1, 2, ... on real tokens, 0 on padding.
        cuts = jax.random.uniform(keys[4], (batch, 3)) * lengths[:, None]
        documents = 1 + jnp.sum(positions[:, :, None] >= cuts[:, None, :], axis=-1)
        documents = jnp.where(input_mask == 1, documents, 0)
        mask = mask & (documents[:, None, :, None] == documents[:, None, None, :])
    return q, k, v, mask, input_mask.astype(jnp.float32)


def values_and_grads(attention, q, k, v, mask, weights, cotangent, bias=None):
    """The attention output and the gradients of <output * real-token weights, cotangent> with
    respect to q, k, v (and the bias, when given), all float32 for comparison."""
    import jax
    import jax.numpy as jnp

    def loss(q, k, v, bias):
        out = attention(q, k, v, mask, bias)
        return jnp.sum(out.astype(jnp.float32) * cotangent * weights[:, :, None, None]), out

    argnums = (0, 1, 2) if bias is None else (0, 1, 2, 3)
    value_and_grad = jax.value_and_grad(loss, argnums=argnums, has_aux=True)
    (_, out), grads = jax.jit(value_and_grad)(q, k, v, bias)
    names = ("out", "dq", "dk", "dv", "dbias")[: 1 + len(grads)]
    values = (out, *grads)
    return {name: value.astype(jnp.float32) for name, value in zip(names, values, strict=True)}


def compare_case(
    name: str, packed: bool, shape: tuple[int, int, int, int], cpu: bool, with_bias: bool = False
) -> dict:
    """One case: bf16 candidate ('cudnn', or on CPU the explicit path) and bf16 XLA against the
    float32 reference. `with_bias`: a random [B, N, L, L] logit bias (as relative positions
    add), whose gradient is compared too. Returns the errors and whether the case passes."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from bertjax.models.attention import explicit_attention, fused_attention

    batch, length, heads, head_dim = shape
    q, k, v, mask, weights = attention_inputs(jax.random.key(0), *shape, packed=packed)
    cotangent = jax.random.normal(jax.random.key(1), q.shape)
    bias = None
    if with_bias:
        bias = jax.random.normal(jax.random.key(2), (batch, heads, length, length))

    def candidate(q, k, v, mask, bias):
        if cpu:
            return explicit_attention(q, k, v, mask, bias=bias)
        return fused_attention(q, k, v, mask, implementation="cudnn", bias=bias)

    def xla(q, k, v, mask, bias):
        return fused_attention(q, k, v, mask, implementation="xla", bias=bias)

    def reference_attention(q, k, v, mask, bias):
        return explicit_attention(q, k, v, mask, bias=bias)

    bf16 = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    bf16_bias = None if bias is None else bias.astype(jnp.bfloat16)
    with jax.default_matmul_precision("highest"):
        reference = values_and_grads(reference_attention, q, k, v, mask, weights, cotangent, bias)
    start = time.perf_counter()
    results = {
        "candidate": values_and_grads(candidate, *bf16, mask, weights, cotangent, bf16_bias),
        "xla": values_and_grads(xla, *bf16, mask, weights, cotangent, bf16_bias),
    }
    seconds = time.perf_counter() - start
    real = np.asarray(weights)[:, :, None, None] > 0
    report = {"case": name, "shape_BLND": list(shape), "dtype": "bfloat16", "seconds": seconds}
    passed = True
    for quantity, ref in reference.items():
        ref = np.asarray(ref)
        # Forward values and dq only exist for real query rows; dk, dv for every key row (zero
        # on padding keys), compared everywhere; dbias [B, N, L, L] on real query rows.
        if quantity == "dbias":
            rows = np.transpose(real, (0, 2, 1, 3))  # [B, 1, L, 1]
        else:
            rows = real if quantity in ("out", "dq") else np.ones_like(real)
        scale = float(np.abs(np.where(rows, ref, 0)).max())
        errors = {}
        for label, values in results.items():
            values = np.asarray(values[quantity])
            errors[label] = float(np.abs(np.where(rows, values - ref, 0)).max())
            report[f"{quantity}_{label}_finite"] = bool(np.isfinite(values).all())
            passed &= report[f"{quantity}_{label}_finite"]
        allowed = max(TOLERANCE_FACTOR * errors["xla"], TOLERANCE_FLOOR * scale)
        report[f"{quantity}_max_abs_fp32"] = scale
        report[f"{quantity}_error_candidate"] = errors["candidate"]
        report[f"{quantity}_error_xla"] = errors["xla"]
        report[f"{quantity}_allowed"] = allowed
        passed &= errors["candidate"] <= allowed
    report["candidate"] = "explicit bf16 (CPU rehearsal)" if cpu else "cudnn"
    report["passed"] = bool(passed)
    return report


def cases_to_run(cpu: bool) -> list[tuple[str, bool, tuple[int, int, int, int], bool]]:
    """(name, packed, [B, L, N, D], with_bias): BERT-base heads at 128 and BERT-large heads at
    512, padded and packed; and BERT-base heads with a relative-position bias, padded and
    packed."""
    base, large = ((4, 32, 2, 64), (2, 64, 2, 32)) if cpu else ((32, 128, 12, 64), (8, 512, 16, 64))
    cases = []
    for shape, with_bias in ((base, False), (large, False), (base, True)):
        for packed in (False, True):
            name = (
                f"{'packed' if packed else 'padded'} L={shape[1]}{' + bias' if with_bias else ''}"
            )
            cases.append((name, packed, shape, with_bias))
    return cases


def run(cpu: bool, out: Path) -> dict:
    """Every case of `cases_to_run`, the result rewritten to `out` after each."""
    import jax

    result = {
        "check": "attention",
        "device_kind": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
        "tolerance": f"candidate error <= max({TOLERANCE_FACTOR} x XLA bf16 error, "
        f"{TOLERANCE_FLOOR} x max |fp32|), all values finite",
        "cases": [],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    cases = cases_to_run(cpu)
    for name, packed, shape, with_bias in cases:
        try:
            case = compare_case(name, packed, shape, cpu, with_bias)
        except Exception as e:  # noqa: BLE001 - record and go on to the next case
            case = {"case": name, "passed": False, "error": f"{type(e).__name__}: {e}"[:2000]}
        case["with_bias"] = with_bias
        result["cases"].append(case)
        result["passed"] = all(case["passed"] for case in result["cases"])
        result["passed_without_bias"] = all(
            case["passed"] for case in result["cases"] if not case["with_bias"]
        )
        result["complete"] = len(result["cases"]) == len(cases)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(case), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file written with the results")
    parser.add_argument("--cpu", action="store_true", help="rehearsal: no cuDNN, tiny shapes")
    args = parser.parse_args(argv)
    result = run(args.cpu, Path(args.out))
    print(f"attention check {'passed' if result['passed'] else 'FAILED'}: {args.out}")


if __name__ == "__main__":
    main()
