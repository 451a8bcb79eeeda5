#!/usr/bin/env bash
# an4: the CMU census database (AN4), real close-talk speech of 74 + 10 speakers spelling
# words and saying numbers and commands. Dev is whole training speakers nobody trains on;
# the test side is prepared and decoded when the corpus directory has it. Every stage logs to
# exp/log/stage<N>_<step>.log and writes its done-marker last; --force redoes a finished stage.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs
force=false                 # redo stages that are done already
corpus_dir=${FRUGAL_SHARED:-$FRUGAL_ROOT/../shared}/data/an4  # AN4 as CMU Sphinx distributes it (wav/, etc/)
dev_utterances=100          # whole training speakers held out as dev until it has this many utterances
num_valid=40                # training utterances held out for the validation objective (0: none)
fbank_conf=conf/fbank.yaml  # feature options
fbank=data/fbank            # the features' directory: a variant goes beside it (--fbank data/fbank_cmvn)
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of train
volume_perturb=false        # random volume of train's cuts
cmvn=speaker                # statistics of frugal compute-cmvn: none, speaker or utterance (with a train conf of input_norm: none)
cmvn_opts=""                # more compute-cmvn options (--norm-vars)
context=mono                # phone context of the chain model: biphone or mono
hmm_states=1                # HMM states a phone of the chain model: 1 (Kaldi's chain topology) or 2
den_graph_opts=""           # more frugal make-den-graph options (phone LM order, silence probabilities)
sil_prob=0.5                # optional-silence probability of L.fst
lm_order=3                  # word LM order (of the training transcripts, each once)
# AN4 is a closed-vocabulary task (letters, digits, months, commands): its dictionary lists the
# task's words, which a trigram of 844 training sentences alone would never let be decoded.
lm_vocab=lexicon            # the LM's vocabulary: lexicon (the task's, etc/an4.dic) or train (the training transcripts' words)
beam=13.0                   # decoding beam
max_active=3000             # most tokens per frame in decoding
lattice_beam=4.0            # lattice beam
acoustic_scale=1.0          # decoding acoustic scale (chain: 1.0; lattices keep 10x it)
lmwt=3:17                   # LM weights of the scoring sweep (MIN:MAX)
wip=-1.0,-0.5,0.0,0.5,1.0   # word insertion penalties of the scoring sweep
train_conf=conf/train.yaml  # the model: model, train and loss sections
exp=exp/tdnnf               # the model's directory: a variant goes beside it (--exp exp/tdnnf_big)
train_threads=1             # torch threads of training (1 is steadiest on a shared machine)
help_message="Usage: egs/an4/run.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

man=data/manifests
graph=${lm_order}g
[ "$lm_vocab" = lexicon ] && graph=${lm_order}g_lex
chain=$exp/chain            # den graph and decoding graph of this model's phone context
test_opt=()                 # the test part, when the corpus has one
[ -d "$corpus_dir/wav/an4test_clstk" ] && test_opt=(test)

if stage_begin 0 "data preparation (train, dev of held-out speakers, test when present)" "$man/.done.an4" \
    "corpus_dir=$corpus_dir dev_utterances=$dev_utterances num_valid=$num_valid"; then
  [ ${#test_opt[@]} -eq 0 ] && echo "$corpus_dir has no test side (wav/an4test_clstk): train and dev only"
  stage_run prepare_data frugal prepare-data an4 --corpus-dir "$corpus_dir" --dev-utterances "$dev_utterances" \
    --output-dir "$man" --lexicon-dir data/local
  train=$man/an4_cuts_train.jsonl.gz
  if [ "$num_valid" -gt 0 ]; then  # held out of training, with their speed-perturbed copies
    stage_run hold_out frugal hold-out-cuts --cuts "$train" --num "$num_valid" --seed 1 \
      --rest "$man/an4_cuts_train_nv.jsonl.gz" --held "$man/an4_cuts_valid.jsonl.gz"
  else
    cp "$train" "$man/an4_cuts_train_nv.jsonl.gz.tmp" && mv "$man/an4_cuts_train_nv.jsonl.gz.tmp" "$man/an4_cuts_train_nv.jsonl.gz"
  fi
  stage_end
fi
parts=(train_nv dev ${test_opt[@]+"${test_opt[@]}"})
[ "$num_valid" -gt 0 ] && parts+=(valid)

if stage_begin 1 "lang" data/lang/.done "sil_prob=$sil_prob"; then
  stage_run prepare_lang frugal prepare-lang --lexicon data/local/lexicon.txt --output-dir data/lang \
    --sil-phone SIL --sil-prob "$sil_prob"
  stage_end
fi

if stage_begin 2 "fbank features" "$fbank/.done.an4" "speed_perturb=$speed_perturb volume_perturb=$volume_perturb \
cmvn=$cmvn cmvn_opts=$cmvn_opts fbank_conf=$(stage_sha "$fbank_conf") parts=${parts[*]}"; then
  for part in "${parts[@]}"; do
    perturb=()
    if [ "$part" = train_nv ]; then
      [ "$speed_perturb" = true ] && perturb+=(--speed-perturb)
      [ "$volume_perturb" = true ] && perturb+=(--volume-perturb)
    fi
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" ${perturb[@]+"${perturb[@]}"} \
      --cuts-in "$man/an4_cuts_$part.jsonl.gz" --cuts-out "$fbank/an4_cuts_$part.jsonl.gz" \
      --storage-dir "$fbank/an4_feats_$part"
    if [ "$cmvn" != none ]; then
      # shellcheck disable=SC2086  # cmvn_opts is a list of options
      stage_run "cmvn_$part" frugal compute-cmvn --per "$cmvn" $cmvn_opts --cuts-in "$fbank/an4_cuts_$part.jsonl.gz" \
        --cuts-out "$fbank/an4_cuts_$part.jsonl.gz"
    fi
  done
  stage_end
fi

# The den graph's phone LM: each training transcript once (the manifests, not the perturbed
# features). The validation utterances are in it, as in Kaldi: the phone LM is un-smoothed,
# and without them 18 of 40 have a phone n-gram it forbids, so no validation objective.
if stage_begin 3 "den graph (phone LM of train)" "$chain/.done.den" \
    "context=$context hmm_states=$hmm_states den_graph_opts=$den_graph_opts"; then
  # shellcheck disable=SC2086  # den_graph_opts is a list of options
  stage_run den_graph frugal make-den-graph --lang data/lang --context "$context" --hmm-states "$hmm_states" \
    $den_graph_opts --cuts "$man/an4_cuts_train.jsonl.gz" --output "$chain/den.pt"
  stage_end
fi

if stage_begin 4 "model ($exp)" "$exp/.done" "train_conf=$(stage_sha "$train_conf") num_valid=$num_valid"; then
  valid=()
  [ "$num_valid" -gt 0 ] && valid=(--valid-cuts "$fbank/an4_cuts_valid.jsonl.gz")
  stage_run "train_$(basename "$exp")" steps/train.sh --den-dir "$chain" --threads "$train_threads" \
    --start-fresh "$force" ${valid[@]+"${valid[@]}"} "$train_conf" data/lang "$fbank/an4_cuts_train_nv.jsonl.gz" "$exp"
  stage_end
fi

# Each training transcript once; the dev and test speakers' transcripts never.
if stage_begin 5 "word LM (order $lm_order, train transcripts, vocabulary: $lm_vocab)" "data/local/lm_$graph.arpa.done"; then
  vocab=()
  if [ "$lm_vocab" = lexicon ]; then
    cut -d' ' -f1 data/local/lexicon.txt | grep -v '^<' | sort -u > data/local/vocab.txt
    vocab=(--vocab data/local/vocab.txt)
  fi
  stage_run lm steps/make_word_lm.sh --order "$lm_order" ${vocab[@]+"${vocab[@]}"} "data/local/lm_$graph.arpa" \
    "$man/an4_cuts_train.jsonl.gz"
  # Its perplexity on dev, and the dev words it lacks (they cannot be decoded).
  stage_run lm frugal cuts-to-text --cuts "$man/an4_cuts_dev.jsonl.gz" --output "data/local/lm_$graph.arpa.dev_text"
  stage_run lm frugal lm-perplexity --arpa "data/local/lm_$graph.arpa" --text "data/local/lm_$graph.arpa.dev_text"
  stage_end
fi

if stage_begin 6 "decoding graph ($graph)" "$chain/graph_$graph/.done"; then
  stage_run graph frugal compile-graph --lang data/lang --arpa "data/local/lm_$graph.arpa" --topo chain \
    --den-graph "$chain/den.pt" --output "$chain/graph_$graph/HCLG.fst"
  stage_end
fi

if stage_begin 7 "decode dev ${test_opt[*]:-} ($exp)" "$exp/.done.decode_$graph" \
    "beam=$beam max_active=$max_active lattice_beam=$lattice_beam acoustic_scale=$acoustic_scale"; then
  for part in dev ${test_opt[@]+"${test_opt[@]}"}; do
    stage_run "decode_$part" steps/decode.sh --nj "$nj" --beam "$beam" --max-active "$max_active" \
      --lattice-beam "$lattice_beam" --acoustic-scale "$acoustic_scale" "$chain/graph_$graph" data/lang \
      "$fbank/an4_cuts_$part.jsonl.gz" "$exp" "$exp/decode_${graph}_$part"
  done
  stage_end
fi

# Test is reported at the LM weight and insertion penalty chosen on dev, as Kaldi's recipes do.
if stage_begin 8 "score dev ${test_opt[*]:-} ($exp)" "$exp/.done.score_$graph" "lmwt=$lmwt wip=$wip"; then
  dev=()
  for part in dev ${test_opt[@]+"${test_opt[@]}"}; do
    stage_run "score_$part" steps/score.sh --lmwt "$lmwt" --wip "$wip" ${dev[@]+"${dev[@]}"} \
      "$fbank/an4_cuts_$part.jsonl.gz" data/lang "$exp/decode_${graph}_$part" exp/RESULTS.md "$exp" "$part" "$graph"
    dev=(--dev-decode-dir "$exp/decode_${graph}_dev")
  done
  stage_end
fi
