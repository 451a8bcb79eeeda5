#!/usr/bin/env bash
# The neural word LM of LM-uncertainty supervision (thesis: a 3-layer TCN), trained on a
# text and stopped early on the transcripts of dev cuts.
#
#   steps/train_nnlm.sh [--layers N] [--seed S] <lang-dir> <text> <dev-cuts> <out-dir>
#
# Writes <out-dir>/model.pt (and dev_text, the dev transcripts).
set -eu
layers=3                    # temporal-convolution layers
seed=0                      # initial weights, batch order, dropout masks
help_message="Usage: $0 [--layers N] [--seed S] <lang-dir> <text> <dev-cuts> <out-dir>"
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -eq 4 ] || { echo "$help_message" >&2; exit 1; }
lang=$1 text=$2 dev_cuts=$3 dir=$4

mkdir -p "$dir"
frugal cuts-to-text --cuts "$dev_cuts" --output "$dir/dev_text"
frugal train-nnlm --text "$text" --dev-text "$dir/dev_text" --lang "$lang" --layers "$layers" --seed "$seed" \
  --output "$dir/model.pt"
