#!/usr/bin/env bash
# Pretrains on a Cloud TPU VM slice (v4, v5e, v5p, v6e): creates the TPU VM or reuses it, copies
# this checkout (or clones REPO_URL) to every worker, installs the pinned requirements plus the
# matching jax[tpu], and starts `bertjax train --distributed` on all workers in the background.
# Re-running the same command resumes from the latest checkpoint in WORKDIR (e.g. after a
# preemption: a preempted VM is deleted and created again).
#
#   TPU_NAME=bert-v5p ZONE=us-east5-a ACCELERATOR_TYPE=v5p-128 SPOT=1 \
#   CONFIG=configs/tpu_v5p_128_fsdp.py WORKDIR=gs://my-bucket/runs/bert-large VOCAB_FILE=vocab.txt \
#     launch/tpu_pretrain.sh --config.corpus='gs://my-bucket/corpus/*.jsonl.gz'
#
# docs/launch.md walks through it from a new project to TensorBoard.
#
# Arguments are passed to `bertjax train`. Settings (environment variables):
#   TPU_NAME          TPU VM name (required)
#   ZONE              zone that offers ACCELERATOR_TYPE, e.g. us-central2-b (required)
#   ACCELERATOR_TYPE  e.g. v4-32, v5litepod-16, v5p-128, v6e-64 (required)
#   CONFIG            config file, relative to the repository root (required)
#   WORKDIR           gs:// run directory: checkpoints, metrics, TensorBoard (required)
#   PROJECT           Google Cloud project; default: gcloud's configured project
#   RUNTIME_VERSION   TPU software version; default per generation (see runtime_version_for)
#   SPOT=1            Spot VM: much cheaper, can be preempted at any time
#   PREEMPTIBLE=1     preemptible VM (older pricing model; not with QUEUED=1)
#   QUEUED=1          request the slice as a queued resource (waits in line for capacity)
#   QUEUED_RESOURCE   queued resource name; default TPU_NAME
#   REPO_URL          git URL to clone on the workers instead of uploading `git archive HEAD`
#   REPO_REF          branch, tag or commit to check out after cloning REPO_URL
#   VOCAB_FILE        vocab.txt (local path or gs://) copied to every worker and passed as
#                     --config.vocab_dir; without it each run trains a vocabulary from the corpus
#   PYTHON_VERSION    Python for the workers' virtual environment; default 3.11
#   DRY_RUN=1         print the commands (one per line, prefixed with "+ ") and run nothing;
#                     a dry run assumes the TPU VM does not exist yet
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=launch/common.sh
source "${REPO_ROOT}/launch/common.sh"

# Where things live on each worker (paths relative to the remote home directory).
REMOTE_CODE="bertjax"
REMOTE_VENV="bertjax-venv"
REMOTE_LOGS="bertjax-logs"
REMOTE_VOCAB="bertjax-vocab"
# The index JAX documents for the libtpu wheels that match a jax[tpu] release.
LIBTPU_FIND_LINKS="https://storage.googleapis.com/jax-releases/libtpu_releases.html"

# The TPU software version Google documents for JAX on each generation.
runtime_version_for() {
  case "$1" in
    v2-* | v3-* | v4-*) echo "tpu-ubuntu2204-base" ;;
    v5litepod-* | v5e-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no default RUNTIME_VERSION for ACCELERATOR_TYPE=$1; set RUNTIME_VERSION" ;;
  esac
}

validate() {
  require_vars TPU_NAME ZONE ACCELERATOR_TYPE CONFIG WORKDIR
  [[ "$WORKDIR" == gs://?* ]] ||
    die "WORKDIR must be a gs:// path that every TPU worker can reach, got '${WORKDIR}'"
  if [[ -z "${REPO_URL:-}" && ! -f "${REPO_ROOT}/${CONFIG}" ]]; then
    die "CONFIG=${CONFIG} is not a file under ${REPO_ROOT}; pass e.g. configs/bert_base_phase1.py"
  fi
  # The workers get `git archive HEAD`: a config git does not track would not be there.
  if [[ -z "${REPO_URL:-}" ]] && ! git -C "$REPO_ROOT" cat-file -e "HEAD:${CONFIG}" 2>/dev/null; then
    die "CONFIG=${CONFIG} is not committed, and the workers get the committed files only (git archive HEAD); commit it first"
  fi
  if [[ -n "${VOCAB_FILE:-}" && "$VOCAB_FILE" != gs://* && ! -f "$VOCAB_FILE" ]]; then
    die "VOCAB_FILE=${VOCAB_FILE} is not a file; pass a vocab.txt (local or gs://)"
  fi
  if [[ "${SPOT:-0}" == 1 && "${PREEMPTIBLE:-0}" == 1 ]]; then
    die "set SPOT=1 or PREEMPTIBLE=1, not both"
  fi
  if [[ "${QUEUED:-0}" == 1 && "${PREEMPTIBLE:-0}" == 1 ]]; then
    die "queued resources take SPOT=1, not PREEMPTIBLE=1"
  fi
  if ! is_dry_run && ! command -v gcloud >/dev/null; then
    die "gcloud not found; install the Google Cloud CLI and run 'gcloud auth login'"
  fi
  JAX_VERSION="$(sed -nE 's/^jax==([^[:space:]#]+).*/\1/p' "${REPO_ROOT}/requirements.txt")"
  [[ -n "$JAX_VERSION" ]] || die "requirements.txt pins no jax==VERSION"
  RUNTIME_VERSION="${RUNTIME_VERSION:-$(runtime_version_for "$ACCELERATOR_TYPE")}"
  QUEUED_RESOURCE="${QUEUED_RESOURCE:-$TPU_NAME}"
  LOCATION=(--zone="$ZONE")
  if [[ -n "${PROJECT:-}" ]]; then
    LOCATION+=(--project="$PROJECT")
  fi
  PRICING=()
  if [[ "${SPOT:-0}" == 1 ]]; then
    PRICING=(--spot)
  elif [[ "${PREEMPTIBLE:-0}" == 1 ]]; then
    PRICING=(--preemptible)
  fi
}

tpu_vm() {
  run gcloud compute tpus tpu-vm "$@"
}

queued_resources() {
  run gcloud compute tpus queued-resources "$@"
}

create_tpu_vm() {
  tpu_vm create "$TPU_NAME" "${LOCATION[@]}" --accelerator-type="$ACCELERATOR_TYPE" \
    --version="$RUNTIME_VERSION" "${PRICING[@]}"
}

# Queues a request for the slice and waits until it is granted (ACTIVE).
create_queued_tpu_vm() {
  query gcloud compute tpus queued-resources describe "$QUEUED_RESOURCE" "${LOCATION[@]}" \
    --format="value(state.state)"
  case "$QUERY_OUTPUT" in
    "") queued_resources create "$QUEUED_RESOURCE" --node-id="$TPU_NAME" "${LOCATION[@]}" \
      --accelerator-type="$ACCELERATOR_TYPE" --runtime-version="$RUNTIME_VERSION" "${PRICING[@]}" ;;
    FAILED | SUSPENDED | SUSPENDING)
      queued_resources delete "$QUEUED_RESOURCE" "${LOCATION[@]}" --force --quiet
      create_queued_tpu_vm
      return
      ;;
    *) echo "queued resource ${QUEUED_RESOURCE} exists (${QUERY_OUTPUT}); waiting for it" ;;
  esac
  while true; do
    query gcloud compute tpus queued-resources describe "$QUEUED_RESOURCE" "${LOCATION[@]}" \
      --format="value(state.state)"
    case "$QUERY_OUTPUT" in
      ACTIVE) return ;;
      "")
        is_dry_run && return
        die "queued resource ${QUEUED_RESOURCE} disappeared while waiting; run this script again"
        ;;
      FAILED | SUSPENDED) die "queued resource ${QUEUED_RESOURCE} is ${QUERY_OUTPUT}; see 'gcloud compute tpus queued-resources describe ${QUEUED_RESOURCE} --zone=${ZONE}'" ;;
      *) sleep 60 ;;
    esac
  done
}

# Reuses a READY TPU VM; replaces a preempted one; creates one that does not exist.
ensure_tpu_vm() {
  query gcloud compute tpus tpu-vm describe "$TPU_NAME" "${LOCATION[@]}" --format="value(state)"
  case "$QUERY_OUTPUT" in
    READY)
      echo "reusing TPU VM ${TPU_NAME}"
      return
      ;;
    "") ;;
    PREEMPTED | TERMINATED)
      echo "TPU VM ${TPU_NAME} is ${QUERY_OUTPUT}; deleting it to create it again"
      if [[ "${QUEUED:-0}" == 1 ]]; then
        queued_resources delete "$QUEUED_RESOURCE" "${LOCATION[@]}" --force --quiet
      else
        tpu_vm delete "$TPU_NAME" "${LOCATION[@]}" --quiet
      fi
      ;;
    *) die "TPU VM ${TPU_NAME} is ${QUERY_OUTPUT}; wait until it is READY, or delete it: gcloud compute tpus tpu-vm delete ${TPU_NAME} --zone=${ZONE}" ;;
  esac
  if [[ "${QUEUED:-0}" == 1 ]]; then
    create_queued_tpu_vm
  else
    create_tpu_vm
  fi
}

# Runs one shell command line on every worker of the slice.
on_all_workers() {
  tpu_vm ssh "$TPU_NAME" "${LOCATION[@]}" --worker=all --command="$1"
}

# Refuses to touch a worker where a previous run is still training.
NOT_RUNNING="if [ -f ~/${REMOTE_LOGS}/train.pid ] && kill -0 \"\$(cat ~/${REMOTE_LOGS}/train.pid)\" 2>/dev/null; then echo \"bertjax is still running on \$(hostname) (pid \$(cat ~/${REMOTE_LOGS}/train.pid)); stop it first\" >&2; exit 1; fi"

# Puts the code on every worker: `git archive HEAD` uploaded with scp, or a clone of REPO_URL.
copy_code() {
  local fetch
  if [[ -n "${REPO_URL:-}" ]]; then
    fetch="git clone --quiet $(quote_word "$REPO_URL") ~/${REMOTE_CODE}"
    if [[ -n "${REPO_REF:-}" ]]; then
      fetch+=" && git -C ~/${REMOTE_CODE} checkout --quiet $(quote_word "$REPO_REF")"
    fi
  else
    if ! is_dry_run && [[ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no)" ]]; then
      echo "note: uncommitted changes are not uploaded; only the committed HEAD is" >&2
    fi
    if [[ -n "$(git -C "$REPO_ROOT" status --porcelain -- "$CONFIG")" ]]; then
      echo "note: CONFIG=${CONFIG} has uncommitted changes; the workers run its committed version" >&2
    fi
    local tarball="${TMPDIR:-/tmp}/bertjax-${TPU_NAME}.tar.gz"
    run git -C "$REPO_ROOT" archive --format=tar.gz --output="$tarball" HEAD
    tpu_vm scp "$tarball" "${TPU_NAME}:${REMOTE_CODE}.tar.gz" "${LOCATION[@]}" --worker=all --recurse
    is_dry_run || rm -f "$tarball"
    fetch="mkdir -p ~/${REMOTE_CODE} && tar -xzf ~/${REMOTE_CODE}.tar.gz -C ~/${REMOTE_CODE}"
  fi
  if [[ "${VOCAB_FILE:-}" == gs://* ]]; then
    fetch+=" && mkdir -p ~/${REMOTE_VOCAB} && gcloud storage cp $(quote_word "$VOCAB_FILE") ~/${REMOTE_VOCAB}/vocab.txt"
  elif [[ -n "${VOCAB_FILE:-}" ]]; then
    tpu_vm scp "$VOCAB_FILE" "${TPU_NAME}:${REMOTE_VOCAB}.txt" "${LOCATION[@]}" --worker=all
    fetch+=" && mkdir -p ~/${REMOTE_VOCAB} && cp ~/${REMOTE_VOCAB}.txt ~/${REMOTE_VOCAB}/vocab.txt"
  fi
  # uv provides PYTHON_VERSION even where the image's python3 is older (Ubuntu 22.04 has 3.10).
  # PIP_BREAK_SYSTEM_PACKAGES: a --user install of uv on images whose Python is marked as
  # externally managed (older pips ignore the variable).
  local python_version="${PYTHON_VERSION:-3.11}"
  # shellcheck disable=SC2088  # ~ must expand on the worker, not here
  local uv="~/.local/bin/uv"
  on_all_workers "${NOT_RUNNING}; rm -rf ~/${REMOTE_CODE} && ${fetch} \
&& PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --user uv \
&& ${uv} venv --quiet --allow-existing --python $(quote_word "$python_version") ~/${REMOTE_VENV} \
&& ${uv} pip install --quiet --python ~/${REMOTE_VENV}/bin/python -r ~/${REMOTE_CODE}/requirements.txt \
-e ~/${REMOTE_CODE} \"jax[tpu]==${JAX_VERSION}\" --find-links ${LIBTPU_FIND_LINKS}"
}

# Starts training in the background on every worker; each worker logs to ~/bertjax-logs/train.log.
start_training() {
  local train args=(train --config="$CONFIG" --workdir="$WORKDIR" --distributed)
  if [[ -n "${VOCAB_FILE:-}" ]]; then
    args+=(--config.vocab_dir="../${REMOTE_VOCAB}") # relative to ~/bertjax, the working directory
  fi
  # shellcheck disable=SC2088  # ~ must expand on the worker, not here
  train="~/${REMOTE_VENV}/bin/bertjax $(quote_words "${args[@]}" "$@")"
  on_all_workers "${NOT_RUNNING}; mkdir -p ~/${REMOTE_LOGS} && cd ~/${REMOTE_CODE} \
&& { setsid nohup ${train} > ~/${REMOTE_LOGS}/train.log 2>&1 < /dev/null & echo \$! > ~/${REMOTE_LOGS}/train.pid; }"
}

main() {
  validate
  ensure_tpu_vm
  copy_code
  start_training "$@"
  if is_dry_run; then
    echo "dry run: nothing was run"
    return
  fi
  local where="--zone=${ZONE}${PROJECT:+ --project=${PROJECT}}" delete
  delete="gcloud compute tpus tpu-vm delete ${TPU_NAME} ${where}"
  if [[ "${QUEUED:-0}" == 1 ]]; then
    delete="gcloud compute tpus queued-resources delete ${QUEUED_RESOURCE} ${where} --force"
  fi
  echo "started on every worker of ${TPU_NAME}. Follow worker 0:"
  echo "  gcloud compute tpus tpu-vm ssh ${TPU_NAME} ${where} --worker=0 --command='tail -f ~/${REMOTE_LOGS}/train.log'"
  echo "TensorBoard: tensorboard --logdir ${WORKDIR%/}/tensorboard"
  echo "delete the TPU VM when done (it is billed while it exists):"
  echo "  ${delete}"
}

main "$@"
