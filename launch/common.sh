# shellcheck shell=bash
# Shell helpers shared by the launch scripts (sourced, not run).
#
# Every command that touches a machine goes through `run` or `query`: each prints the command as
# `+ WORD WORD ...`, quoted so that it can be pasted into a shell, and then runs it, unless
# DRY_RUN=1, in which case nothing runs. Errors a user can fix are one line on stderr, exit code 2.

# The script's name for error messages, e.g. "tpu_pretrain.sh".
LAUNCH_SCRIPT_NAME="${LAUNCH_SCRIPT_NAME:-$(basename "$0")}"

die() {
  echo "${LAUNCH_SCRIPT_NAME}: error: $*" >&2
  exit 2
}

# Exits with a one-line error naming the first of the given variables that is unset or empty.
require_vars() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "set ${name} (see the header of ${LAUNCH_SCRIPT_NAME} or docs/launch.md)"
  done
}

is_dry_run() {
  [[ "${DRY_RUN:-0}" == 1 ]]
}

# One shell word, quoted only when it must be: bare, "double" or 'single' quotes, whichever is
# the first that keeps the word intact.
quote_word() {
  local word="$1"
  if [[ -n "$word" && "$word" =~ ^[A-Za-z0-9_./:=@%+,~-]+$ && "$word" != "~"* ]]; then
    printf '%s' "$word"
  elif [[ "$word" != *[\"\$\`\\\!]* ]]; then
    printf '"%s"' "$word"
  elif [[ "$word" != *"'"* ]]; then
    printf "'%s'" "$word"
  else
    printf '%s' "${word@Q}"
  fi
}

# All arguments as one line of shell words.
quote_words() {
  local word line=""
  for word in "$@"; do
    line+="${line:+ }$(quote_word "$word")"
  done
  printf '%s' "$line"
}

# Prints the command and runs it (not in a dry run).
run() {
  echo "+ $(quote_words "$@")"
  if ! is_dry_run; then
    "$@"
  fi
}

# Prints the command and runs it (not in a dry run), storing its stdout in QUERY_OUTPUT; a
# failing command or a dry run leaves QUERY_OUTPUT empty ("the resource does not exist").
# shellcheck disable=SC2034  # QUERY_OUTPUT is read by the caller
query() {
  echo "+ $(quote_words "$@")"
  QUERY_OUTPUT="" # read by the caller
  if ! is_dry_run; then
    QUERY_OUTPUT="$("$@" 2>/dev/null)" || QUERY_OUTPUT=""
  fi
}
