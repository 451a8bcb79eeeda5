# Stage conventions shared by the recipes (DESIGN.md, "Recipes"). Source after parse_options.sh.
#
#   if stage_begin 3 "compute fbank" data/fbank/.done; then
#     stage_run fbank frugal compute-fbank ...     # logs to $log_dir/stage3_fbank.log
#     stage_end
#   fi
#
# stage_begin N DESC MARKER [WHAT]: true when N lies in [stage, stop_stage] and the stage must
#   run: its done-marker MARKER is missing, or force=true. A finished stage is skipped with a
#   note. WHAT says what made the output (the options and config contents the stage reads,
#   see stage_sha): the marker records it, and a finished stage made from something else
#   stops the recipe, naming both, instead of being reused.
# stage_run NAME CMD...: runs CMD, its output shown and appended to the stage's log; on
#   failure the recipe stops with the log's path. Tools write their outputs under temporary
#   names and rename them, so a failed or killed stage leaves nothing a re-run would trust.
# stage_run_bg NAME CMD...: stage_run in the background, at most $nj at a time (one torch
#   thread each: the independent steps of a stage share the cores); stage_wait waits for all
#   of them, and the recipe stops if any failed.
# stage_end: writes the done-marker, the last thing a stage does.
# shellcheck shell=bash
set -o pipefail

# Recipes take options only: a word parse_options.sh left over (`run.sh 5` for `--stage 5`)
# would otherwise be ignored, and the options after it with it.
if [ $# -gt 0 ]; then
  echo "$0: unexpected argument '$1': recipes take --name value options only (see --help)" >&2
  exit 1
fi

: "${stage:=0}" "${stop_stage:=100}" "${force:=false}" "${log_dir:=exp/log}"

# The recipe's stages are the numbers its `stage_begin N` lines name: asking to start after the
# last one, or to stop before the start, would run nothing and must say so.
__stage_last=$(grep -oE '^[[:space:]]*(if[[:space:]]+)?stage_begin[[:space:]]+[0-9]+' "${__po_script:-$0}" \
  | grep -oE '[0-9]+$' | sort -n | tail -1 || true)
if [ -n "$__stage_last" ] && [ "$stage" -gt "$__stage_last" ]; then
  echo "$0: --stage $stage: the recipe's last stage is $__stage_last" >&2
  exit 1
fi
if [ "$stop_stage" -lt "$stage" ]; then
  echo "$0: --stop-stage $stop_stage is before --stage $stage: nothing to run" >&2
  exit 1
fi
__stage_n=""; __stage_marker=""; __stage_desc=""; __stage_what=""

stage_begin() {
  local n=$1 desc=$2 marker=$3 what=${4:-}
  [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ] || return 1
  __stage_n=$n; __stage_desc=$desc; __stage_marker=$marker; __stage_what=$what
  if [ -f "$marker" ] && [ "$force" != true ]; then
    local made; made=$(sed -n 's/^made from: //p' "$marker")
    if [ -n "$what" ] && [ "$made" != "$what" ]; then
      echo "$0: stage $n ($desc) was done from other options or configs ($marker):" >&2
      echo "  done:  ${made:-(not recorded)}" >&2
      echo "  asked: $what" >&2
      echo "  --force redoes it (and the stages after it must be redone too), or choose other directories" >&2
      exit 1
    fi
    echo "$(date '+%F %T') stage $n ($desc): done already ($marker); --force to redo"
    return 1
  fi
  rm -f "$marker"
  mkdir -p "$log_dir"
  echo "$(date '+%F %T') stage $n: $desc"
  return 0
}

stage_run() {
  local name=$1; shift
  local log="$log_dir/stage${__stage_n}_${name}.log"
  mkdir -p "$(dirname "$log")"
  echo "# $(date '+%F %T') $*" >> "$log"
  local from; from=$(wc -l < "$log")
  if ! "$@" 2>&1 | tee -a "$log"; then
    # The error itself on stderr too: a background step's output goes only to its log.
    tail -n +"$((from + 1))" "$log" | grep -E '(^|: )error: ' | tail -1 >&2 || true
    echo "$(date '+%F %T') stage $__stage_n ($__stage_desc) FAILED; log: $log" >&2
    exit 1
  fi
}

__stage_bg=0
stage_run_bg() {
  stage_run "$@" > /dev/null &
  __stage_bg=$((__stage_bg + 1))
  if [ "$__stage_bg" -ge "${nj:-1}" ]; then
    wait -n || { wait; exit 1; }
    __stage_bg=$((__stage_bg - 1))
  fi
}

stage_wait() {
  while [ "$__stage_bg" -gt 0 ]; do
    wait -n || { wait; exit 1; }
    __stage_bg=$((__stage_bg - 1))
  done
}

stage_end() {
  mkdir -p "$(dirname "$__stage_marker")"
  { printf 'stage %s (%s) finished %s\n' "$__stage_n" "$__stage_desc" "$(date '+%F %T')"
    [ -z "$__stage_what" ] || printf 'made from: %s\n' "$__stage_what"
  } > "$__stage_marker.tmp" && mv "$__stage_marker.tmp" "$__stage_marker"
}

# stage_sha FILE...: a short content hash of files (configs), for a stage's WHAT.
stage_sha() {
  cat "$@" | sha256sum | cut -c1-12
}

# stage_not_implemented LAST: the recipe's stages stop at LAST for now; say so when asked for more.
stage_not_implemented() {
  local last=$1
  if [ "$stop_stage" -gt "$last" ]; then
    echo "$(date '+%F %T') stages after $last (training, decoding) are not implemented yet: stopping after stage $last"
  fi
}
