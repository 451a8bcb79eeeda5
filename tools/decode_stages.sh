# Decoding stages shared by the recipes; sourced by egs/<corpus>/run.sh after the seed stages.
# The recipe sets:
#   corpus, nj, objective (lfmmi|ctc), seed_dir
#   lm_texts        cut manifests whose transcripts train the word LM
#   lm_text_files   optionally, Kaldi text files (id, words) the word LM is trained on as well
#   decode_sets     parts to decode, dev first: the test rows use the LM weight and insertion
#                   penalty chosen on the first set (Kaldi's recipes report it so)
#   lm_order, beam, lattice_beam, and optionally max_active (default 7000)
#   acoustic_scale  optionally (default 1.0, the chain models' scale): the search's acoustic
#                   scale; lattices keep 10 x it as their acoustic scale (--post-decode-acwt),
#                   so that the LM-weight sweep 7-17 of stage 10 brackets it
#   num_dropout_samples, dropout_proportion, dropout_seed: optionally, Monte-Carlo dropout
#                   samples of the seed model's decodes (stage 9; see tools/semisup_stages.sh)
# Stages:
#   7  word LM: interpolated modified Kneser-Ney ARPA      -> data/local/lm_<order>g.arpa
#   8  decoding graph: HCLG (chain) or HLG (ctc)           -> exp/<chain|ctc>/graph_<order>g
#   9  decode each set: lattices, 1-best                   -> $seed_dir/decode_<graph>_<set>
#   10 score (LM weight x insertion penalty sweep)         -> wer files, RESULTS.md
# and the function decode_and_score for further models.
# shellcheck shell=bash

lm=data/local/lm_${lm_order}g.arpa
graph_name=${lm_order}g
if [ "$objective" = lfmmi ]; then
  graph_dir=exp/chain/graph_$graph_name; graph=$graph_dir/HCLG.fst; topo=chain
else
  graph_dir=exp/ctc/graph_$graph_name; graph=$graph_dir/HLG.fst; topo=ctc
fi

if stage_begin 7 "word LM (order $lm_order)" "$lm.done"; then
  texts=()
  for cuts in $lm_texts; do
    text=data/local/lm_text_$(basename "$cuts" .jsonl.gz)
    stage_run lm_text frugal cuts-to-text --cuts "$cuts" --output "$text"
    texts+=("$text")
  done
  for text in ${lm_text_files:-}; do texts+=("$text"); done
  stage_run lm bash -c "cat ${texts[*]} > data/local/lm_text && \
    frugal make-word-lm --text data/local/lm_text --order $lm_order --output $lm && \
    frugal lm-perplexity --arpa $lm --text data/local/lm_text"
  stage_end
fi

if stage_begin 8 "decoding graph ($topo, $graph_name)" "$graph_dir/.done"; then
  graph_opts=()   # a chain graph takes the seed den graph's phone context and HMM states
  [ "$topo" = chain ] && graph_opts+=(--den-graph exp/chain/den.pt)
  stage_run graph frugal compile-graph --lang data/lang --arpa "$lm" --topo "$topo" \
    "${graph_opts[@]}" --output "$graph"
  stage_end
fi

# decode_and_score DECODE_STAGE SCORE_STAGE MODEL_DIR [DECODE OPTION...]: decode $decode_sets
# with MODEL_DIR/final.pt and score them into RESULTS.md (model column: MODEL_DIR's name).
# Recipes call it again for other models decoded with the same graph (egs/mini's oracle).
decode_and_score() {
  local decode_stage=$1 score_stage=$2 model_dir=$3 name part first dev
  shift 3
  name=$(basename "$model_dir")
  if stage_begin "$decode_stage" "decode $decode_sets ($name)" "$model_dir/.done.decode_$graph_name"; then
    for part in $decode_sets; do
      stage_run "decode_${name}_$part" frugal decode --model "$model_dir/final.pt" --graph "$graph" \
        --words data/lang/words.txt --cuts "data/fbank/${corpus}_cuts_$part.jsonl.gz" \
        --output-dir "$model_dir/decode_${graph_name}_$part" --nj "$nj" \
        --beam "$beam" --max-active "${max_active:-7000}" --lattice-beam "$lattice_beam" \
        --acoustic-scale "${acoustic_scale:-1.0}" --post-decode-acwt "$(awk "BEGIN {print 10 * ${acoustic_scale:-1.0}}")" "$@"
    done
    stage_end
  fi
  if stage_begin "$score_stage" "score $decode_sets ($name)" "$model_dir/.done.score_$graph_name"; then
    first=
    for part in $decode_sets; do
      dev=()
      [ -n "$first" ] && dev=(--dev-decode-dir "$model_dir/decode_${graph_name}_$first")
      stage_run "score_${name}_$part" frugal score-lattices --decode-dir "$model_dir/decode_${graph_name}_$part" \
        --ref-cuts "data/fbank/${corpus}_cuts_$part.jsonl.gz" --words data/lang/words.txt \
        "${dev[@]+"${dev[@]}"}" --results RESULTS.md --model-name "$name" \
        --data-name "$part" --graph-name "$graph_name"
      first=${first:-$part}
    done
    stage_end
  fi
}

# The seed's decodes with N dropout samples, if asked: the N + 1 passes of an utterance are
# searched together, 10 utterance-passes a batch bound the memory of the noisier dropout searches.
seed_decode_opts=()
if [ "${num_dropout_samples:-0}" -gt 0 ]; then
  seed_decode_opts=(--dropout-samples "$num_dropout_samples" --dropout-proportion "$dropout_proportion"
                    --dropout-seed "$dropout_seed" --batch-size 10)
fi
decode_and_score 9 10 "$seed_dir" ${seed_decode_opts[@]+"${seed_decode_opts[@]}"}
