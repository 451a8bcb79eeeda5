#!/usr/bin/env bash
# Train a model into <exp-dir> (final.pt, checkpoints, log/train.log); a killed run resumes.
#
#   steps/train.sh [options] <train-conf> <lang-dir> <cuts> <exp-dir>
#
# LF-MMI needs --den-dir (the den graph's directory, den.pt); semi-supervised training adds
# --init-model (the seed's final.pt) and --supervision (a directory of supervision lattices);
# fine-tuning a pre-trained encoder --init-encoder (final.pt of frugal pretrain) and
# --encoder-mode (finetune or frozen; default: the config's).
set -eu
objective=lfmmi             # lfmmi or ctc
den_dir=""                  # directory of den.pt (lfmmi)
num_valid=0                 # cuts held out for the validation objective
valid_cuts=""                # validation cuts of their own (instead of --num-valid)
threads=0                   # torch threads (0: torch's choice)
start_fresh=false           # discard the checkpoints of an earlier run instead of resuming
init_model=""               # start from these weights
supervision=""              # supervision lattices of the untranscribed cuts
init_encoder=""             # the encoder of this pre-training checkpoint under the config's head
encoder_mode=""             # finetune or frozen
help_message="Usage: $0 [options] <train-conf> <lang-dir> <cuts> <exp-dir>"
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -eq 4 ] || { echo "$help_message" >&2; exit 1; }
conf=$1 lang=$2 cuts=$3 dir=$4

opts=()
[ "$objective" = lfmmi ] && opts+=(--den-graph "$den_dir/den.pt")
[ "$start_fresh" = true ] && opts+=(--start-fresh)
[ -n "$init_model" ] && opts+=(--init-model "$init_model")
[ -n "$supervision" ] && opts+=(--supervision-lattices "$supervision")
[ -n "$valid_cuts" ] && opts+=(--valid-cuts "$valid_cuts")
[ -n "$init_encoder" ] && opts+=(--init-encoder "$init_encoder")
[ -n "$encoder_mode" ] && opts+=(--encoder-mode "$encoder_mode")
frugal train --train-config "$conf" --train-cuts "$cuts" --num-valid "$num_valid" --lang "$lang" \
  --exp-dir "$dir" --objective "$objective" --num-threads "$threads" ${opts[@]+"${opts[@]}"}
