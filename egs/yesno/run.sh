#!/usr/bin/env bash
# yesno: the 60-file yes/no corpus (8 words a file), Kaldi's and icefall's smoke test.
# Every stage logs to exp/log/stage<N>_<step>.log and writes its done-marker last; --force
# redoes a finished stage.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=1                        # parallel jobs (yesno is so small that a second process costs more than it saves)
force=false                 # redo stages that are done already
corpus_dir=$FRUGAL_ROOT/../shared/data/yesno   # directory of the 60 .wav files
# The defaults below (Kaldi's split, optional silence 0.9, bigram den-graph phone LM, acoustic
# scale 0.2) give 0.00% test WER for training seeds 1-6 and 0.43% for 7-8 (RESULTS.md); with
# icefall's split one test file holds 7 words for the 8 of its name.
split=kaldi                 # kaldi (first 31 sorted files train, 29 test; Kaldi's) or icefall (alternate, 30/30)
fbank_conf=conf/fbank.yaml  # feature options
speed_perturb=false         # 3-way speed perturbation (0.9/1.0/1.1) of train
objective=lfmmi             # seed model objective: lfmmi or ctc
context=mono                # phone context of the chain model: biphone or mono
# Two HMM states a phone: each word is one phone, so at least 2 output frames = 60 ms a word.
hmm_states=2                # HMM states a phone of the chain model: 1 (Kaldi's chain topology) or 2
den_graph_opts="--ngram-order 2 --no-prune-ngram-order 2"   # more frugal make-den-graph options: a bigram phone LM
sil_prob=0.9                # optional-silence probability of L.fst (Kaldi's default is 0.5)
lm_order=1                  # word LM order
beam=15.0                   # decoding beam
acoustic_scale=0.2          # decoding acoustic scale (lattices get 10x it, so LM weights 7-17 bracket it; chain: 1.0)
lattice_beam=2.0            # lattice beam (word-lattice determinisation is slow for wide beams)
train_conf=conf/train.yaml  # seed model: model, train and loss sections
num_valid=0                 # train cuts held out for the validation objective
train_threads=1             # torch threads of training (1 is steadiest on a shared machine)
help_message="Usage: egs/yesno/run.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

seed_dir=exp/tdnnf_seed
graph_dir=exp/chain/graph_${lm_order}g
if [ "$objective" = ctc ]; then seed_dir=exp/tdnnf_seed_ctc; graph_dir=exp/ctc/graph_${lm_order}g; fi
graph=${lm_order}g

if stage_begin 0 "download yesno" data/.done.download; then
  if [ -n "$(ls "$corpus_dir"/*.wav 2>/dev/null)" ]; then
    echo "corpus found in $corpus_dir: nothing to download"
  else
    stage_run download frugal prepare-data yesno --download --corpus-dir "$corpus_dir"
  fi
  stage_end
fi

if stage_begin 1 "data preparation (lhotse manifests, $split split)" data/manifests/.done.yesno; then
  stage_run prepare_data frugal prepare-data yesno --corpus-dir "$corpus_dir" --split "$split" \
    --output-dir data/manifests --lexicon-dir data/local
  stage_end
fi

if stage_begin 2 "lang" data/lang/.done; then
  stage_run prepare_lang frugal prepare-lang --lexicon data/local/lexicon.txt --output-dir data/lang \
    --sil-phone SIL --sil-prob "$sil_prob"
  stage_end
fi

if stage_begin 3 "fbank features" data/fbank/.done.yesno; then
  for part in train test; do
    perturb=()
    [ "$part" = train ] && [ "$speed_perturb" = true ] && perturb=(--speed-perturb)
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" ${perturb[@]+"${perturb[@]}"} \
      --cuts-in "data/manifests/yesno_cuts_$part.jsonl.gz" --cuts-out "data/fbank/yesno_cuts_$part.jsonl.gz" \
      --storage-dir "data/fbank/yesno_feats_$part"
  done
  stage_end
fi

if stage_begin 4 "den graph (phone LM of train)" exp/chain/.done; then
  # shellcheck disable=SC2086  # den_graph_opts is a list of options
  stage_run den_graph frugal make-den-graph --lang data/lang --context "$context" --hmm-states "$hmm_states" \
    $den_graph_opts --cuts data/manifests/yesno_cuts_train.jsonl.gz --output exp/chain/den.pt
  stage_end
fi

if stage_begin 5 "seed model ($objective)" "$seed_dir/.done"; then
  stage_run "train_$(basename "$seed_dir")" steps/train.sh --objective "$objective" --den-dir exp/chain \
    --num-valid "$num_valid" --threads "$train_threads" --start-fresh "$force" \
    "$train_conf" data/lang data/fbank/yesno_cuts_train.jsonl.gz "$seed_dir"
  stage_end
fi

if [ "$objective" = lfmmi ] && stage_begin 6 "align train with the seed model" "$seed_dir/.done.ali"; then
  stage_run align steps/align.sh --nj "$nj" "$seed_dir" data/lang exp/chain data/fbank/yesno_cuts_train.jsonl.gz \
    "$seed_dir/ali_train"
  stage_end
fi

if stage_begin 7 "word LM (order $lm_order)" "data/local/lm_$graph.arpa.done"; then
  stage_run lm steps/make_word_lm.sh --order "$lm_order" "data/local/lm_$graph.arpa" data/manifests/yesno_cuts_train.jsonl.gz
  stage_end
fi

if stage_begin 8 "decoding graph ($graph)" "$graph_dir/.done"; then
  if [ "$objective" = lfmmi ]; then  # the den graph's phone context and HMM states
    stage_run graph frugal compile-graph --lang data/lang --arpa "data/local/lm_$graph.arpa" --topo chain \
      --den-graph exp/chain/den.pt --output "$graph_dir/HCLG.fst"
  else
    stage_run graph frugal compile-graph --lang data/lang --arpa "data/local/lm_$graph.arpa" --topo ctc \
      --output "$graph_dir/HLG.fst"
  fi
  stage_end
fi

if stage_begin 9 "decode test ($(basename "$seed_dir"))" "$seed_dir/.done.decode_$graph"; then
  stage_run decode_test steps/decode.sh --nj "$nj" --beam "$beam" --lattice-beam "$lattice_beam" \
    --acoustic-scale "$acoustic_scale" "$graph_dir" data/lang data/fbank/yesno_cuts_test.jsonl.gz "$seed_dir" \
    "$seed_dir/decode_${graph}_test"
  stage_end
fi

if stage_begin 10 "score test ($(basename "$seed_dir"))" "$seed_dir/.done.score_$graph"; then
  stage_run score_test steps/score.sh data/fbank/yesno_cuts_test.jsonl.gz data/lang "$seed_dir/decode_${graph}_test" \
    exp/RESULTS.md "$(basename "$seed_dir")" test "$graph"
  stage_end
fi
