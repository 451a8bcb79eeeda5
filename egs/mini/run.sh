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
#   7  word LM (trigram, train_sup + train_unsup transcripts)  -> data/local/lm_3g.arpa
#   8  decoding graph HCLG (HLG for ctc)                       -> exp/chain/graph_3g
#   9  decode dev, test (seed model)                           -> exp/tdnnf_seed/decode_3g_{dev,test}
#   10 score (LM weight x insertion penalty chosen on dev)     -> wer files, RESULTS.md
#   11 oracle data: train_sup + train_unsup with their true transcripts, and their den graph
#                                                              -> data/fbank/mini_cuts_train_all.jsonl.gz, exp/chain_oracle
#   12 oracle TDNN-F, flat-start LF-MMI on train_all           -> exp/tdnnf_oracle/final.pt
#   13 decode dev, test (oracle model, the graph of stage 8)   -> exp/tdnnf_oracle/decode_3g_{dev,test}
#   14 score                                                   -> RESULTS.md rows tdnnf_oracle
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
lm_order=3                  # word LM order
beam=15                     # decoding beam
lattice_beam=2              # lattice beam (word-lattice determinisation is slow for wide beams)
train_conf=conf/train.yaml  # seed model: model, train and loss sections
oracle_conf=conf/train_oracle.yaml  # oracle model (3x the data of the seed: fewer epochs)
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

. "$FRUGAL_ROOT/tools/seed_stages.sh"

lm_texts="$train_cuts data/fbank/${corpus}_cuts_train_unsup.jsonl.gz"
decode_sets="dev test"
. "$FRUGAL_ROOT/tools/decode_stages.sh"

# The oracle: the seed recipe on all training data with its true transcripts, the upper bound
# of semi-supervised training. Same lang, context and topology as the seed, hence the same
# (tree-less) pdf map: the decoding graph of stage 8 serves it too.
oracle_dir=exp/tdnnf_oracle
[ "$objective" = ctc ] && oracle_dir=exp/tdnnf_oracle_ctc
all_cuts=data/fbank/${corpus}_cuts_train_all.jsonl.gz

if stage_begin 11 "oracle data and den graph (train_sup + train_unsup)" exp/chain_oracle/.done; then
  tmp_cuts=${all_cuts%.jsonl.gz}.tmp.jsonl.gz
  stage_run combine bash -c "lhotse combine $train_cuts data/fbank/${corpus}_cuts_train_unsup.jsonl.gz \
    $tmp_cuts && mv $tmp_cuts $all_cuts"
  stage_run den_graph frugal make-den-graph --lang data/lang --cuts "$all_cuts" --context "$context" \
    --output exp/chain_oracle/den.pt
  stage_end
fi

train_model 12 "oracle model ($objective, train_all)" "$oracle_dir" "$oracle_conf" "$all_cuts" exp/chain_oracle

decode_and_score 13 14 "$oracle_dir"
