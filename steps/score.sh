#!/usr/bin/env bash
# Score a decode directory against the transcripts of its cuts (Kaldi's local/score.sh), and
# put its row into a recipe's RESULTS.md.
#
#   steps/score.sh [--dev-decode-dir DIR] <cuts> <lang-dir> <decode-dir> <results-md> <model> <data> <graph>
#
# The best LM weight (--lmwt, 7:17) and insertion penalty (--wip, 0.0,0.5,1.0) are chosen on the
# set itself, or, with --dev-decode-dir, taken from the dev set's scoring (how Kaldi's recipes
# report test sets). A best setting on the edge of the sweep is warned about.
set -eu
dev_decode_dir=""           # a scored dev decode directory whose best setting is reported
lmwt=7:17                   # LM weights of the sweep, MIN:MAX
wip=0.0,0.5,1.0             # word insertion penalties of the sweep
help_message="Usage: $0 [--dev-decode-dir DIR] <cuts> <lang-dir> <decode-dir> <results-md> <model> <data> <graph>"
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -eq 7 ] || { echo "$help_message" >&2; exit 1; }
cuts=$1 lang=$2 dir=$3 results=$4 model=$5 data=$6 graph=$7

dev=()
[ -n "$dev_decode_dir" ] && dev=(--dev-decode-dir "$dev_decode_dir")
frugal score-lattices --lmwt "$lmwt" --wip "$wip" --decode-dir "$dir" --ref-cuts "$cuts" --words "$lang/words.txt" ${dev[@]+"${dev[@]}"} \
  --results "$results" --model-name "$model" --data-name "$data" --graph-name "$graph"
