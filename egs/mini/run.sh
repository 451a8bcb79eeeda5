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
stage_not_implemented 3
