#!/usr/bin/env bash
#SBATCH --job-name=bertjax
#SBATCH --nodes=2
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=2-00:00:00
#SBATCH --signal=TERM@300
#SBATCH --output=bertjax-%j.log
#
# Multi-node GPU pretraining under SLURM: one `bertjax train --distributed` process per GPU
# (default; each uses only its own GPU) or per node (PROCS_PER=node; each uses all of its node's
# GPUs). The coordinator is the first host of the allocation; each process gets
# --num_processes=$SLURM_NTASKS --process_id=$SLURM_PROCID from srun, and its GPUs as
# JAX_LOCAL_DEVICE_IDS (jax.distributed.initialize reads it; without it, JAX's SLURM detection
# gives every process one GPU, the one of its local rank, whatever the mode), and
# BERTJAX_LOCAL_DEVICES, the count bertjax checks it sees. SLURM sends SIGTERM 300 s before the
# time limit (--signal): bertjax checkpoints and stops; submit again to resume.
#
# Submit from the repository root with the virtual environment active (sbatch passes the
# environment on to the tasks); flags on the sbatch line override the #SBATCH lines above, and
# arguments after the script are passed to `bertjax train`:
#
#   CONFIG=configs/bert_large_phase1.py WORKDIR=/shared/runs/bert-large \
#     sbatch --nodes=4 launch/gpu_slurm.sh --config.corpus='/shared/corpus/*.jsonl.gz'
#
# Per node:  CONFIG=... WORKDIR=... PROCS_PER=node sbatch --ntasks-per-node=1 launch/gpu_slurm.sh
#
# Settings (environment variables):
#   CONFIG            config file, relative to the repository root (required)
#   WORKDIR           run directory on a filesystem every node shares, or gs:// (required)
#   PROCS_PER         "gpu" (default) or "node"
#   GPUS_PER_NODE     default: what SLURM allocated (SLURM_GPUS_ON_NODE / SLURM_GPUS_PER_NODE)
#   COORDINATOR_PORT  TCP port on the first host for jax.distributed; default from the job id
#                     (61440 + SLURM_JOB_ID % 4096, as JAX's own SLURM detection: two jobs that
#                     share a first node do not collide)
#   BERTJAX           the bertjax executable; default: bertjax on PATH
#   DRY_RUN=1         print the srun command and the command each task would run; run nothing
set -euo pipefail

# sbatch runs a copy of this script from its spool directory; the checkout is then found through
# the directory the job was submitted from.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -f "${SCRIPT_DIR}/common.sh" ]]; then
  REPO_ROOT="$(dirname "$SCRIPT_DIR")"
else
  REPO_ROOT="${SLURM_SUBMIT_DIR:-$PWD}"
fi
if [[ ! -f "${REPO_ROOT}/launch/common.sh" ]]; then
  echo "gpu_slurm.sh: error: submit from the repository root: sbatch launch/gpu_slurm.sh" >&2
  exit 2
fi
LAUNCH_SCRIPT_NAME="gpu_slurm.sh"
# shellcheck source=launch/common.sh
source "${REPO_ROOT}/launch/common.sh"

validate() {
  require_vars CONFIG WORKDIR
  [[ -n "${SLURM_JOB_NODELIST:-}" ]] ||
    die "not inside a SLURM job; submit with: sbatch launch/gpu_slurm.sh"
  [[ -f "${REPO_ROOT}/${CONFIG}" ]] ||
    die "CONFIG=${CONFIG} is not a file under ${REPO_ROOT}; pass e.g. configs/bert_base_phase1.py"
  command -v scontrol >/dev/null || die "scontrol not found; run this inside a SLURM cluster"
  PROCS_PER="${PROCS_PER:-gpu}"
  [[ "$PROCS_PER" == gpu || "$PROCS_PER" == node ]] ||
    die "PROCS_PER must be 'gpu' or 'node', got '${PROCS_PER}'"
  NUM_NODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-}}"
  [[ "$NUM_NODES" =~ ^[1-9][0-9]*$ ]] || die "SLURM_JOB_NUM_NODES is not set; submit with sbatch"
  # SLURM_GPUS_PER_NODE may carry a type, e.g. "h100:8".
  local gpus="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}}"
  GPUS_PER_NODE="${gpus##*:}"
  [[ "$GPUS_PER_NODE" =~ ^[1-9][0-9]*$ ]] ||
    die "cannot tell the GPUs per node (got '${gpus}'); submit with --gpus-per-node=N or set GPUS_PER_NODE"
}

main() {
  validate
  local hosts coordinator
  hosts="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"
  coordinator="${hosts%%$'\n'*}:${COORDINATOR_PORT:-$((61440 + ${SLURM_JOB_ID:-0} % 4096))}"

  local tasks_per_node=1 task_program
  # Each task ends its own command line with its rank from srun's per-task environment.
  # shellcheck disable=SC2016  # expanded by each task, not here
  local ranks='--num_processes="$SLURM_NTASKS" --process_id="$SLURM_PROCID"'
  local all_gpus
  all_gpus="$(seq -s, 0 $((GPUS_PER_NODE - 1)))"
  if [[ "$PROCS_PER" == gpu ]]; then
    tasks_per_node="$GPUS_PER_NODE"
    task_program="export JAX_LOCAL_DEVICE_IDS=\"\$SLURM_LOCALID\" BERTJAX_LOCAL_DEVICES=1;"
  else
    task_program="export JAX_LOCAL_DEVICE_IDS=${all_gpus} BERTJAX_LOCAL_DEVICES=${GPUS_PER_NODE};"
  fi
  task_program+=" exec \"\$0\" \"\$@\" ${ranks}"
  local num_tasks=$((NUM_NODES * tasks_per_node))
  local step=(--nodes="$NUM_NODES" --ntasks="$num_tasks" --ntasks-per-node="$tasks_per_node")
  if [[ "${SLURM_CPUS_ON_NODE:-}" =~ ^[1-9][0-9]*$ ]]; then
    # Split the node's CPUs between its tasks: the tf.data input pipeline runs on them.
    local cpus=$((SLURM_CPUS_ON_NODE / tasks_per_node))
    step+=(--cpus-per-task="$((cpus > 0 ? cpus : 1))")
  fi
  step+=(--kill-on-bad-exit=1 --label)
  local train=("${BERTJAX:-bertjax}" train --config="$CONFIG" --workdir="$WORKDIR" --distributed
    --coordinator_address="$coordinator" "$@")

  if is_dry_run; then
    echo "+ cd $(quote_word "$REPO_ROOT")"
    echo "+ $(quote_words srun "${step[@]}" bash -c "$task_program" "${train[@]}")"
    local rank host_index gpu_env=""
    local host_list
    mapfile -t host_list <<<"$hosts"
    for ((rank = 0; rank < num_tasks; rank++)); do
      host_index=$((rank / tasks_per_node))
      if [[ "$PROCS_PER" == gpu ]]; then
        gpu_env="JAX_LOCAL_DEVICE_IDS=$((rank % tasks_per_node)) BERTJAX_LOCAL_DEVICES=1 "
      else
        gpu_env="JAX_LOCAL_DEVICE_IDS=${all_gpus} BERTJAX_LOCAL_DEVICES=${GPUS_PER_NODE} "
      fi
      echo "+ ${gpu_env}$(quote_words "${train[@]}" --num_processes="$num_tasks" \
        --process_id="$rank")  # task ${rank} on ${host_list[host_index]:-node ${host_index}}"
    done
    return
  fi
  cd "$REPO_ROOT"
  run srun "${step[@]}" bash -c "$task_program" "${train[@]}"
}

main "$@"
