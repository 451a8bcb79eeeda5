#!/usr/bin/env bash
# Transducers on egs/mini (companion talk on memory-efficient transducers; spec section 4):
# the same model trained for the same steps with the pruned RNN-T loss (simple loss, pruning
# bounds from its occupations, the full joiner inside the band, icefall's warm-up) and with
# the full RNN-T loss; each decoded with greedy search, modified beam search (beam 4) and
# beam search with a token n-gram LM by shallow fusion at each LM scale; rows in
# exp/RESULTS.md beside the LF-MMI models of run.sh, and the training speed of the two losses
# in exp/transducer_speed.md.
#
#   local/run_transducer.sh [--stage N] [--stop-stage N] [options]   (from egs/mini)
#
# Needs run.sh's stages 0-3 (corpus, lang, features): ./run.sh --stop-stage 3.
set -eu
cd "$(dirname "$0")/.."
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs (the two trainings run side by side)
force=false                 # redo stages that are done already
unit=char                   # units: char, or bpe (--vocab-size pieces)
vocab_size=100              # BPE pieces (with <blk>, <sos/eos>, <unk>)
train_set=train_all         # train_all (train_sup + train_unsup with true transcripts: the oracle's data) or train_sup (the seed's)
train_conf=conf/train_transducer.yaml  # model (encoder, predictor, joiner), train and loss sections
train_threads=1             # torch threads of each training
beam=4                      # modified beam search: hypotheses kept
nbest=4                     # hypotheses written an utterance
lm_order=6                  # token n-gram LM of shallow fusion
lm_scales="0.3 0.6"         # its weights (a row each)
help_message="Usage: egs/mini/local/run_transducer.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

[ -f data/fbank/.done.mini ] || { echo "$0: no features of egs/mini: run ./run.sh --stop-stage 3 first" >&2; exit 1; }
case $unit in
  char) units=char ;;
  bpe) units=bpe$vocab_size ;;
  *) echo "$0: --unit must be char or bpe, not '$unit'" >&2; exit 1 ;;
esac
case $train_set in
  train_sup|train_all) ;;
  *) echo "$0: --train-set must be train_sup or train_all, not '$train_set'" >&2; exit 1 ;;
esac
train=data/fbank/mini_cuts_$train_set.jsonl.gz
lang=data/lang_$units
lm=data/local/lm_${units}_${lm_order}g.arpa
tag=${units}_$train_set
kinds="pruned full"

if stage_begin 0 "$units units of the train_sup transcripts ($train_set cuts)" "$lang/.done.$train_set"; then
  if [ "$train_set" = train_all ]; then
    stage_run combine steps/combine_cuts.sh "$train" data/fbank/mini_cuts_train_sup.jsonl.gz \
      data/fbank/mini_cuts_train_unsup.jsonl.gz
  fi
  stage_run text frugal cuts-to-text --cuts data/manifests/mini_cuts_train_sup.jsonl.gz \
    --output data/local/text_train_sup
  stage_run units frugal prepare-units --text data/local/text_train_sup --unit "$unit" --vocab-size "$vocab_size" \
    --output-dir "$lang"
  stage_end
fi

# The same config, seed and steps; only the loss differs. A killed training resumes.
if stage_begin 1 "transducers: pruned and full RNN-T loss ($train_conf)" "exp/.done.transducer_train_$tag"; then
  for kind in $kinds; do
    stage_run_bg "train_transducer_$kind" frugal train --objective transducer --rnnt-loss "$kind" \
      --train-config "$train_conf" --train-cuts "$train" --lang "$lang" --exp-dir "exp/transducer_${kind}_$tag" \
      --num-threads "$train_threads" $([ "$force" = true ] && echo --start-fresh)
  done
  stage_wait
  stage_end
fi

# The word LM's text (train_sup transcripts and the corpus's LM text) spelled in the units.
if stage_begin 2 "token LM (order $lm_order) for shallow fusion" "$lm.done"; then
  stage_run token_lm steps/make_word_lm.sh --order "$lm_order" --units-lang "$lang" "$lm" \
    data/manifests/mini_cuts_train_sup.jsonl.gz data/local/lm_text.txt
  touch "$lm.done"
  stage_end
fi

# Graph column: the search (greedy; greedy_sym2, up to 2 symbols a frame; beam4; beam4_lm6g_0.3, ...).
searches="greedy greedy_sym2 beam$beam"
for s in $lm_scales; do searches="$searches beam${beam}_lm${lm_order}g_$s"; done
for kind in $kinds; do
  model=exp/transducer_${kind}_$tag
  if stage_begin 3 "decode and score dev, test ($(basename "$model"))" "$model/.done.decode"; then
    for part in dev test; do
      cuts=data/fbank/mini_cuts_$part.jsonl.gz
      for search in $searches; do
        opts=(--method modified_beam_search --beam "$beam" --nbest "$nbest")
        case $search in
          greedy) opts=(--method greedy) ;;
          greedy_sym2) opts=(--method greedy --max-sym-per-frame 2) ;;
          *_lm*) opts+=(--lm "$lm" --lm-scale "${search##*_}") ;;
        esac
        dir=$model/decode_${search}_$part
        stage_run "decode_${kind}_${search}_$part" frugal decode-transducer --model "$model/final.pt" --lang "$lang" \
          --cuts "$cuts" --output-dir "$dir" "${opts[@]}"
        stage_run "score_${kind}_${search}_$part" frugal score --ref-cuts "$cuts" --hyp "$dir/hyp.txt" \
          --out-dir "$dir" --results exp/RESULTS.md --model-name "$(basename "$model")" --data-name "$part" \
          --graph-name "$search"
      done
    done
    stage_end
  fi
done

# Seconds a step and frames a second of each training, from its log (one line an epoch).
if stage_begin 4 "training speed of the two losses" "exp/.done.transducer_speed_$tag"; then
  stage_run speed frugal train-speed --results "exp/transducer_speed_$tag.md" \
    $(for kind in $kinds; do echo "--exp-dir exp/transducer_${kind}_$tag"; done)
  stage_end
fi
