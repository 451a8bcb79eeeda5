#!/usr/bin/env bash
# Self-supervised pre-training and fine-tuning on egs/mini (thesis chapter 4, tables 4.2, 4.3
# and A.1): an encoder pre-trained on the audio of train_sup + train_unsup without their
# transcripts (--task mam: the masked acoustic model on fbank; --task wav2vec2: wav2vec 2.0 on
# the raw audio, which stage 0 writes), then trained on train_sup with flat-start
# LF-MMI and with CTC (on the phones of data/lang) three ways: a TDNN-F from scratch (the
# seed's config), the frozen encoder under a larger TDNN-F head ("FE"), and the encoder
# fine-tuned with a smaller head ("FT"). Each model decoded on dev and test (test at dev's LM
# weight and insertion penalty); rows in exp/RESULTS.md, the pre-training curve in
# exp/<task>_pretrain/curve.png.
#
#   local/run_pretrain.sh [--stage N] [--stop-stage N] [options]   (from egs/mini)
#
# Needs run.sh's stages 0-8 (corpus, lang, features, den graph, word LM, HCLG):
# ./run.sh --stop-stage 8 (stage 5, the seed model, is not used here).
set -eu
cd "$(dirname "$0")/.."
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs (two trainings side by side)
force=false                 # redo stages that are done already
task=mam                    # pre-training task (frugal pretrain): mam or wav2vec2
pretrain_conf=""            # pre-training model, train and loss sections (default conf/pretrain_<task>.yaml)
finetune_conf=""            # FT: encoder and head trained together (default conf/train_finetune[_wav2vec2].yaml)
frozen_conf=""              # FE: the fixed encoder under a larger head (default conf/train_frozen[_wav2vec2].yaml)
scratch_conf=conf/train.yaml  # the TDNN-F from scratch (run.sh's seed model)
objectives="lfmmi ctc"      # supervised criteria
num_valid=20                # train_sup cuts held out for the validation objective (as run.sh)
pretrain_threads=2          # torch threads of the pre-training (it runs alone)
train_threads=1             # torch threads of each supervised training
lm_order=3                  # word LM of run.sh's stage 7
beam=11.0                   # decoding beam
max_active=2000             # most tokens a frame
lattice_beam=2.0            # lattice beam
lmwt=1:17                   # LM weights of the scoring sweep (CTC's best lie below run.sh's 7:17)
wip=-2.0,-1.5,-1.0,-0.5,0.0,0.5,1.0  # word insertion penalties of the scoring sweep
help_message="Usage: egs/mini/local/run_pretrain.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

case $task in
  mam) suffix="" feats=data/fbank ;;
  wav2vec2) suffix=_wav2vec2 feats=data/raw ;;  # the encoders read raw 16 kHz audio
  *) echo "$0: --task must be mam or wav2vec2, not '$task'" >&2; exit 1 ;;
esac
pretrain_conf=${pretrain_conf:-conf/pretrain_$task.yaml}
finetune_conf=${finetune_conf:-conf/train_finetune$suffix.yaml}
frozen_conf=${frozen_conf:-conf/train_frozen$suffix.yaml}
graph=${lm_order}g
lm=data/local/lm_$graph.arpa
for need in data/fbank/.done.mini exp/chain/.done "$lm" "exp/chain/graph_$graph/.done"; do
  [ -e "$need" ] || { echo "$0: $need is missing: run ./run.sh --stop-stage 8 first" >&2; exit 1; }
done
sup=$feats/mini_cuts_train_sup.jsonl.gz
unsup=$feats/mini_cuts_train_unsup.jsonl.gz
pt_dir=exp/${task}_pretrain
decode_opts=(--nj "$nj" --beam "$beam" --max-active "$max_active" --lattice-beam "$lattice_beam")
start_fresh=$([ "$force" = true ] && echo true || echo false)
models() {  # the models of an objective: scratch, frozen encoder, fine-tuned encoder
  echo "exp/pretrain_scratch_$1 exp/${task}_fe_$1 exp/${task}_ft_$1"
}

# CTC decodes with an HLG over the phones of data/lang (run.sh --objective ctc makes the same).
if [[ " $objectives " == *" ctc "* ]] && stage_begin 0 "CTC decoding graph ($graph)" "exp/ctc/graph_$graph/.done"; then
  stage_run graph frugal compile-graph --lang data/lang --arpa "$lm" --topo ctc --output "exp/ctc/graph_$graph/HLG.fst"
  stage_end
fi

if [ "$task" = wav2vec2 ] && stage_begin 0 "raw 16 kHz audio of every part" data/raw/.done.mini; then
  for part in train_sup train_unsup dev test; do
    stage_run "raw_$part" frugal compute-fbank --raw --nj "$nj" --cuts-in "data/manifests/mini_cuts_$part.jsonl.gz" \
      --cuts-out "data/raw/mini_cuts_$part.jsonl.gz" --storage-dir "data/raw/mini_audio_$part"
  done
  stage_end
fi

# No transcripts: the audio of train_sup and train_unsup. A killed pre-training resumes.
if stage_begin 1 "pre-training ($task) on train_sup + train_unsup audio" "$pt_dir/.done" \
    "$task $(stage_sha "$pretrain_conf")"; then
  stage_run pretrain frugal pretrain "$task" --train-config "$pretrain_conf" --train-cuts "$sup" "$unsup" \
    --exp-dir "$pt_dir" --num-threads "$pretrain_threads" $([ "$force" = true ] && echo --start-fresh)
  case $task in
    mam) keys=(--key l1) ;;
    wav2vec2) keys=(--key contrastive --key accuracy --key code_perplexity) ;;
  esac
  stage_run curve frugal train-curve --exp-dir "$pt_dir" "${keys[@]}" --output "$pt_dir/curve.png"
  stage_end
fi

# Table A.1's rows for each criterion, two trainings at a time; a killed one resumes.
if stage_begin 2 "supervised training on train_sup: scratch, frozen ($task), fine-tuned ($task); $objectives" \
    "exp/.done.${task}_train" "$(stage_sha "$scratch_conf" "$frozen_conf" "$finetune_conf")"; then
  for obj in $objectives; do
    common=(--objective "$obj" --den-dir exp/chain --num-valid "$num_valid" --threads "$train_threads"
            --start-fresh "$start_fresh")
    [ -f "exp/pretrain_scratch_$obj/final.pt" ] ||  # the same for every task
      stage_run_bg "train_scratch_$obj" steps/train.sh "${common[@]}" "$scratch_conf" data/lang \
        data/fbank/mini_cuts_train_sup.jsonl.gz "exp/pretrain_scratch_$obj"
    stage_run_bg "train_fe_$obj" steps/train.sh "${common[@]}" --init-encoder "$pt_dir/final.pt" \
      --encoder-mode frozen "$frozen_conf" data/lang "$sup" "exp/${task}_fe_$obj"
    stage_run_bg "train_ft_$obj" steps/train.sh "${common[@]}" --init-encoder "$pt_dir/final.pt" \
      --encoder-mode finetune "$finetune_conf" data/lang "$sup" "exp/${task}_ft_$obj"
  done
  stage_wait
  stage_end
fi

# Dev and test of every model.
for obj in $objectives; do
  graph_dir=exp/chain/graph_$graph
  [ "$obj" = ctc ] && graph_dir=exp/ctc/graph_$graph
  for model in $(models "$obj"); do
    if stage_begin 3 "decode dev, test ($(basename "$model"))" "$model/.done.decode_$graph"; then
      for part in dev test; do
        cuts=data/fbank/mini_cuts_$part.jsonl.gz
        [[ $model == */${task}_* ]] && cuts=$feats/mini_cuts_$part.jsonl.gz
        stage_run "decode_$(basename "$model")_$part" steps/decode.sh "${decode_opts[@]}" "$graph_dir" data/lang \
          "$cuts" "$model" "$model/decode_${graph}_$part"
      done
      stage_end
    fi
  done
done

# Test at the LM weight and insertion penalty chosen on dev, as Kaldi's recipes do.
for obj in $objectives; do
  for model in $(models "$obj"); do
    if stage_begin 4 "score dev, test ($(basename "$model"))" "$model/.done.score_$graph" "lmwt=$lmwt wip=$wip"; then
      dev=()
      for part in dev test; do
        stage_run "score_$(basename "$model")_$part" steps/score.sh --lmwt "$lmwt" --wip "$wip" ${dev[@]+"${dev[@]}"} \
          "data/fbank/mini_cuts_$part.jsonl.gz" data/lang "$model/decode_${graph}_$part" exp/RESULTS.md \
          "$(basename "$model")" "$part" "$graph"
        dev=(--dev-decode-dir "$model/decode_${graph}_dev")
      done
      stage_end
    fi
  done
done
