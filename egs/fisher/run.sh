#!/usr/bin/env bash
# Fisher English: speaker-disjoint supervised (50 h) and unsupervised (250 h) subsets, dev, test.
# Stages (tools/data_stages.sh):
#   1  data preparation: lhotse manifests                -> data/manifests
#   2  lang: lexicon, phone set, symbol tables, L.fst    -> data/lang
#   3  features: log-mel fbank, training parts speed-perturbed by option -> data/fbank
#   4-6   den graph, seed TDNN-F (flat-start LF-MMI on train_sup), alignment   (tools/seed_stages.sh)
#   7-10  word LM (train_sup transcripts), HCLG, decode dev/test with N dropout samples, score
#                                                                         (tools/decode_stages.sh)
#   11-14 oracle: train_sup + train_unsup with true transcripts            (tools/oracle_stages.sh)
#   15-21 semi-supervised LF-MMI: dropout decode of train_unsup, uncertainty report, den graph of
#         sup (1.5) + unsup 1-best (1.0), supervision lattices regular/AM/LM/AM+LM, training
#         from the seed, decoding, table 3.5 and dev WER vs N               (tools/semisup_stages.sh)
# Stages 1-3 are tested on fixtures in the distribution's layout; 4-21 are the shared stages
# that egs/mini runs end to end (no Fisher audio on the development machines).
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
objective=lfmmi             # seed model objective: lfmmi or ctc
context=biphone             # phone context of the chain model: biphone or mono
hmm_states=1                # HMM states a phone of the chain model: 1 (Kaldi's chain topology) or 2
den_graph_opts=""           # more frugal make-den-graph options (phone LM order, silence probabilities)
train_conf=conf/train.yaml  # seed model (tdnnf-s): model, train and loss sections
oracle_conf=conf/train_oracle.yaml    # oracle model (sup + unsup, true transcripts)
semisup_conf=conf/train_semisup.yaml  # semi-supervised models (continue from the seed)
num_valid=300               # train_sup cuts held out for the validation objective
train_threads=0             # torch threads of training (0: torch's choice)
lm_order=4                  # word LM order (train_sup transcripts)
beam=15                     # decoding beam
max_active=7000             # most tokens per frame in decoding
lattice_beam=8              # lattice beam
num_dropout_samples=4       # N: Monte-Carlo dropout decodings besides the dropout-off one
dropout_proportion=0.1      # dropout proportion of those decodings
dropout_seed=1              # seed of their dropout masks (and of the neural LM)
curve_samples="1 2"         # further N of the dev WER vs N curve (AM combination)
unsup_beam=15               # search of train_unsup
unsup_max_active=7000
sup_beam=4                  # pruning beam of the supervision lattices
nnlm_layers=3               # temporal-convolution layers of the neural word LM
seed=0                      # (reported with the results)
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

seed_dir=exp/tdnnf_seed
[ "$objective" = ctc ] && seed_dir=exp/tdnnf_seed_ctc
train_cuts=data/fbank/${corpus}_cuts_train_sup.jsonl.gz
unsup_cuts=data/fbank/${corpus}_cuts_train_unsup.jsonl.gz
. "$FRUGAL_ROOT/tools/seed_stages.sh"

lm_texts=$train_cuts
decode_sets="dev test"
. "$FRUGAL_ROOT/tools/decode_stages.sh"
. "$FRUGAL_ROOT/tools/oracle_stages.sh"
if [ "$objective" = lfmmi ]; then
  . "$FRUGAL_ROOT/tools/semisup_stages.sh"
fi
