# Kaldi-compatible option parsing for recipes. Source it after declaring the variables:
#
#   stage=0
#   stop_stage=100
#   nj=2              # number of parallel jobs
#   . "$FRUGAL_ROOT/tools/parse_options.sh"
#
# `--stop-stage 5` sets stop_stage=5 (dashes become underscores); only variables that
# the calling script declared before sourcing this file can be set, anything else is an
# error. A variable whose value is true/false may be given alone (`--force` = `--force true`),
# followed by another option or nothing; any other value for it is an error.
# `--config FILE` reads `name=value` lines (no code is executed). `--help` lists the options
# with their defaults and the comments that follow them. Positional arguments are left in "$@".
# shellcheck shell=bash

# The calling script, whose declarations define the options; recipes cd to their own
# directory first, which leaves a relative $0 pointing elsewhere.
if [ -z "${__po_script:-}" ]; then
  if [ -f "$0" ]; then __po_script=$0; else __po_script=$(basename "$0"); fi
fi

__po_declared_options() {
  # Variable assignments at the start of a line of the calling script, before it sources us.
  awk '/parse_options\.sh/ {exit}
       /^help_message=/ {next}
       /^[A-Za-z_][A-Za-z0-9_]*=/ {
         name=$0; sub(/=.*/, "", name)
         val=$0; sub(/^[^=]*=/, "", val)
         com=""; if (match(val, /[ \t]+#/)) { com=substr(val, RSTART); sub(/^[ \t]+#[ \t]*/, "", com); val=substr(val, 1, RSTART-1) }
         printf "%s\t%s\t%s\n", name, val, com
       }' "$__po_script"
}

__po_usage() {
  [ -n "${help_message:-}" ] && printf '%s\n\n' "$help_message"
  echo "Options (default in brackets):"
  __po_declared_options | while IFS=$'\t' read -r name val com; do
    printf '  --%-22s [%s] %s\n' "${name//_/-}" "$val" "$com"
  done
}

__po_is_option() {
  __po_declared_options | cut -f1 | grep -qx -- "$1"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) __po_usage; exit 0 ;;
    --config)
      [ $# -ge 2 ] || { echo "$0: option --config needs a file" >&2; exit 1; }
      [ -f "$2" ] || { echo "$0: config file $2 not found" >&2; exit 1; }
      __po_n=0
      while IFS= read -r __po_line || [ -n "$__po_line" ]; do
        __po_n=$((__po_n + 1))
        __po_line=${__po_line%%#*}
        [ -z "${__po_line//[[:space:]]/}" ] && continue
        __po_name=${__po_line%%=*}; __po_name=${__po_name// /}; __po_name=${__po_name#--}; __po_name=${__po_name//-/_}
        if [[ "$__po_line" != *=* ]] || ! __po_is_option "$__po_name"; then
          echo "$0: $2:$__po_n: unknown option '${__po_line}'" >&2; exit 1
        fi
        printf -v "$__po_name" '%s' "${__po_line#*=}"
      done < "$2"
      shift 2 ;;
    --*=*)
      __po_name=${1%%=*}; __po_name=${__po_name#--}; __po_name=${__po_name//-/_}
      __po_is_option "$__po_name" || { echo "$0: unknown option ${1%%=*} (see --help)" >&2; exit 1; }
      __po_old=${!__po_name}
      if { [ "$__po_old" = true ] || [ "$__po_old" = false ]; } && [ "${1#*=}" != true ] && [ "${1#*=}" != false ]; then
        echo "$0: option ${1%%=*} takes true or false, not '${1#*=}'" >&2; exit 1
      fi
      printf -v "$__po_name" '%s' "${1#*=}"
      shift ;;
    --*)
      __po_name=${1#--}; __po_name=${__po_name//-/_}
      __po_is_option "$__po_name" || { echo "$0: unknown option $1 (see --help)" >&2; exit 1; }
      __po_old=${!__po_name}
      if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
        if [ $# -ge 2 ] && { [ "$2" = true ] || [ "$2" = false ]; }; then
          printf -v "$__po_name" '%s' "$2"; shift 2
        elif [ $# -ge 2 ] && [[ "$2" != --* ]]; then
          # `--force yes` would otherwise set force=true and end the options at "yes",
          # silently dropping every option after it.
          echo "$0: option $1 takes true or false, not '$2'" >&2; exit 1
        else
          printf -v "$__po_name" '%s' true; shift
        fi
      else
        [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
        printf -v "$__po_name" '%s' "$2"; shift 2
      fi ;;
    *) break ;;
  esac
done
unset __po_name __po_old __po_line __po_n
true
