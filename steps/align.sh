#!/usr/bin/env bash
# Viterbi alignments of transcribed cuts with a chain model, and their readable form.
#
#   steps/align.sh [--nj N] <model-dir> <lang-dir> <den-dir> <cuts> <ali-prefix>
#
# Writes <ali-prefix>.pt and <ali-prefix>.txt (frugal show-alignments with words).
set -eu
nj=1                        # parallel jobs
help_message="Usage: $0 [--nj N] <model-dir> <lang-dir> <den-dir> <cuts> <ali-prefix>"
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -eq 5 ] || { echo "$help_message" >&2; exit 1; }
model_dir=$1 lang=$2 den_dir=$3 cuts=$4 ali=$5

frugal align --model "$model_dir/final.pt" --cuts "$cuts" --lang "$lang" --den-graph "$den_dir/den.pt" \
  --output "$ali.pt" --nj "$nj"
frugal show-alignments --alignments "$ali.pt" --lang "$lang" --pdf-map "$den_dir/pdf_map.txt" --words \
  > "$ali.txt.tmp"
mv "$ali.txt.tmp" "$ali.txt"
head -n 12 "$ali.txt"
