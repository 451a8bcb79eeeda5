#!/usr/bin/env bash
# Decode cuts with a model into a decode directory: word lattices and 1-best (Kaldi's steps/nnet3/decode.sh).
#
#   steps/decode.sh [options] <graph-dir> <lang-dir> <cuts> <model-dir> <decode-dir>
#
# The graph is <graph-dir>/HCLG.fst (chain) or HLG.fst (CTC); the model <model-dir>/final.pt.
# Lattices keep 10 x the acoustic scale as theirs (--post-decode-acwt), so that the LM-weight
# sweep 7-17 of steps/score.sh brackets the search's scale. With --dropout-samples N the cuts
# are also decoded N times with Monte-Carlo dropout, into <decode-dir>/dropout/1..N.
set -eu
nj=1                        # parallel jobs
beam=15.0                   # decoding beam
max_active=7000             # most tokens per frame
lattice_beam=8.0            # lattice beam
acoustic_scale=1.0          # scale of the network's log-likelihoods (chain models: 1.0)
batch_size=0                # utterance-passes per decoder call (0: automatic)
dropout_samples=0           # N: Monte-Carlo dropout decodings besides the dropout-off one
dropout_proportion=0.1      # their dropout proportion
dropout_seed=0              # their masks' seed
skip_checks=false           # decode even where the graph's metadata is missing or disagrees with model or words
attention=""                # a transformer's self-attention at inference, if not its own (thesis table 5.2)
clusters=0                  # with --attention (improved-)clustered: clusters (0: the model's)
help_message="Usage: $0 [options] <graph-dir> <lang-dir> <cuts> <model-dir> <decode-dir>"
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -eq 5 ] || { echo "$help_message" >&2; exit 1; }
graph_dir=$1 lang=$2 cuts=$3 model_dir=$4 dir=$5

graph=$graph_dir/HCLG.fst
[ -f "$graph" ] || graph=$graph_dir/HLG.fst
opts=()
if [ "$dropout_samples" -gt 0 ]; then
  opts+=(--dropout-samples "$dropout_samples" --dropout-proportion "$dropout_proportion" --dropout-seed "$dropout_seed")
fi
[ "$skip_checks" = true ] && opts+=(--skip-checks)
[ -n "$attention" ] && opts+=(--attention "$attention")
[ "$clusters" -gt 0 ] && opts+=(--clusters "$clusters")
frugal decode --model "$model_dir/final.pt" --graph "$graph" --words "$lang/words.txt" --cuts "$cuts" \
  --output-dir "$dir" --nj "$nj" --beam "$beam" --max-active "$max_active" --lattice-beam "$lattice_beam" \
  --acoustic-scale "$acoustic_scale" --post-decode-acwt "$(awk "BEGIN {print 10 * $acoustic_scale}")" \
  --batch-size "$batch_size" ${opts[@]+"${opts[@]}"}
