# Semi-supervised LF-MMI stages (thesis ch. 3): Monte-Carlo dropout decoding of the
# unsupervised audio, supervision lattices of four kinds, semi-supervised training from the
# seed model, and the thesis's tables. Sourced by egs/<corpus>/run.sh after decode_stages.sh
# (and after the oracle, whose decode row the tables compare with).
# The recipe sets, besides what seed_stages.sh and decode_stages.sh need:
#   unsup_cuts          the untranscribed training cuts (their manifest's texts are never
#                       used for training; stage 18 reports against them when they exist)
#   oracle_dir          a model trained on sup + unsup with true transcripts ("" if none)
#   semisup_conf        train config of the semi-supervised models (started from $seed_dir)
#   num_dropout_samples N, dropout_proportion, dropout_seed: the dropout decoding (the seed
#                       model's dev/test decodes of stage 9 use the same: seed_decode_opts)
#   unsup_beam, unsup_max_active: search of the unsupervised audio (N + 1 decodes of the
#                       largest part: a narrower search than dev/test's keeps it affordable)
#   curve_samples       smaller N of the dev-WER-vs-N curve, e.g. "1 2" (N = 0 is the regular
#                       lattice and N itself the AM combination, both trained anyway)
#   sup_beam            beam of the supervision lattices (combine-lattices)
#   nnlm_layers         temporal-convolution layers of the neural word LM (thesis: 3)
# Stages:
#   15 dropout decode of unsup with the seed model (dropout off + N passes)
#                                                   -> $seed_dir/decode_<graph>_<unsup part>
#   16 uncertainty report of the seed's dropout decodes of dev and test (tables 3.2, 3.3)
#                                                   -> $seed_dir/uncertainty.md
#   17 semi-supervised data: unsup 1-best texts, den graph of sup (weight 1.5) + unsup 1-best
#      (1.0), sup + unsup cuts                      -> exp/chain_semisup, data/fbank/*_semisup.jsonl.gz
#   18 supervision lattices: regular, AM, LM (neural LM rescoring under dropout), AM+LM, AM
#      with fewer samples; their N-best WER/SER (table 3.4)
#                                                   -> exp/semisup/sup_<kind>, exp/semisup/supervision.md
#   19 semi-supervised LF-MMI from the seed, one model per kind, two at a time
#                                                   -> exp/tdnnf_semisup_<kind>/final.pt
#   20 decode and score dev/test (dev only for the curve's extra models)
#                                                   -> exp/tdnnf_semisup_<kind>/decode_<graph>_*
#   21 table 3.5 (WER and WER recovery rate) and the dev WER vs N plot into RESULTS.md
#                                                   -> RESULTS.md, exp/semisup/wer_vs_n.png
# shellcheck shell=bash

unsup_part=$(basename "$unsup_cuts" .jsonl.gz | sed "s/^${corpus}_cuts_//")
unsup_decode=$seed_dir/decode_${graph_name}_$unsup_part
semisup_den=exp/chain_semisup/den.pt
unsup_1best_cuts=data/fbank/${corpus}_cuts_${unsup_part}_1best.jsonl.gz
semisup_cuts=data/fbank/${corpus}_cuts_semisup.jsonl.gz
sup_dir=exp/semisup
kinds="regular am lm am_lm"
dev_part=$(echo "$decode_sets" | cut -d' ' -f1); test_part=$(echo "$decode_sets" | cut -d' ' -f2)
curve_kinds=""
for n in $curve_samples; do curve_kinds="$curve_kinds am_n$n"; done
# Decode lattices store acoustic costs x 10 (post-decode-acwt): scale 0.1 restores the search's.
lat_acwt=0.1

if stage_begin 15 "dropout decode of $unsup_part (seed, N=$num_dropout_samples)" "$unsup_decode/.done"; then
  stage_run "decode_$unsup_part" frugal decode --model "$seed_dir/final.pt" --graph "$graph" \
    --words data/lang/words.txt --cuts "$unsup_cuts" --output-dir "$unsup_decode" --nj "$nj" \
    --beam "$unsup_beam" --max-active "$unsup_max_active" --lattice-beam "$lattice_beam" \
    "${seed_decode_opts[@]}"
  stage_end
fi

if stage_begin 16 "uncertainty report (seed model, $decode_sets)" "$seed_dir/.done.uncertainty"; then
  sets=()
  for part in $decode_sets; do
    sets+=(--set "$part:$seed_dir/decode_${graph_name}_$part:data/fbank/${corpus}_cuts_$part.jsonl.gz")
  done
  stage_run uncertainty frugal uncertainty-report "${sets[@]}" --words data/lang/words.txt \
    --top-k "$num_dropout_samples" --output "$seed_dir/uncertainty.md"
  stage_end
fi

if stage_begin 17 "semi-supervised data and den graph (sup 1.5, unsup 1-best 1.0)" exp/chain_semisup/.done; then
  stage_run set_texts frugal set-cut-texts --cuts "$unsup_cuts" --text "$unsup_decode" \
    --output "$unsup_1best_cuts"
  # shellcheck disable=SC2086  # den_graph_opts (seed_stages.sh) is a list of options
  stage_run den_graph frugal make-den-graph --lang data/lang --context "$context" --output "$semisup_den" \
    --hmm-states "${hmm_states:-1}" ${den_graph_opts:-} --cuts "$train_cuts:1.5" "$unsup_1best_cuts:1.0"
  tmp_cuts=${semisup_cuts%.jsonl.gz}.tmp.jsonl.gz
  stage_run combine bash -c "lhotse combine $train_cuts $unsup_1best_cuts $tmp_cuts && mv $tmp_cuts $semisup_cuts"
  stage_end
fi

if stage_begin 18 "supervision lattices ($kinds$curve_kinds) and their N-best error rates" "$sup_dir/.done"; then
  # Independent steps run $nj at a time (word-lattice determinisation is single-threaded).
  combine=(frugal combine-lattices --beam "$sup_beam" --acoustic-scale "$lat_acwt")
  samples=()
  for k in $(seq 1 "$num_dropout_samples"); do samples+=("$unsup_decode/dropout/$k"); done
  # (a) regular: the dropout-off lattice, pruned and determinised as the others are
  stage_run_bg sup_regular "${combine[@]}" --inputs "$unsup_decode" --output "$sup_dir/sup_regular"
  # (b) w.r.t. AM: the union of the dropout-off and the N dropout decodings (and of fewer)
  stage_run_bg sup_am "${combine[@]}" --inputs "$unsup_decode" "${samples[@]}" --output "$sup_dir/sup_am"
  for n in $curve_samples; do
    stage_run_bg "sup_am_n$n" "${combine[@]}" --inputs "$unsup_decode" "${samples[@]:0:$n}" \
      --output "$sup_dir/sup_am_n$n"
  done
  # (c) w.r.t. LM: the dropout-off lattice and its N rescorings by the neural LM with dropout
  # on; the LM is trained on the word LM's text (stage 7), stopped early on dev transcripts
  stage_run_bg train_nnlm bash -c "frugal cuts-to-text --cuts data/fbank/${corpus}_cuts_$dev_part.jsonl.gz \
    --output $sup_dir/nnlm_dev_text && frugal train-nnlm --text data/local/lm_text \
    --dev-text $sup_dir/nnlm_dev_text --lang data/lang --layers $nnlm_layers --seed $dropout_seed \
    --output $sup_dir/nnlm/model.pt"
  stage_wait
  mkdir -p "$sup_dir/lm_samples" "$sup_dir/sup_lm" "$sup_dir/sup_am_lm"
  for lat in "$unsup_decode"/lat.*.pt; do
    job=$(basename "$lat" .pt)
    stage_run_bg "nnlm_rescore_$job" frugal nnlm-rescore --lattices "$lat" --nnlm "$sup_dir/nnlm/model.pt" \
      --old-lm "$lm" --words data/lang/words.txt --samples "$num_dropout_samples" --seed "$dropout_seed" \
      --acoustic-scale "$lat_acwt" --output "$sup_dir/lm_samples/$job.pt"
  done
  stage_wait
  for lat in "$unsup_decode"/lat.*.pt; do
    job=$(basename "$lat" .pt)
    rescored=("$sup_dir/lm_samples/$job".*.pt)
    stage_run_bg "sup_lm_$job" "${combine[@]}" --inputs "$lat" "${rescored[@]}" --output "$sup_dir/sup_lm/$job.pt"
    # (d) w.r.t. AM+LM: both kinds of samples
    dropout_lats=()
    for s in "${samples[@]}"; do dropout_lats+=("$s/$job.pt"); done
    stage_run_bg "sup_am_lm_$job" "${combine[@]}" --inputs "$lat" "${dropout_lats[@]}" "${rescored[@]}" \
      --output "$sup_dir/sup_am_lm/$job.pt"
  done
  stage_wait
  report=()
  for kind in $kinds$curve_kinds; do report+=(--kind "$kind:$sup_dir/sup_$kind"); done
  stage_run supervision_report frugal supervision-report "${report[@]}" --cuts "$unsup_cuts" \
    --words data/lang/words.txt --nbest "$num_dropout_samples" --acoustic-scale "$lat_acwt" \
    --output "$sup_dir/supervision.md"
  stage_end
fi

if stage_begin 19 "semi-supervised LF-MMI ($kinds$curve_kinds)" exp/.done.semisup_train; then
  # LF-MMI from the seed on sup (transcripts) + unsup (lattices of the kind), one model per
  # kind, $nj at a time; a model whose final.pt exists is done (a killed one resumes).
  for kind in $kinds $curve_kinds; do
    model_dir=exp/tdnnf_semisup_$kind
    extra=()
    if [ "$force" = true ]; then extra+=(--start-fresh); elif [ -f "$model_dir/final.pt" ]; then continue; fi
    stage_run_bg "train_semisup_$kind" frugal train --train-config "$semisup_conf" \
      --train-cuts "$semisup_cuts" --num-valid "$num_valid" --lang data/lang --exp-dir "$model_dir" \
      --den-graph "$semisup_den" --init-model "$seed_dir/final.pt" \
      --supervision-lattices "$sup_dir/sup_$kind" --num-threads "$train_threads" ${extra[@]+"${extra[@]}"}
  done
  stage_wait
  stage_end
fi

for kind in $kinds; do
  decode_and_score 20 20 "exp/tdnnf_semisup_$kind"
done
full_decode_sets=$decode_sets
decode_sets=$dev_part  # the curve needs dev only
for kind in $curve_kinds; do
  decode_and_score 20 20 "exp/tdnnf_semisup_$kind"
done
decode_sets=$full_decode_sets

if stage_begin 21 "semi-supervised results (table 3.5, dev WER vs N)" "$sup_dir/.done.results"; then
  rows=(--row "Supervised only:$seed_dir/decode_$graph_name"
        --row "Regular lattice:exp/tdnnf_semisup_regular/decode_$graph_name"
        --row "Combination w.r.t. AM:exp/tdnnf_semisup_am/decode_$graph_name"
        --row "Combination w.r.t. LM:exp/tdnnf_semisup_lm/decode_$graph_name"
        --row "Combination w.r.t. AM+LM:exp/tdnnf_semisup_am_lm/decode_$graph_name")
  [ -n "$oracle_dir" ] && rows+=(--row "Oracle:$oracle_dir/decode_$graph_name")
  curve=(--curve "0:exp/tdnnf_semisup_regular/decode_$graph_name")
  for n in $curve_samples; do curve+=(--curve "$n:exp/tdnnf_semisup_am_n$n/decode_$graph_name"); done
  curve+=(--curve "$num_dropout_samples:exp/tdnnf_semisup_am/decode_$graph_name")
  stage_run results frugal semisup-results --results RESULTS.md "${rows[@]}" "${curve[@]}" \
    --dev "$dev_part" --test "$test_part" --plot "$sup_dir/wer_vs_n.png" \
    --notes "corpus seed $seed, seed model $(basename "$seed_dir"), N=$num_dropout_samples dropout samples at proportion $dropout_proportion (seed $dropout_seed), decoding beam $beam, lattice beam $lattice_beam, supervision-lattice beam $sup_beam; tables 3.2-3.4: $seed_dir/uncertainty.md, $sup_dir/supervision.md"
  stage_end
fi
