# Seed-model stages shared by the recipes; sourced by egs/<corpus>/run.sh after data_stages.sh.
# The recipe sets: corpus, nj, force, objective (lfmmi|ctc), context (biphone|mono),
#   train_conf, num_valid, train_threads, seed_dir, train_cuts (the transcribed training cuts),
#   and optionally hmm_states (1, the chain topology, or 2; default 1) and den_graph_opts (more
#   frugal make-den-graph options, e.g. silence probabilities).
# Stages:
#   4  den graph: phone LM of the train_cuts transcripts -> exp/chain (den.pt, phone_lm.fst, pdf_map.txt)
#   5  seed TDNN-F, flat-start LF-MMI (or CTC)           -> $seed_dir/final.pt
#   6  Viterbi alignment of train_cuts (LF-MMI models)   -> $seed_dir/ali_<part>.pt and .txt
# and the function train_model for further models (egs/mini's oracle).
# shellcheck shell=bash

# train_model STAGE DESC MODEL_DIR CONF CUTS DEN_DIR: train MODEL_DIR/final.pt on CUTS.
# A killed run resumes from its last checkpoint; --force starts afresh.
train_model() {
  local n=$1 desc=$2 model_dir=$3 conf=$4 cuts=$5 den_dir=$6 extra=()
  if stage_begin "$n" "$desc" "$model_dir/.done"; then
    [ "$objective" = lfmmi ] && extra+=(--den-graph "$den_dir/den.pt")
    [ "$force" = true ] && extra+=(--start-fresh)
    stage_run "train_$(basename "$model_dir")" frugal train --train-config "$conf" --train-cuts "$cuts" \
      --num-valid "$num_valid" --lang data/lang --exp-dir "$model_dir" --objective "$objective" \
      --num-threads "$train_threads" "${extra[@]}"
    stage_end
  fi
}

if stage_begin 4 "denominator graph (phone LM of $(basename "$train_cuts"))" exp/chain/.done; then
  # shellcheck disable=SC2086  # den_graph_opts is a list of options
  stage_run den_graph frugal make-den-graph --lang data/lang --cuts "$train_cuts" --context "$context" \
    --hmm-states "${hmm_states:-1}" ${den_graph_opts:-} --output exp/chain/den.pt
  stage_end
fi

train_model 5 "seed model ($objective)" "$seed_dir" "$train_conf" "$train_cuts" exp/chain

if stage_begin 6 "align $(basename "$train_cuts") with the seed model" "$seed_dir/.done.ali"; then
  if [ "$objective" = lfmmi ]; then
    ali=$seed_dir/ali_$(basename "$train_cuts" .jsonl.gz | sed "s/^${corpus}_cuts_//")
    stage_run align frugal align --model "$seed_dir/final.pt" --cuts "$train_cuts" --lang data/lang \
      --den-graph exp/chain/den.pt --output "$ali.pt" --nj "$nj"
    stage_run show_alignments bash -c "frugal show-alignments --alignments $ali.pt --lang data/lang \
      --pdf-map exp/chain/pdf_map.txt --words > $ali.txt.tmp && mv $ali.txt.tmp $ali.txt && head -n 12 $ali.txt"
  else
    echo "alignment needs the chain (lfmmi) seed model: nothing to do for --objective $objective"
  fi
  stage_end
fi
