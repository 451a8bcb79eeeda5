#!/usr/bin/env bash
# mini: a synthetic multi-speaker English corpus made with eSpeak NG, the default recipe
# of ./run.sh and the one CI runs through every stage.
# Stages:
#   0  synthesise the corpus: wavs, transcripts, eSpeak lexicon, lhotse manifests
#      (train_sup, train_unsup, dev, test; dev/test voices unseen in training)
#                                                              -> corpus/, data/manifests, data/local
#   1  (data preparation: done by stage 0, the synthesiser writes the manifests)
#   2  lang: phone set, symbol tables, L.fst                   -> data/lang
#   3  features: log-mel fbank                                 -> data/fbank
#   4  den graph: phone LM of the train_sup transcripts        -> exp/chain (den.pt, phone_lm.fst, pdf_map.txt)
#   5  seed TDNN-F, flat-start LF-MMI (--objective ctc)        -> exp/tdnnf_seed/final.pt
#   6  Viterbi alignment of train_sup (seed model)             -> exp/tdnnf_seed/ali_train_sup.pt, .txt
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=0
stop_stage=100              # last stage to run
nj=2                        # parallel jobs
force=false                 # redo stages that are done already
seed=1                      # corpus seed (voices, texts, noise)
corpus_conf=conf/corpus.yaml  # corpus sizes and voices
fbank_conf=conf/fbank.yaml  # feature options
objective=lfmmi             # seed model objective: lfmmi or ctc
context=biphone             # phone context of the chain model: biphone or mono
train_conf=conf/train.yaml  # seed model: model, train and loss sections
num_valid=20                 # train_sup cuts held out for the validation objective
train_threads=1             # torch threads of training (1 is steadiest on a shared machine)
help_message="Usage: egs/mini/run.sh [options]   (stages are listed at the top of this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

if stage_begin 0 "synthesise the mini corpus" data/manifests/.done.mini; then
  stage_run make_corpus frugal make-mini-corpus --config "$corpus_conf" --seed "$seed" --nj "$nj" \
    --output-dir corpus --manifest-dir data/manifests --lexicon-dir data/local
  stage_end
fi

corpus=mini
parts="train_sup train_unsup dev test"
prepare_cmd=()   # stage 0 wrote the manifests
lang_cmd=(frugal prepare-lang --lexicon data/local/lexicon.txt --output-dir data/lang --sil-phone SIL)
. "$FRUGAL_ROOT/tools/data_stages.sh"
seed_dir=exp/tdnnf_seed
[ "$objective" = ctc ] && seed_dir=exp/tdnnf_seed_ctc
train_cuts=data/fbank/${corpus}_cuts_train_sup.jsonl.gz

if stage_begin 4 "denominator graph (phone LM of train_sup)" exp/chain/.done; then
  stage_run den_graph frugal make-den-graph --lang data/lang --cuts "$train_cuts" --context "$context" \
    --output exp/chain/den.pt
  stage_end
fi

if stage_begin 5 "seed model ($objective)" "$seed_dir/.done"; then
  extra=()
  [ "$objective" = lfmmi ] && extra+=(--den-graph exp/chain/den.pt)
  [ "$force" = true ] && extra+=(--start-fresh)   # else a killed run resumes from its last checkpoint
  stage_run train frugal train --train-config "$train_conf" --train-cuts "$train_cuts" \
    --num-valid "$num_valid" --lang data/lang --exp-dir "$seed_dir" --objective "$objective" \
    --num-threads "$train_threads" "${extra[@]}"
  stage_end
fi

if stage_begin 6 "align train_sup with the seed model" "$seed_dir/.done.ali"; then
  if [ "$objective" = lfmmi ]; then
    stage_run align frugal align --model "$seed_dir/final.pt" --cuts "$train_cuts" --lang data/lang \
      --den-graph exp/chain/den.pt --output "$seed_dir/ali_train_sup.pt" --nj "$nj"
    stage_run show_alignments bash -c "frugal show-alignments --alignments $seed_dir/ali_train_sup.pt \
      --lang data/lang --pdf-map exp/chain/pdf_map.txt --words > $seed_dir/ali_train_sup.txt.tmp \
      && mv $seed_dir/ali_train_sup.txt.tmp $seed_dir/ali_train_sup.txt && head -n 12 $seed_dir/ali_train_sup.txt"
  else
    echo "alignment needs the chain (lfmmi) seed model: nothing to do for --objective $objective"
  fi
  stage_end
fi
stage_not_implemented 6
