#!/usr/bin/env bash
# Fisher English: speaker-disjoint supervised (50 h) and unsupervised (250 h) subsets, dev, test.
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
sup_hours=50                # supervised subset, hours (by speaker)
unsup_hours=250             # unsupervised subset, hours (by speaker)
dev_hours=5                 # dev set, hours (by speaker)
test_hours=5                # test set, hours (by speaker)
audio_dirs="LDC2004S13 LDC2005S13"        # audio releases under --corpus-dir
transcript_dirs="LDC2004T19 LDC2005T19"   # transcript releases under --corpus-dir
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of training data
fbank_conf=conf/fbank.yaml  # feature options
help_message="Usage: egs/fisher/run.sh --corpus-dir DIR [options]   (stages are listed at the top of this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

corpus=fisher
parts="train_sup train_unsup dev test"
prepare_cmd=(frugal prepare-data fisher --corpus-dir "$corpus_dir" --output-dir data/manifests
             --lexicon-dir data/local --sup-hours "$sup_hours" --unsup-hours "$unsup_hours"
             --dev-hours "$dev_hours" --test-hours "$test_hours"
             --audio-dirs $audio_dirs --transcript-dirs $transcript_dirs)
lang_cmd=(frugal prepare-lang --cmudict --words-from data/local/words.txt --output-dir data/lang --sil-phone SIL --oov "<UNK>")
. "$FRUGAL_ROOT/tools/data_stages.sh"
stage_not_implemented 3
