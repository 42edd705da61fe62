#!/usr/bin/env bash
# Every device check of docs/performance.md ("On a GPU") in one run of at most 8 minutes, each
# stage under its own time limit. The stages write under a scratch folder; after each one, OUT_DIR
# gets the results so far as three files (the device tool returns at most 8, none of them
# checkpoints): summary.json (headline numbers), stages.log, and results.tgz (every stage's JSON
# and log).
#
#   benchmarks/gpu_check.sh --build-carry workdirs/gpu_carry      # here: wheels + batches (<64 MiB)
#   benchmarks/gpu_check.sh OUT_DIR --carry workdirs/gpu_carry    # there: the checks
#   add --cpu to either for the rehearsal on a CPU machine (tiny sizes, same stages)
#
# Stages, in order (the required ones first, then the batch sweep while time is left):
#   env          versions, devices, nvidia-smi; stops the run unless JAX's backend is the GPU
#                                                                       -> environment.json
#   attention    cuDNN vs XLA attention, fwd + grads, bf16, padded and packed, with and without
#                a logit bias; if it fails, the stages below use XLA attention -> attention.json
#   bench        BERT-base s128 and BERT-large s512, bf16, fused attention, one probe batch each,
#                then profiled (a failed bench is rerun once with XLA attention) -> bench-*.json
#   train        200 steps of BERT-base on the carried batches, checkpoint at 100 and 200,
#                restore, replay 101-200 from the step-100 checkpoint   -> train.json
#   sweep        each size again at the batch that fills 85% of the device (from the probe's
#                memory analysis), while the deadline allows            -> bench-*-fill.json
#   rotary       BERT-base s128 with rotary positions (configs/cpu_budget.py's), the probe's
#                batch, while the deadline allows                       -> bench-*-rotary.json
#
# The device machine has JAX but no TensorFlow and no ml_collections: the stages import neither,
# except `bertjax bench`'s config defaults (ml_collections), carried as a 77 KB wheel with
# absl-py (138 KB). The pinned flax, optax and orbax-checkpoint are carried too (~2 MB): each
# carried wheel is used only where the machine lacks the package or has an older version.
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
CPU=0
OUT=""
CARRY=""
BUILD=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --carry) CARRY=$2; shift ;;
    --carry=*) CARRY=${1#--carry=} ;;
    --build-carry) BUILD=$2; shift ;;
    --build-carry=*) BUILD=${1#--build-carry=} ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) OUT=$1 ;;
  esac
  shift
done
PYTHON=${PYTHON:-python3}
GPU_CHECK=("$PYTHON" -m benchmarks.gpu_check)

if [[ -n "$BUILD" ]]; then
  # What the device machine needs that it lacks: two small wheels and the masked batches.
  mkdir -p "$BUILD/wheels"
  pins=$(grep -E '^(ml-collections|absl-py|flax|optax|orbax-checkpoint)==' requirements.txt | cut -d' ' -f1)
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download --quiet --no-deps -d "$BUILD/wheels" $pins || exit 1
  if [[ $CPU == 1 ]]; then
    sizes=(--model=tiny --seq_len=64 --batch_size=8 --num_batches=10)
  else
    sizes=(--model=base --seq_len=128 --batch_size=256 --num_batches=200)
  fi
  TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=$REPO "${GPU_CHECK[@]}" export \
    --out="$BUILD/batches" "${sizes[@]}" || exit 1
  du -sh "$BUILD"/*
  tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  carry=$(du -sb "$BUILD" | cut -f1)
  echo "carried: working tree $((tree / 1024)) KiB + $BUILD $((carry / 1024)) KiB" \
       "= $(((tree + carry) / 1048576)) MiB of 64"
  exit 0
fi

[[ -n "$OUT" ]] || { echo "usage: $0 OUT_DIR --carry DIR [--cpu] | --build-carry DIR" >&2; exit 2; }
[[ -n "$CARRY" && -d "$CARRY/batches" ]] || { echo "no $CARRY/batches: build it first" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
SITE=$WORK/site
RESULTS=$WORK/results  # what the stages write, checkpoints and compilation cache included
mkdir -p "$SITE" "$RESULTS"
LOG=$RESULTS/stages.log
export TF_CPP_MIN_LOG_LEVEL=2
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
export JAX_COMPILATION_CACHE_DIR=$WORK/jax_cache

START=$SECONDS
DEADLINE=${GPU_CHECK_DEADLINE:-470}  # seconds for everything; stages are skipped past it
SCALE=1
if [[ $CPU == 1 ]]; then
  export JAX_PLATFORMS=cpu
  SCALE=${GPU_CHECK_CPU_SCALE:-4}  # the rehearsal's CPU is slower than the GPU by far
  DEADLINE=$((DEADLINE * SCALE))
  backend=cpu
else
  export JAX_PLATFORMS=cuda  # never fall back to the CPU silently: that would spend the run
  backend=gpu
fi

# Carried wheels: pure Python, unzipped onto the path where the machine lacks the package or has
# an older one.
carried=$(PYTHONPATH=$REPO "${GPU_CHECK[@]}" wheels --carry="$CARRY" --site="$SITE") || exit 1
export GPU_CHECK_CARRIED=$carried
export PYTHONPATH=$REPO:$SITE
echo "[0s] carried wheels used: ${carried:-none}" | tee -a "$LOG"

publish() {  # the results so far into OUT: summary.json, stages.log, results.tgz
  local run
  for run in train train_replay; do  # the loss curve so far, should train.json never come
    [[ -f "$RESULTS/$run/metrics.jsonl" ]] && cp "$RESULTS/$run/metrics.jsonl" "$RESULTS/$run-metrics.jsonl"
  done
  "${GPU_CHECK[@]}" summary --out="$RESULTS" >/dev/null 2>&1
  cp "$LOG" "$OUT/stages.log"
  [[ -f "$RESULTS/summary.json" ]] && cp "$RESULTS/summary.json" "$OUT/summary.json"
  tar czf "$OUT/results.tgz" -C "$RESULTS" --exclude=train --exclude=train_replay \
    --exclude=jax_cache --exclude="*-profile" .
}

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: runs it under its limit, logs to NAME.log;
  # returns the command's exit code, or 2 when skipped for lack of time
  local name=$1 limit=$(($2 * SCALE)) left=$((DEADLINE - (SECONDS - START)))
  shift 2
  if ((left < limit / 2)); then
    echo "[$((SECONDS - START))s] skip $name: ${left}s left, it may take ${limit}s" | tee -a "$LOG"
    return 2
  fi
  ((limit > left)) && limit=$left
  local begin=$SECONDS
  timeout --kill-after=15 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
  local rc=$?
  echo "[$((SECONDS - START))s] $name: rc=$rc in $((SECONDS - begin))s (limit ${limit}s)" | tee -a "$LOG"
  tail -n 1 "$RESULTS/$name.log" | cut -c1-300
  publish
  return $rc
}

json_field() {  # json_field FILE KEY: the value of KEY in FILE, or nothing
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$@" 2>/dev/null
}

if [[ $CPU == 1 ]]; then
  base=(--model=tiny --seq_len=64 --batch_size=8 --steps=2 --warmup_steps=1)
  large=(--model=mini --seq_len=128 --batch_size=4 --steps=2 --warmup_steps=1)
  # tiny learns slowly at BERT-base's rate: 40 steps at 3e-3 take the loss 9.7 -> 6.0 (~10 s)
  base_name=bench-tiny-64 large_name=bench-mini-128 train_model=tiny train_steps=40 train_lr=3e-3
  cpu=--cpu
else
  base=(--model=base --seq_len=128 --batch_size=512 --steps=10)
  large=(--model=large --seq_len=512 --batch_size=64 --steps=5)
  base_name=bench-base-128 large_name=bench-large-512 train_model=base train_steps=200 train_lr=1e-4
  cpu=""
fi

stage env 30 "${GPU_CHECK[@]}" env --out="$RESULTS"
found=$(json_field "$RESULTS/environment.json" backend)
if [[ $found != "$backend" ]]; then
  echo "[$((SECONDS - START))s] stop: JAX's backend is '${found:-unknown}', not $backend (env.log)" | tee -a "$LOG"
  publish
  exit 1
fi
stage attention 75 "$PYTHON" -m benchmarks.attention_check --out="$RESULTS/attention.json" $cpu
attention=auto  # the benches and the training run send cuDNN no bias: its bias cases do not decide
if [[ $(json_field "$RESULTS/attention.json" passed_without_bias) != True ]]; then
  attention=xla
  echo "[$((SECONDS - START))s] cuDNN attention did not pass (attention.json): XLA attention from here" | tee -a "$LOG"
elif [[ $(json_field "$RESULTS/attention.json" passed) != True ]]; then
  echo "[$((SECONDS - START))s] cuDNN attention failed with a bias (relative positions; attention.json)" | tee -a "$LOG"
fi

bench_stage() {  # bench_stage NAME LIMIT ARGS...: a bench; once more with XLA attention if it fails
  local name=$1 limit=$2
  shift 2
  stage "$name" "$limit" "${GPU_CHECK[@]}" bench "$@" --attention=$attention --out="$RESULTS/$name.json"
  local rc=$?
  if [[ $rc != 2 && ! -f "$RESULTS/$name.json" && $attention != xla ]]; then
    echo "[$((SECONDS - START))s] $name failed with attention=$attention: again with XLA attention" | tee -a "$LOG"
    stage "$name" "$limit" "${GPU_CHECK[@]}" bench "$@" --attention=xla --out="$RESULTS/$name.json"
  fi
}

bench_stage "$base_name" 75 "${base[@]}" --profile
bench_stage "$large_name" 120 "${large[@]}" --profile
stage train 150 "${GPU_CHECK[@]}" train --batches="$CARRY/batches" --model=$train_model \
  --steps=$train_steps --learning_rate=$train_lr --attention=$attention --out="$RESULTS" $cpu
for probe in "$base_name" "$large_name"; do
  [[ -f "$RESULTS/$probe.json" ]] || continue
  fill=$("${GPU_CHECK[@]}" fill --probe="$RESULTS/$probe.json" --fraction=0.85) || continue
  if [[ $probe == "$base_name" ]]; then args=("${base[@]}") limit=60; else args=("${large[@]}") limit=90; fi
  bench_stage "$probe-fill" $limit "${args[@]}" --batch_size="$fill"
done
bench_stage "$base_name-rotary" 60 "${base[@]}" --positions=rotary
echo "[$((SECONDS - START))s] done: $OUT (summary.json, stages.log, results.tgz)" | tee -a "$LOG"
publish
cat "$OUT/summary.json"
