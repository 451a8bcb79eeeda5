#!/usr/bin/env bash
# Efficient attention on egs/mini (thesis chapter 5, tables 5.1 and 5.2): transformer acoustic
# models trained with softmax, linear, clustered and improved-clustered attention (100
# clusters), the same config, seed and epochs otherwise; each decoded with its own attention
# (WER, and the phone error rate of the same hypotheses through the lexicon), then with every
# other kind at inference, 200 clusters included (table 5.2); the seconds a step of each kind,
# on mini's utterances and on long ones (consecutive utterances joined, about 30 s), against
# softmax. Rows in exp/RESULTS.md; the speed tables in exp/attention/.
#
#   local/run_attention.sh [--stage N] [--stop-stage N] [--objective ctc|lfmmi] [options]   (from egs/mini)
#
# Needs run.sh's stages 0-7 (corpus, lang, features, den graph, word LM): ./run.sh --stop-stage 7.
# --objective ctc (the default) trains on the phones of data/lang, as the thesis's WSJ
# comparison; lfmmi on the den graph of stage 4 (exp/chain), as its Switchboard one.
set -eu
cd "$(dirname "$0")/.."
. ../../path.sh

stage=0                     # first stage to run
stop_stage=100              # last stage to run
nj=2                        # parallel jobs (two trainings side by side)
force=false                 # redo stages that are done already
objective=ctc               # ctc (phones) or lfmmi
kinds="softmax linear clustered improved-clustered"  # attention kinds trained
eval_kinds="softmax linear clustered improved-clustered clustered:200 improved-clustered:200"  # at inference (table 5.2)
train_set=train_all         # train_all (the oracle's data) or train_sup
train_conf=conf/train_attention.yaml  # transformer, train and loss sections (attention: softmax is replaced)
long_frames=3000            # long utterances: consecutive cuts joined up to this many frames
long_epochs=2               # epochs of the speed-only trainings on long utterances
train_threads=1             # torch threads of each training
beam=11.0                   # decoding beam
lm_order=3                  # word LM of run.sh's stage 7
help_message="Usage: egs/mini/local/run_attention.sh [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

[ -f data/fbank/.done.mini ] || { echo "$0: no features of egs/mini: run ./run.sh --stop-stage 7 first" >&2; exit 1; }
lm=data/local/lm_${lm_order}g.arpa
[ -f "$lm" ] || { echo "$0: no word LM $lm: run ./run.sh --stop-stage 7 first" >&2; exit 1; }
case $objective in
  ctc) topo=ctc; graph_dir=exp/attention/graph_ctc_${lm_order}g; obj_opts=(--objective ctc) ;;
  lfmmi) topo=chain; graph_dir=exp/chain/graph_${lm_order}g; obj_opts=(--objective lfmmi --den-graph exp/chain/den.pt) ;;
  *) echo "$0: --objective must be ctc or lfmmi, not '$objective'" >&2; exit 1 ;;
esac
case $train_set in
  train_sup|train_all) ;;
  *) echo "$0: --train-set must be train_sup or train_all, not '$train_set'" >&2; exit 1 ;;
esac
train=data/fbank/mini_cuts_$train_set.jsonl.gz
out=exp/attention
tag=${objective}_$train_set
graph=${lm_order}g
decode_opts=(--nj "$nj" --beam "$beam" --max-active 2000 --lattice-beam 2.0)

if stage_begin 0 "decoding graph ($topo), training cuts, long cuts, one config a kind" "$out/.done.prep_$tag"; then
  if [ "$train_set" = train_all ]; then
    stage_run combine steps/combine_cuts.sh "$train" data/fbank/mini_cuts_train_sup.jsonl.gz \
      data/fbank/mini_cuts_train_unsup.jsonl.gz
  fi
  if [ ! -f "$graph_dir/.done" ]; then
    if [ "$topo" = ctc ]; then
      stage_run graph frugal compile-graph --lang data/lang --arpa "$lm" --topo ctc --output "$graph_dir/HLG.fst"
    else
      stage_run graph frugal compile-graph --lang data/lang --arpa "$lm" --topo chain --den-graph exp/chain/den.pt \
        --output "$graph_dir/HCLG.fst"
    fi
    touch "$graph_dir/.done"
  fi
  stage_run long frugal concat-cuts --cuts "$train" --output "data/fbank/mini_cuts_${train_set}_long.jsonl.gz" \
    --storage-dir "data/fbank/mini_feats_${train_set}_long" --group 100 --max-frames "$long_frames"
  mkdir -p "$out/conf"
  for kind in $kinds; do
    grep -q '^  attention: softmax' "$train_conf" || { echo "$0: $train_conf has no '  attention: softmax' line" >&2; exit 1; }
    sed "s/^  attention: softmax.*/  attention: $kind/" "$train_conf" > "$out/conf/$kind.yaml"
    sed -e "s/^  attention: softmax.*/  attention: $kind/" -e "s/^  num_epochs: .*/  num_epochs: $long_epochs/" \
      "$train_conf" > "$out/conf/${kind}_long.yaml"
  done
  stage_end
fi

# One model a kind, two at a time; a killed training resumes.
if stage_begin 1 "transformers ($objective), attention: $kinds" "$out/.done.train_$tag"; then
  for kind in $kinds; do
    stage_run_bg "train_$kind" frugal train "${obj_opts[@]}" --train-config "$out/conf/$kind.yaml" \
      --train-cuts "$train" --lang data/lang --exp-dir "exp/transformer_${kind}_$tag" \
      --num-threads "$train_threads" $([ "$force" = true ] && echo --start-fresh)
  done
  stage_wait
  stage_end
fi

# Table 5.1: each model with its own attention; dev's LM weight for test, and the PER of the
# chosen hypotheses (the words' phones through the lexicon).
for kind in $kinds; do
  model=exp/transformer_${kind}_$tag
  if stage_begin 2 "decode and score dev, test ($(basename "$model"))" "$model/.done.decode_$graph"; then
    dev=()
    for part in dev test; do
      cuts=data/fbank/mini_cuts_$part.jsonl.gz
      dir=$model/decode_${graph}_$part
      stage_run "decode_${kind}_$part" steps/decode.sh "${decode_opts[@]}" "$graph_dir" data/lang "$cuts" "$model" "$dir"
      stage_run "score_${kind}_$part" steps/score.sh ${dev[@]+"${dev[@]}"} "$cuts" data/lang "$dir" exp/RESULTS.md \
        "$(basename "$model")" "$part" "$graph"
      setting_dir=${dev[1]:-$dir}
      lmwt=$(cat "$setting_dir/wer_details/lmwt") wip=$(cat "$setting_dir/wer_details/wip")
      stage_run "per_${kind}_$part" frugal score --ref-cuts "$cuts" --hyp "$dir/penalty_$wip/$lmwt.txt" \
        --phones-lang data/lang --out-dir "$dir/per" --results exp/RESULTS.md --model-name "$(basename "$model")" \
        --data-name "$part" --graph-name "${graph}_per"
      dev=(--dev-decode-dir "$model/decode_${graph}_dev")
    done
    stage_end
  fi
done

# Table 5.2: every model decoded (dev) with every kind at inference; Graph column 3g_att-<kind>[-<clusters>].
for kind in $kinds; do
  model=exp/transformer_${kind}_$tag
  if stage_begin 3 "dev with other attention at inference ($(basename "$model"))" "$model/.done.swap_$graph"; then
    cuts=data/fbank/mini_cuts_dev.jsonl.gz
    for ek in $eval_kinds; do
      name=${ek%%:*} clusters=100
      case $ek in *:*) clusters=${ek#*:} ;; esac
      [ "$name" = "$kind" ] && [ "$clusters" = 100 ] && continue  # table 5.1's own decode
      dir=$model/decode_${graph}_dev_att-$name-$clusters
      stage_run "decode_${kind}_as_${name}_$clusters" steps/decode.sh "${decode_opts[@]}" --attention "$name" \
        --clusters "$clusters" "$graph_dir" data/lang "$cuts" "$model" "$dir"
      stage_run "score_${kind}_as_${name}_$clusters" steps/score.sh --dev-decode-dir "$model/decode_${graph}_dev" \
        "$cuts" data/lang "$dir" exp/RESULTS.md "$(basename "$model")" dev "${graph}_att-$name-$clusters"
    done
    stage_end
  fi
done

# Seconds a step of each kind against softmax: on mini's utterances (the trainings above) and
# on long ones (long_epochs epochs each, for the speed alone, one at a time).
if stage_begin 4 "speed of each attention kind, mini's and long utterances" "$out/.done.speed_$tag"; then
  for kind in $kinds; do
    stage_run "train_long_$kind" frugal train "${obj_opts[@]}" --train-config "$out/conf/${kind}_long.yaml" \
      --train-cuts "data/fbank/mini_cuts_${train_set}_long.jsonl.gz" --lang data/lang \
      --exp-dir "$out/long_${kind}_$tag" --num-threads "$train_threads" --start-fresh
  done
  stage_run speed frugal train-speed --results "$out/speed_$tag.md" \
    $(for kind in $kinds; do echo "--exp-dir exp/transformer_${kind}_$tag"; done)
  stage_run speed_long frugal train-speed --results "$out/speed_long_$tag.md" \
    $(for kind in $kinds; do echo "--exp-dir $out/long_${kind}_$tag"; done)
  stage_end
fi
