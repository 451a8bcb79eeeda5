#!/usr/bin/env bash
# One cut manifest of several (lhotse combine), written atomically.
#
#   steps/combine_cuts.sh <out.jsonl.gz> <in.jsonl.gz>...
set -eu
[ $# -ge 2 ] || { echo "Usage: $0 <out.jsonl.gz> <in.jsonl.gz>..." >&2; exit 1; }
out=$1; shift
tmp=${out%.jsonl.gz}.tmp.jsonl.gz
lhotse combine "$@" "$tmp"
mv "$tmp" "$out"
