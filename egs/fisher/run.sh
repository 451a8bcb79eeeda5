#!/usr/bin/env bash
# Fisher English (the thesis's chapter 3): speaker-disjoint supervised (50 h) and unsupervised
# (250 h) subsets, dev, test. Stages 1-3 prepare the data, 4-10 train and decode the seed model,
# 11-14 the oracle (all training data with true transcripts), 15-21 semi-supervised LF-MMI with
# dropout-sampled supervision lattices, as egs/mini runs them end to end (there is no Fisher
# audio on the development machines; stages 1-3 are tested on fixtures in the distribution's
# layout). Every stage logs to exp/log/stage<N>_<step>.log and writes its done-marker last.
set -eu
cd "$(dirname "$0")"
. ../../path.sh

stage=1                     # first stage to run
stop_stage=100              # last stage to run
nj=4                        # parallel jobs
force=false                 # redo stages that are done already
corpus_dir=                 # the corpus as distributed (required for stage 1)
sup_hours=50.0              # supervised subset, hours (by speaker)
unsup_hours=250.0           # unsupervised subset, hours (by speaker)
dev_hours=5.0               # dev set, hours (by speaker)
test_hours=5.0              # test set, hours (by speaker)
audio_dirs="LDC2004S13 LDC2005S13"        # audio releases under --corpus-dir
transcript_dirs="LDC2004T19 LDC2005T19"   # transcript releases under --corpus-dir
speed_perturb=true          # 3-way speed perturbation (0.9/1.0/1.1) of training data
fbank_conf=conf/fbank.yaml  # feature options
objective=lfmmi             # seed model objective: lfmmi or ctc (CTC stops after stage 14)
context=biphone             # phone context of the chain model: biphone or mono
hmm_states=1                # HMM states a phone of the chain model: 1 (Kaldi's chain topology) or 2
den_graph_opts=""           # more frugal make-den-graph options (phone LM order, silence probabilities)
lm_order=4                  # word LM order (train_sup transcripts)
beam=15.0                   # decoding beam
max_active=7000             # most tokens per frame in decoding
lattice_beam=8.0            # lattice beam
acoustic_scale=1.0          # decoding acoustic scale (lattices keep 10x it)
train_conf=conf/train.yaml  # seed model (tdnnf-s): model, train and loss sections
oracle_conf=conf/train_oracle.yaml    # oracle model (sup + unsup, true transcripts)
semisup_conf=conf/train_semisup.yaml  # semi-supervised models (continue from the seed)
num_dropout_samples=4       # N: Monte-Carlo dropout decodings besides the dropout-off one
dropout_proportion=0.1      # dropout proportion of those decodings
dropout_seed=1              # seed of their dropout masks (and of the neural LM)
curve_samples="1 2"         # further N of the dev WER vs N curve (AM combination)
unsup_beam=15.0             # search of train_unsup
unsup_max_active=7000
sup_beam=4.0                # pruning beam of the supervision lattices
nnlm_layers=3               # temporal-convolution layers of the neural word LM
num_valid=300               # train_sup cuts held out for the validation objective
train_threads=0             # torch threads of training (0: torch's choice)
seed=0                      # (reported with the results)
help_message="Usage: egs/fisher/run.sh --corpus-dir DIR [options]   (stages are listed in this file)"
. "$FRUGAL_ROOT/tools/parse_options.sh"
. "$FRUGAL_ROOT/tools/stage_lib.sh"

sup=data/fbank/fisher_cuts_train_sup.jsonl.gz     # transcribed training cuts (features)
unsup=data/fbank/fisher_cuts_train_unsup.jsonl.gz # untranscribed (their texts are only ever reported against)
seed_dir=exp/tdnnf_seed
oracle_dir=exp/tdnnf_oracle
[ "$objective" = ctc ] && seed_dir=exp/tdnnf_seed_ctc && oracle_dir=exp/tdnnf_oracle_ctc
graph=${lm_order}g
graph_dir=exp/chain/graph_$graph
[ "$objective" = ctc ] && graph_dir=exp/ctc/graph_$graph
decode_opts=(--nj "$nj" --beam "$beam" --max-active "$max_active" --lattice-beam "$lattice_beam"
             --acoustic-scale "$acoustic_scale")
dropout_opts=(--dropout-samples "$num_dropout_samples" --dropout-proportion "$dropout_proportion"
              --dropout-seed "$dropout_seed" --batch-size 10)
train_opts=(--objective "$objective" --num-valid "$num_valid" --threads "$train_threads" --start-fresh "$force")
den_opts=(--lang data/lang --context "$context" --hmm-states "$hmm_states")

if stage_begin 1 "data preparation (lhotse manifests)" data/manifests/.done.fisher; then
  [ -n "$corpus_dir" ] || { echo "$0: --corpus-dir is required for stage 1" >&2; exit 1; }
  # shellcheck disable=SC2086  # lists of directories
  stage_run prepare_data frugal prepare-data fisher --corpus-dir "$corpus_dir" --output-dir data/manifests \
    --lexicon-dir data/local --sup-hours "$sup_hours" --unsup-hours "$unsup_hours" --dev-hours "$dev_hours" \
    --test-hours "$test_hours" --audio-dirs $audio_dirs --transcript-dirs $transcript_dirs
  stage_end
fi

if stage_begin 2 "lang (CMUdict)" data/lang/.done; then
  stage_run prepare_lang frugal prepare-lang --cmudict --word-list data/local/words.txt --output-dir data/lang \
    --sil-phone SIL --oov "<UNK>"
  stage_end
fi

if stage_begin 3 "fbank features (training parts speed-perturbed: $speed_perturb)" data/fbank/.done.fisher; then
  for part in train_sup train_unsup dev test; do
    perturb=()
    case $part in train*) [ "$speed_perturb" = true ] && perturb=(--speed-perturb) ;; esac
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" ${perturb[@]+"${perturb[@]}"} \
      --cuts-in "data/manifests/fisher_cuts_$part.jsonl.gz" --cuts-out "data/fbank/fisher_cuts_$part.jsonl.gz" \
      --storage-dir "data/fbank/fisher_feats_$part"
  done
  stage_end
fi

# ------------------------------------------------------------------- seed model
if stage_begin 4 "den graph (phone LM of train_sup)" exp/chain/.done; then
  # shellcheck disable=SC2086  # den_graph_opts is a list of options
  stage_run den_graph frugal make-den-graph "${den_opts[@]}" $den_graph_opts \
    --cuts data/manifests/fisher_cuts_train_sup.jsonl.gz --output exp/chain/den.pt
  stage_end
fi

if stage_begin 5 "seed model ($objective)" "$seed_dir/.done"; then
  stage_run "train_$(basename "$seed_dir")" steps/train.sh "${train_opts[@]}" --den-dir exp/chain \
    "$train_conf" data/lang "$sup" "$seed_dir"
  stage_end
fi

if [ "$objective" = lfmmi ] && stage_begin 6 "align train_sup with the seed model" "$seed_dir/.done.ali"; then
  stage_run align steps/align.sh --nj "$nj" "$seed_dir" data/lang exp/chain "$sup" "$seed_dir/ali_train_sup"
  stage_end
fi

# The word LM: train_sup transcripts; never train_unsup's, which would make its decodes (the
# semi-supervised supervision) nearly perfect.
if stage_begin 7 "word LM (order $lm_order)" "data/local/lm_$graph.arpa.done"; then
  stage_run lm steps/make_word_lm.sh --order "$lm_order" "data/local/lm_$graph.arpa" \
    data/manifests/fisher_cuts_train_sup.jsonl.gz
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

# The seed's decodes carry N dropout samples (the uncertainty report of stage 16); the N + 1
# passes of an utterance are searched together, 10 utterance-passes a batch.
if stage_begin 9 "decode dev, test ($(basename "$seed_dir"), $num_dropout_samples dropout samples)" \
    "$seed_dir/.done.decode_$graph"; then
  for part in dev test; do
    stage_run "decode_$part" steps/decode.sh "${decode_opts[@]}" "${dropout_opts[@]}" "$graph_dir" data/lang \
      "data/fbank/fisher_cuts_$part.jsonl.gz" "$seed_dir" "$seed_dir/decode_${graph}_$part"
  done
  stage_end
fi

# Test is reported at the LM weight and insertion penalty chosen on dev, as Kaldi's recipes do.
if stage_begin 10 "score dev, test ($(basename "$seed_dir"))" "$seed_dir/.done.score_$graph"; then
  dev=()
  for part in dev test; do  # test at the dev set's best setting
    stage_run "score_$part" steps/score.sh ${dev[@]+"${dev[@]}"} "data/fbank/fisher_cuts_$part.jsonl.gz" data/lang \
      "$seed_dir/decode_${graph}_$part" exp/RESULTS.md "$(basename "$seed_dir")" "$part" "$graph"
    dev=(--dev-decode-dir "$seed_dir/decode_${graph}_dev")
  done
  stage_end
fi

# ---------------------------------------------------- oracle: the upper bound
if stage_begin 11 "oracle data (train_sup + train_unsup, true transcripts) and den graph" exp/chain_oracle/.done; then
  stage_run combine steps/combine_cuts.sh data/fbank/fisher_cuts_train_all.jsonl.gz "$sup" "$unsup"
  # shellcheck disable=SC2086
  stage_run den_graph frugal make-den-graph "${den_opts[@]}" $den_graph_opts \
    --cuts data/fbank/fisher_cuts_train_all.jsonl.gz --output exp/chain_oracle/den.pt
  stage_end
fi

if stage_begin 12 "oracle model ($objective, train_all)" "$oracle_dir/.done"; then
  stage_run "train_$(basename "$oracle_dir")" steps/train.sh "${train_opts[@]}" --den-dir exp/chain_oracle \
    "$oracle_conf" data/lang data/fbank/fisher_cuts_train_all.jsonl.gz "$oracle_dir"
  stage_end
fi

if stage_begin 13 "decode dev, test ($(basename "$oracle_dir"))" "$oracle_dir/.done.decode_$graph"; then
  for part in dev test; do
    stage_run "decode_$part" steps/decode.sh "${decode_opts[@]}" "$graph_dir" data/lang \
      "data/fbank/fisher_cuts_$part.jsonl.gz" "$oracle_dir" "$oracle_dir/decode_${graph}_$part"
  done
  stage_end
fi

if stage_begin 14 "score dev, test ($(basename "$oracle_dir"))" "$oracle_dir/.done.score_$graph"; then
  dev=()
  for part in dev test; do  # test at the dev set's best setting
    stage_run "score_$part" steps/score.sh ${dev[@]+"${dev[@]}"} "data/fbank/fisher_cuts_$part.jsonl.gz" data/lang \
      "$oracle_dir/decode_${graph}_$part" exp/RESULTS.md "$(basename "$oracle_dir")" "$part" "$graph"
    dev=(--dev-decode-dir "$oracle_dir/decode_${graph}_dev")
  done
  stage_end
fi

if [ "$objective" != lfmmi ]; then
  [ "$stop_stage" -ge 15 ] && echo "stages 15-21 (semi-supervised LF-MMI) need --objective lfmmi: stopping after stage 14"
  exit 0
fi

# ------------------------------------------- semi-supervised LF-MMI (thesis ch. 3)
unsup_decode=$seed_dir/decode_${graph}_train_unsup
kinds="regular am lm am_lm"
curve_kinds=""
for n in $curve_samples; do curve_kinds="$curve_kinds am_n$n"; done

if stage_begin 15 "dropout decode of train_unsup ($num_dropout_samples samples)" "$seed_dir/.done.decode_unsup"; then
  stage_run decode_train_unsup steps/decode.sh "${decode_opts[@]}" "${dropout_opts[@]}" --beam "$unsup_beam" \
    --max-active "$unsup_max_active" "$graph_dir" data/lang "$unsup" "$seed_dir" "$unsup_decode"
  stage_end
fi

if stage_begin 16 "uncertainty report of the seed's dev, test decodes (tables 3.2, 3.3)" "$seed_dir/.done.uncertainty"; then
  stage_run uncertainty frugal uncertainty-report --words data/lang/words.txt --top-k "$num_dropout_samples" \
    --set "dev:$seed_dir/decode_${graph}_dev:data/fbank/fisher_cuts_dev.jsonl.gz" \
    --set "test:$seed_dir/decode_${graph}_test:data/fbank/fisher_cuts_test.jsonl.gz" --output "$seed_dir/uncertainty.md"
  stage_end
fi

if stage_begin 17 "semi-supervised data: unsup 1-best texts, den graph (sup 1.5, unsup 1.0)" exp/chain_semisup/.done; then
  stage_run set_texts frugal set-cut-texts --cuts "$unsup" --text "$unsup_decode" \
    --output data/fbank/fisher_cuts_train_unsup_1best.jsonl.gz
  # shellcheck disable=SC2086
  stage_run den_graph frugal make-den-graph "${den_opts[@]}" $den_graph_opts --output exp/chain_semisup/den.pt \
    --cuts data/manifests/fisher_cuts_train_sup.jsonl.gz:1.5 data/fbank/fisher_cuts_train_unsup_1best.jsonl.gz:1.0
  stage_run combine steps/combine_cuts.sh data/fbank/fisher_cuts_semisup.jsonl.gz "$sup" \
    data/fbank/fisher_cuts_train_unsup_1best.jsonl.gz
  stage_end
fi

# regular: the dropout-off lattice; am: with the N dropout lattices (am_nK: the first K);
# lm: with N rescorings by the neural LM under dropout; am_lm: with the N dropout lattices,
# each rescored by its own neural-LM dropout sample. Every other lattice is rescored by the
# neural LM with dropout off (thesis table 3.5). Table 3.4: their N-best WER and SER.
if stage_begin 18 "supervision lattices ($kinds$curve_kinds) and their N-best error rates" exp/semisup/.done; then
  stage_run train_nnlm steps/train_nnlm.sh --layers "$nnlm_layers" --seed "$dropout_seed" data/lang \
    "data/local/lm_$graph.arpa.text" data/fbank/fisher_cuts_dev.jsonl.gz exp/semisup/nnlm
  lm_opts=(--nnlm exp/semisup/nnlm/model.pt --old-lm "data/local/lm_$graph.arpa" --words data/lang/words.txt
           --seed "$dropout_seed")
  report=()
  for kind in $kinds $curve_kinds; do
    opts=(--kind "${kind%_n*}" --beam "$sup_beam" --nj "$nj" "${lm_opts[@]}")
    case $kind in am_n*) opts+=(--num-samples "${kind#am_n}") ;; esac
    stage_run "sup_$kind" frugal make-supervision "${opts[@]}" --decode-dir "$unsup_decode" \
      --output-dir "exp/semisup/sup_$kind"
    report+=(--kind "$kind:exp/semisup/sup_$kind")
  done
  stage_run supervision_report frugal supervision-report "${report[@]}" --cuts "$unsup" --words data/lang/words.txt \
    --nbest "$num_dropout_samples" --acoustic-scale 0.1 --output exp/semisup/supervision.md
  stage_end
fi

# LF-MMI from the seed on sup (transcripts) + unsup (supervision lattices), one model per
# kind, $nj at a time; a model whose final.pt exists is done (a killed one resumes).
if stage_begin 19 "semi-supervised LF-MMI ($kinds$curve_kinds)" exp/.done.semisup_train; then
  for kind in $kinds $curve_kinds; do
    [ "$force" != true ] && [ -f "exp/tdnnf_semisup_$kind/final.pt" ] && continue
    stage_run_bg "train_semisup_$kind" steps/train.sh "${train_opts[@]}" --den-dir exp/chain_semisup \
      --init-model "$seed_dir/final.pt" --supervision "exp/semisup/sup_$kind" \
      "$semisup_conf" data/lang data/fbank/fisher_cuts_semisup.jsonl.gz "exp/tdnnf_semisup_$kind"
  done
  stage_wait
  stage_end
fi

# Dev and test for the four kinds; dev only for the curve's extra models.
for kind in $kinds $curve_kinds; do
  model=exp/tdnnf_semisup_$kind
  parts="dev test"
  case " $curve_kinds " in *" $kind "*) parts=dev ;; esac
  if stage_begin 20 "decode $parts ($(basename "$model"))" "$model/.done.decode_$graph"; then
    for part in $parts; do
      stage_run "decode_${kind}_$part" steps/decode.sh "${decode_opts[@]}" "$graph_dir" data/lang \
        "data/fbank/fisher_cuts_$part.jsonl.gz" "$model" "$model/decode_${graph}_$part"
    done
    stage_end
  fi
  if stage_begin 20 "score $parts ($(basename "$model"))" "$model/.done.score_$graph"; then
    dev=()
    for part in $parts; do
      stage_run "score_${kind}_$part" steps/score.sh ${dev[@]+"${dev[@]}"} "data/fbank/fisher_cuts_$part.jsonl.gz" \
        data/lang "$model/decode_${graph}_$part" exp/RESULTS.md "$(basename "$model")" "$part" "$graph"
      dev=(--dev-decode-dir "$model/decode_${graph}_dev")
    done
    stage_end
  fi
done

if stage_begin 21 "semi-supervised results (table 3.5, dev WER vs N)" exp/semisup/.done.results; then
  curve=(--curve "0:exp/tdnnf_semisup_regular/decode_$graph")
  for n in $curve_samples; do curve+=(--curve "$n:exp/tdnnf_semisup_am_n$n/decode_$graph"); done
  curve+=(--curve "$num_dropout_samples:exp/tdnnf_semisup_am/decode_$graph")
  stage_run results frugal semisup-results --results exp/RESULTS.md --dev dev --test test \
    --row "Supervised only:$seed_dir/decode_$graph" \
    --row "Regular lattice:exp/tdnnf_semisup_regular/decode_$graph" \
    --row "Combination w.r.t. AM:exp/tdnnf_semisup_am/decode_$graph" \
    --row "Combination w.r.t. LM:exp/tdnnf_semisup_lm/decode_$graph" \
    --row "Combination w.r.t. AM+LM:exp/tdnnf_semisup_am_lm/decode_$graph" \
    --row "Oracle:$oracle_dir/decode_$graph" "${curve[@]}" --plot exp/semisup/wer_vs_n.png \
    --notes "corpus seed $seed, seed model $(basename "$seed_dir"), N=$num_dropout_samples dropout samples at proportion $dropout_proportion (seed $dropout_seed), decoding beam $beam, lattice beam $lattice_beam, supervision-lattice beam $sup_beam; tables 3.2-3.4: $seed_dir/uncertainty.md, exp/semisup/supervision.md"
  stage_end
fi
