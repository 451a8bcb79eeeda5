#!/usr/bin/env bash
# WSJ (LDC93S6B + LDC94S13B): train si284, dev93, eval92; Kaldi's wsj_data_prep in Python.
# Stages 1-3 prepare the data (tested on fixtures in the distribution's layout); the seed
# model, decoding and the thesis's experiments come with the corpus-recipes issue. Every
# stage logs to exp/log/stage<N>_<step>.log and writes its done-marker last.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=1                     # first stage to run
stop_stage=100              # last stage to run
nj=4                        # parallel jobs
force=false                 # redo stages that are done already
corpus_dir=                 # the corpus as distributed (required for stage 1)
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of training data
fbank_conf=conf/fbank.yaml  # feature options
help_message="Usage: egs/wsj/run.sh --corpus-dir DIR [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

if stage_begin 1 "data preparation (lhotse manifests)" data/manifests/.done.wsj; then
  [ -n "$corpus_dir" ] || { echo "$0: --corpus-dir is required for stage 1" >&2; exit 1; }
  stage_run prepare_data frugal prepare-data wsj --corpus-dir "$corpus_dir" --output-dir data/manifests --lexicon-dir data/local
  stage_end
fi

if stage_begin 2 "lang" data/lang/.done; then
  stage_run prepare_lang frugal prepare-lang --cmudict --word-list data/local/words.txt --output-dir data/lang \
    --sil-phone SIL --oov "<UNK>"
  stage_end
fi

if stage_begin 3 "fbank features (training parts speed-perturbed: $speed_perturb)" data/fbank/.done.wsj; then
  for part in train_si284 test_dev93 test_eval92; do
    perturb=()
    case $part in train*) [ "$speed_perturb" = true ] && perturb=(--speed-perturb) ;; esac
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" ${perturb[@]+"${perturb[@]}"} \
      --cuts-in "data/manifests/wsj_cuts_$part.jsonl.gz" --cuts-out "data/fbank/wsj_cuts_$part.jsonl.gz" \
      --storage-dir "data/fbank/wsj_feats_$part"
  done
  stage_end
fi

stage_not_implemented 3
