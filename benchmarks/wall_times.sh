# Sourced by the proof scripts (downstream_proof.sh, zh_proof.sh).
timed() {  # timed NAME command...: runs it, appends "NAME seconds" to $OUT/wall_times.txt
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "$name $(($(date +%s) - start))" >>"$OUT/wall_times.txt"
}
