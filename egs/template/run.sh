#!/usr/bin/env bash
# template: a new corpus from Kaldi data directories (wav.scp, text, utt2spk, optional segments)
# to exp/RESULTS.md, with the defaults that held up on real unseen speakers (egs/an4): dev of
# speakers the model never trains on, validation utterances held out, speed perturbation,
# per-speaker CMVN, frame-shift augmentation, the LM of the training transcripts each counted
# once, test scored at dev's LM weight. Copy this directory to egs/<corpus> (keep the steps
# link) or run it as it is:
#
#   egs/template/run.sh --train-dir /data/train --dev-dir /data/dev [--test-dir /data/test]
#
# Pronunciations: --lexicon (Kaldi's WORD p1 p2 ...), or CMUdict for English; the words it
# lacks are listed in data/lang/missing_words.txt: copy it out of data/lang (which the next run
# replaces), pronounce them, and pass the copy as --extra-lexicon (or --unk-ok true maps them to <UNK>). Every stage logs to
# exp/log/stage<N>_<step>.log and writes its done-marker last; --force redoes a finished stage.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs
force=false                 # redo stages that are done already
train_dir=""                # Kaldi data directory of the transcribed training speech (required)
dev_dir=""                  # of the dev set: speakers not in train (the LM weight is chosen on it)
test_dir=""                 # of the test set (optional)
lexicon=""                  # Kaldi lexicon of the words; empty: CMUdict
extra_lexicon=""            # with CMUdict: pronunciations of the words it lacks
unk_ok=false                # map words without pronunciation to <UNK> instead of stopping
num_valid=40                # training utterances held out for the validation objective (0: none)
fbank_conf=conf/fbank.yaml  # feature options (80 mel bins; see the file for 8 kHz audio)
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of train
cmvn=speaker                # frugal compute-cmvn statistics: speaker, utterance or none (train conf's input_norm: none)
lm_order=3                  # word LM order (of the training transcripts, each once)
beam=13.0                   # decoding beam
max_active=3000             # most tokens per frame in decoding
lattice_beam=4.0            # lattice beam
lmwt=3:17                   # LM weights of the scoring sweep (MIN:MAX)
wip=-1.0,-0.5,0.0,0.5,1.0   # word insertion penalties of the scoring sweep
train_conf=conf/train.yaml  # model, train and loss sections
exp=exp/tdnnf               # the model's directory
train_threads=1             # torch threads of training
help_message="Usage: egs/template/run.sh --train-dir DIR [--dev-dir DIR] [--test-dir DIR] [options]"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

[ -n "$train_dir" ] || { echo "$0: --train-dir is required (a Kaldi data directory)" >&2; exit 1; }
man=data/manifests
fbank=data/fbank
graph=${lm_order}g
eval_parts=()               # decoded and scored, dev first
[ -n "$dev_dir" ] && eval_parts+=(dev)
[ -n "$test_dir" ] && eval_parts+=(test)
[ ${#eval_parts[@]} -gt 0 ] || { echo "$0: give --dev-dir or --test-dir: there is nothing to decode" >&2; exit 1; }
[ -n "$dev_dir" ] || echo "$0: no --dev-dir: the LM weight and insertion penalty will be chosen on test itself" >&2
parts=(train_nv ${eval_parts[@]+"${eval_parts[@]}"})
[ "$num_valid" -gt 0 ] && parts+=(valid)

if stage_begin 0 "import the Kaldi data directories" "$man/.done" \
    "train=$train_dir dev=$dev_dir test=$test_dir num_valid=$num_valid"; then
  for part in train ${eval_parts[@]+"${eval_parts[@]}"}; do
    dir=$train_dir
    [ "$part" = dev ] && dir=$dev_dir
    [ "$part" = test ] && dir=$test_dir
    stage_run "import_$part" frugal import-kaldi-dir --kaldi-dir "$dir" --corpus data --part "$part" --output-dir "$man"
  done
  if [ "$num_valid" -gt 0 ]; then
    stage_run hold_out frugal hold-out-cuts --cuts "$man/data_cuts_train.jsonl.gz" --num "$num_valid" --seed 1 \
      --rest "$man/data_cuts_train_nv.jsonl.gz" --held "$man/data_cuts_valid.jsonl.gz"
  else
    cp "$man/data_cuts_train.jsonl.gz" "$man/data_cuts_train_nv.jsonl.gz.tmp"
    mv "$man/data_cuts_train_nv.jsonl.gz.tmp" "$man/data_cuts_train_nv.jsonl.gz"
  fi
  stage_run train_text frugal cuts-to-text --cuts "$man/data_cuts_train.jsonl.gz" --output data/local/train_text
  stage_end
fi

# The lexicon covers the training words; dev and test words it lacks cannot be decoded (stage 5
# names them).
if stage_begin 1 "lang" data/lang/.done "lexicon=$lexicon extra_lexicon=$extra_lexicon unk_ok=$unk_ok"; then
  opts=(--cmudict --words-from data/local/train_text)
  [ -n "$lexicon" ] && opts=(--lexicon "$lexicon" --words-from data/local/train_text)
  [ -n "$extra_lexicon" ] && opts+=(--extra-lexicon "$extra_lexicon")
  [ "$unk_ok" = true ] && opts+=(--unk-ok)
  stage_run prepare_lang frugal prepare-lang "${opts[@]}" --output-dir data/lang --sil-phone SIL
  stage_end
fi

if stage_begin 2 "fbank features and CMVN" "$fbank/.done" \
    "speed_perturb=$speed_perturb cmvn=$cmvn fbank_conf=$(stage_sha "$fbank_conf") parts=${parts[*]}"; then
  for part in "${parts[@]}"; do
    perturb=()
    [ "$part" = train_nv ] && [ "$speed_perturb" = true ] && perturb=(--speed-perturb)
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" ${perturb[@]+"${perturb[@]}"} \
      --cuts-in "$man/data_cuts_$part.jsonl.gz" --cuts-out "$fbank/data_cuts_$part.jsonl.gz" \
      --storage-dir "$fbank/data_feats_$part"
    if [ "$cmvn" != none ]; then
      stage_run "cmvn_$part" frugal compute-cmvn --per "$cmvn" --cuts-in "$fbank/data_cuts_$part.jsonl.gz" \
        --cuts-out "$fbank/data_cuts_$part.jsonl.gz"
    fi
  done
  stage_end
fi

# The den graph's phone LM of the training transcripts, each once (validation ones included:
# the phone LM is un-smoothed, so their objective needs their phone n-grams).
if stage_begin 3 "den graph" "$exp/chain/.done.den"; then
  stage_run den_graph frugal make-den-graph --lang data/lang --context mono --cuts "$man/data_cuts_train.jsonl.gz" \
    --output "$exp/chain/den.pt"
  stage_end
fi

if stage_begin 4 "model ($exp)" "$exp/.done" "train_conf=$(stage_sha "$train_conf") num_valid=$num_valid"; then
  valid=()
  [ "$num_valid" -gt 0 ] && valid=(--valid-cuts "$fbank/data_cuts_valid.jsonl.gz")
  stage_run "train_$(basename "$exp")" steps/train.sh --den-dir "$exp/chain" --threads "$train_threads" \
    --start-fresh "$force" ${valid[@]+"${valid[@]}"} "$train_conf" data/lang "$fbank/data_cuts_train_nv.jsonl.gz" "$exp"
  stage_end
fi

if stage_begin 5 "word LM (order $lm_order, the training transcripts)" "data/local/lm_$graph.arpa.done"; then
  stage_run lm steps/make_word_lm.sh --order "$lm_order" "data/local/lm_$graph.arpa" "$man/data_cuts_train.jsonl.gz"
  for part in ${eval_parts[@]+"${eval_parts[@]}"}; do  # perplexity, and the words the LM lacks
    stage_run lm frugal cuts-to-text --cuts "$man/data_cuts_$part.jsonl.gz" --output "data/local/${part}_text"
    stage_run lm frugal lm-perplexity --arpa "data/local/lm_$graph.arpa" --text "data/local/${part}_text"
  done
  stage_end
fi

if stage_begin 6 "decoding graph ($graph)" "$exp/chain/graph_$graph/.done"; then
  stage_run graph frugal compile-graph --lang data/lang --arpa "data/local/lm_$graph.arpa" --topo chain \
    --den-graph "$exp/chain/den.pt" --output "$exp/chain/graph_$graph/HCLG.fst"
  stage_end
fi

if stage_begin 7 "decode ${eval_parts[*]} ($exp)" "$exp/.done.decode_$graph" \
    "beam=$beam max_active=$max_active lattice_beam=$lattice_beam"; then
  for part in "${eval_parts[@]}"; do
    stage_run "decode_$part" steps/decode.sh --nj "$nj" --beam "$beam" --max-active "$max_active" \
      --lattice-beam "$lattice_beam" "$exp/chain/graph_$graph" data/lang "$fbank/data_cuts_$part.jsonl.gz" "$exp" \
      "$exp/decode_${graph}_$part"
  done
  stage_end
fi

if stage_begin 8 "score ${eval_parts[*]} ($exp)" "$exp/.done.score_$graph" "lmwt=$lmwt wip=$wip"; then
  dev=()
  for part in "${eval_parts[@]}"; do  # test at the dev set's best setting
    stage_run "score_$part" steps/score.sh --lmwt "$lmwt" --wip "$wip" ${dev[@]+"${dev[@]}"} \
      "$fbank/data_cuts_$part.jsonl.gz" data/lang "$exp/decode_${graph}_$part" exp/RESULTS.md "$exp" "$part" "$graph"
    [ "$part" = dev ] && dev=(--dev-decode-dir "$exp/decode_${graph}_dev")
  done
  stage_end
fi
