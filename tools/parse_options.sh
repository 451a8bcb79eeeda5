# Kaldi-compatible option parsing for recipes. Source it after declaring the variables:
#
#   stage=0
#   stop_stage=100
#   nj=2              # number of parallel jobs
#   . "$FRUGAL_ROOT/tools/parse_options.sh"
#
# `--stop-stage 5` sets stop_stage=5 (dashes become underscores); only variables that
# the calling script declared before sourcing this file can be set, anything else is an
# error. The default's form is the option's type: a true/false option takes true or false and
# may be given alone (`--force` = `--force true`), followed by another option or nothing; an
# integer default (`nj=4`) takes integers only, a decimal one (`beam=15.0`) any number.
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

# __po_set NAME VALUE WHERE: sets NAME after checking VALUE against the type of NAME's default;
# WHERE names the option (or config line) in the error.
__po_set() {
  local old=${!1} type=""
  case "$old" in
    true|false) type="true or false"; [[ "$2" = true || "$2" = false ]] ;;
    *) if [[ "$old" =~ ^-?[0-9]+$ ]]; then
         type="an integer"; [[ "$2" =~ ^-?[0-9]+$ ]]
       elif [[ "$old" =~ ^-?[0-9]*\.[0-9]+$ ]]; then
         type="a number"; [[ "$2" =~ ^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]]
       fi ;;
  esac || { echo "$0: $3 takes $type, not '$2'" >&2; exit 1; }
  printf -v "$1" '%s' "$2"
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
        __po_set "$__po_name" "${__po_line#*=}" "$2:$__po_n: option $__po_name"
      done < "$2"
      shift 2 ;;
    --*=*)
      __po_name=${1%%=*}; __po_name=${__po_name#--}; __po_name=${__po_name//-/_}
      __po_is_option "$__po_name" || { echo "$0: unknown option ${1%%=*} (see --help)" >&2; exit 1; }
      __po_set "$__po_name" "${1#*=}" "option ${1%%=*}"
      shift ;;
    --*)
      __po_name=${1#--}; __po_name=${__po_name//-/_}
      __po_is_option "$__po_name" || { echo "$0: unknown option $1 (see --help)" >&2; exit 1; }
      __po_old=${!__po_name}
      if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
        if [ $# -ge 2 ] && [[ "$2" != --* ]]; then
          # `--force yes` must not set force=true and end the options at "yes", silently
          # dropping every option after it: __po_set refuses it.
          __po_set "$__po_name" "$2" "option $1"; shift 2
        else
          printf -v "$__po_name" '%s' true; shift
        fi
      else
        [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
        __po_set "$__po_name" "$2" "option $1"; shift 2
      fi ;;
    *) break ;;
  esac
done
unset __po_name __po_old __po_line __po_n
true
