# The oracle: the seed recipe on all training data with its true transcripts, the upper bound
# of semi-supervised training. Same lang, context and topology as the seed, hence the same
# (tree-less) pdf map: the decoding graph of stage 8 serves it too. Sourced by
# egs/<corpus>/run.sh after decode_stages.sh, for corpora whose unsupervised part has
# transcripts (egs/mini, fisher). The recipe sets, besides what the seed and decode stages need:
#   unsup_cuts    the untranscribed training cuts (with their true transcripts here)
#   oracle_conf   train config of the oracle model
# Stages:
#   11 oracle data: train_cuts + unsup_cuts, and their den graph
#                                             -> data/fbank/<corpus>_cuts_train_all.jsonl.gz, exp/chain_oracle
#   12 oracle model, flat-start on train_all  -> $oracle_dir/final.pt
#   13 decode $decode_sets                    -> $oracle_dir/decode_<graph>_<set>
#   14 score                                  -> RESULTS.md rows
# shellcheck shell=bash

oracle_dir=exp/tdnnf_oracle
[ "$objective" = ctc ] && oracle_dir=exp/tdnnf_oracle_ctc
all_cuts=data/fbank/${corpus}_cuts_train_all.jsonl.gz

if stage_begin 11 "oracle data and den graph ($(basename "$train_cuts") + $(basename "$unsup_cuts"))" \
    exp/chain_oracle/.done; then
  tmp_cuts=${all_cuts%.jsonl.gz}.tmp.jsonl.gz
  stage_run combine bash -c "lhotse combine $train_cuts $unsup_cuts $tmp_cuts && mv $tmp_cuts $all_cuts"
  # shellcheck disable=SC2086  # den_graph_opts (seed_stages.sh) is a list of options
  stage_run den_graph frugal make-den-graph --lang data/lang --cuts "$all_cuts" --context "$context" \
    --hmm-states "${hmm_states:-1}" ${den_graph_opts:-} --output exp/chain_oracle/den.pt
  stage_end
fi

train_model 12 "oracle model ($objective, train_all)" "$oracle_dir" "$oracle_conf" "$all_cuts" exp/chain_oracle

decode_and_score 13 14 "$oracle_dir"
