#!/usr/bin/env bash
# yesno: the 60-file yes/no corpus (8 words a file), Kaldi's and icefall's smoke test.
# Stages:
#   0  download the corpus into --corpus-dir when it holds no .wav (openslr.org/1; needs internet)
#   1  data preparation: lhotse manifests, 30 train / 30 test, lexicon -> data/manifests, data/local
#   2  lang: phone set, symbol tables, L.fst                          -> data/lang
#   3  features: log-mel fbank                                        -> data/fbank
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=0
stop_stage=100              # last stage to run
nj=2                        # parallel jobs
force=false                 # redo stages that are done already
corpus_dir=$FRUGAL_ROOT/../shared/data/yesno   # directory of the 60 .wav files
fbank_conf=conf/fbank.yaml  # feature options
help_message="Usage: egs/yesno/run.sh [options]   (stages are listed at the top of this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

if stage_begin 0 "download yesno" data/.done.download; then
  if [ -n "$(ls "$corpus_dir"/*.wav 2>/dev/null)" ]; then
    echo "corpus found in $corpus_dir: nothing to download"
  else
    stage_run download frugal prepare-data yesno --download --corpus-dir "$corpus_dir"
  fi
  stage_end
fi

corpus=yesno
parts="train test"
prepare_cmd=(frugal prepare-data yesno --corpus-dir "$corpus_dir" --output-dir data/manifests
             --lexicon-dir data/local)
lang_cmd=(frugal prepare-lang --lexicon data/local/lexicon.txt --output-dir data/lang --sil-phone SIL)
. "$FRUGAL_ROOT/tools/data_stages.sh"
stage_not_implemented 3
