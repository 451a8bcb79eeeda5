#!/usr/bin/env bash
# Self-supervised pre-training and fine-tuning on AN4's real speech (thesis chapter 4, tables 4.2
# and A.1): the masked acoustic model (MAM) pre-trained on the audio of the training cuts (no
# transcripts; as the thesis's MAM-S on the same train-clean-100 it is then trained on), then
# trained by flat-start LF-MMI two ways: the frozen encoder under a larger TDNN-F head ("FE")
# and the encoder fine-tuned with a smaller head ("FT"); run.sh's TDNN-F is the model from
# scratch. Decoded and scored as run.sh does (test at dev's LM weight); rows in exp/RESULTS.md,
# the pre-training curve in exp/mam_pretrain/curve.png.
#
#   local/run_pretrain.sh [--stage N] [--stop-stage N] [options]   (from egs/an4)
#
# Needs run.sh's stages 0-8 (the model from scratch decoded and scored): ./run.sh.
set -eu
cd "$(dirname "$0")/.."
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs (two trainings side by side)
force=false                 # redo stages that are done already
corpus_dir=${FRUGAL_SHARED:-$FRUGAL_ROOT/../shared}/data/an4  # to know whether there is a test side
fbank=data/fbank            # run.sh's features
exp=exp/tdnnf               # run.sh's model from scratch: its den graph and HCLG are used
pretrain_conf=conf/pretrain_mam.yaml  # MAM: model, train and loss sections
finetune_conf=conf/train_finetune.yaml  # FT: encoder and head trained together
frozen_conf=conf/train_frozen.yaml  # FE: the fixed encoder under a larger head
pretrain_threads=2          # torch threads of the pre-training (it runs alone)
train_threads=1             # torch threads of each supervised training
lm_order=3                  # run.sh's word LM
lm_vocab=lexicon            # and its vocabulary (the graph's name)
beam=13.0                   # decoding as run.sh
max_active=3000
lattice_beam=4.0
lmwt=3:17                   # scoring sweep as run.sh
wip=-1.0,-0.5,0.0,0.5,1.0
help_message="Usage: egs/an4/local/run_pretrain.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

graph=${lm_order}g
[ "$lm_vocab" = lexicon ] && graph=${lm_order}g_lex
chain=$exp/chain
for need in "$exp/.done.score_$graph" "$chain/den.pt" "$chain/graph_$graph/HCLG.fst"; do
  [ -e "$need" ] || { echo "$0: $need is missing: run ./run.sh first" >&2; exit 1; }
done
train=$fbank/an4_cuts_train_nv.jsonl.gz
valid=$fbank/an4_cuts_valid.jsonl.gz
parts=(dev)
[ -d "$corpus_dir/wav/an4test_clstk" ] && parts+=(test)
pt_dir=exp/mam_pretrain

# No transcripts: the audio of the training cuts (speed-perturbed as run.sh made them); the
# validation cuts' reconstruction loss after each epoch. A killed pre-training resumes.
if stage_begin 1 "MAM pre-training on the training audio" "$pt_dir/.done" "$(stage_sha "$pretrain_conf")"; then
  stage_run pretrain frugal pretrain mam --train-config "$pretrain_conf" --train-cuts "$train" --valid-cuts "$valid" \
    --exp-dir "$pt_dir" --num-threads "$pretrain_threads" $([ "$force" = true ] && echo --start-fresh)
  stage_run curve frugal train-curve --exp-dir "$pt_dir" --key l1 --output "$pt_dir/curve.png"
  stage_end
fi

if stage_begin 2 "LF-MMI on the MAM encoder: frozen (FE) and fine-tuned (FT)" exp/.done.mam_train \
    "$(stage_sha "$frozen_conf" "$finetune_conf")"; then
  common=(--den-dir "$chain" --valid-cuts "$valid" --threads "$train_threads" --init-encoder "$pt_dir/final.pt"
          --start-fresh "$force")
  stage_run_bg train_fe steps/train.sh "${common[@]}" --encoder-mode frozen "$frozen_conf" data/lang "$train" exp/mam_fe
  stage_run_bg train_ft steps/train.sh "${common[@]}" --encoder-mode finetune "$finetune_conf" data/lang "$train" \
    exp/mam_ft
  stage_wait
  stage_end
fi

for model in exp/mam_fe exp/mam_ft; do
  if stage_begin 3 "decode and score ${parts[*]} ($model)" "$model/.done.decode_$graph"; then
    dev=()
    for part in "${parts[@]}"; do
      dir=$model/decode_${graph}_$part
      stage_run "decode_$(basename "$model")_$part" steps/decode.sh --nj "$nj" --beam "$beam" --max-active "$max_active" \
        --lattice-beam "$lattice_beam" "$chain/graph_$graph" data/lang "$fbank/an4_cuts_$part.jsonl.gz" "$model" "$dir"
      stage_run "score_$(basename "$model")_$part" steps/score.sh --lmwt "$lmwt" --wip "$wip" ${dev[@]+"${dev[@]}"} \
        "$fbank/an4_cuts_$part.jsonl.gz" data/lang "$dir" exp/RESULTS.md "$model" "$part" "$graph"
      dev=(--dev-decode-dir "$model/decode_${graph}_dev")
    done
    stage_end
  fi
done
