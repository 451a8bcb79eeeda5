#!/usr/bin/env bash
# mini: a synthetic multi-speaker English corpus made with eSpeak NG, the default recipe
# of ./run.sh and the one CI runs through every stage.
# Stages:
#   0  synthesise the corpus: wavs, transcripts, eSpeak lexicon, LM text, lhotse manifests
#      (train_sup, train_unsup, dev, test; dev/test voices unseen in training)
#                                                              -> corpus/, data/manifests, data/local
#   1  (data preparation: done by stage 0, the synthesiser writes the manifests)
#   2  lang: phone set, symbol tables, L.fst                   -> data/lang
#   3  features: log-mel fbank                                 -> data/fbank
#   4  den graph: phone LM of the train_sup transcripts        -> exp/chain (den.pt, phone_lm.fst, pdf_map.txt)
#   5  seed TDNN-F, flat-start LF-MMI (--objective ctc)        -> exp/tdnnf_seed/final.pt
#   6  Viterbi alignment of train_sup (seed model)             -> exp/tdnnf_seed/ali_train_sup.pt, .txt
#   7  word LM (trigram, train_sup transcripts + LM text)    -> data/local/lm_3g.arpa
#   8  decoding graph HCLG (HLG for ctc)                       -> exp/chain/graph_3g
#   9  decode dev, test (seed model)                           -> exp/tdnnf_seed/decode_3g_{dev,test}
#   10 score (LM weight x insertion penalty chosen on dev)     -> wer files, RESULTS.md
#   11 oracle data: train_sup + train_unsup with their true transcripts, and their den graph
#                                                              -> data/fbank/mini_cuts_train_all.jsonl.gz, exp/chain_oracle
#   12 oracle TDNN-F, flat-start LF-MMI on train_all           -> exp/tdnnf_oracle/final.pt
#   13 decode dev, test (oracle model, the graph of stage 8)   -> exp/tdnnf_oracle/decode_3g_{dev,test}
#   14 score                                                   -> RESULTS.md rows tdnnf_oracle
# Semi-supervised LF-MMI with dropout-sampled lattice combination (tools/semisup_stages.sh;
# stage 9 already decoded dev/test with N dropout samples besides the dropout-off decode):
#   15 dropout decode of train_unsup (seed model, N samples)  -> exp/tdnnf_seed/decode_3g_train_unsup
#   16 uncertainty report of dev/test (tables 3.2, 3.3)         -> exp/tdnnf_seed/uncertainty.md
#   17 unsup 1-best texts, den graph (sup 1.5 + unsup 1.0)      -> exp/chain_semisup
#   18 supervision lattices regular/am/lm/am_lm (+ am with fewer samples), table 3.4
#                                                              -> exp/semisup
#   19 semi-supervised LF-MMI from the seed, one model per kind -> exp/tdnnf_semisup_<kind>
#   20 decode and score dev/test                               -> RESULTS.md rows
#   21 table 3.5 and dev WER vs N                              -> RESULTS.md, exp/semisup/wer_vs_n.png
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
context=mono                # phone context of the chain model: biphone or mono
hmm_states=1                # HMM states a phone of the chain model: 1 (Kaldi's chain topology) or 2
den_graph_opts=""           # more frugal make-den-graph options (phone LM order, silence probabilities)
lm_order=3                  # word LM order
beam=11                     # decoding beam
max_active=2000             # most tokens per frame in decoding
lattice_beam=2              # lattice beam (word-lattice determinisation is slow for wide beams)
train_conf=conf/train.yaml  # seed model: model, train and loss sections
oracle_conf=conf/train_oracle.yaml  # oracle model (3x the data of the seed: fewer epochs)
semisup_conf=conf/train_semisup.yaml  # semi-supervised models (continue from the seed)
num_dropout_samples=4       # N: Monte-Carlo dropout decodings besides the dropout-off one
dropout_proportion=0.1      # dropout proportion of those decodings
dropout_seed=1              # seed of their dropout masks (and of the neural LM)
curve_samples="2"           # further N of the dev WER vs N curve (AM combination; "1 2" adds a model)
unsup_beam=8                # search of train_unsup (N + 1 decodes of the largest part)
unsup_max_active=1000
sup_beam=4                  # pruning beam of the supervision lattices
nnlm_layers=3               # temporal-convolution layers of the neural word LM
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
unsup_cuts=data/fbank/${corpus}_cuts_train_unsup.jsonl.gz

. "$FRUGAL_ROOT/tools/seed_stages.sh"

# The word LM: train_sup transcripts + the corpus's LM text; never train_unsup's transcripts,
# which would make its decodes (the semi-supervised supervision) nearly perfect.
lm_texts=$train_cuts
lm_text_files=data/local/lm_text.txt
decode_sets="dev test"
. "$FRUGAL_ROOT/tools/decode_stages.sh"

. "$FRUGAL_ROOT/tools/oracle_stages.sh"

if [ "$objective" = lfmmi ]; then
  . "$FRUGAL_ROOT/tools/semisup_stages.sh"
elif [ "$stop_stage" -ge 15 ]; then
  echo "stages 15-21 (semi-supervised LF-MMI) need --objective lfmmi: stopping after stage 14"
fi
