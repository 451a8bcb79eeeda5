# The data stages every recipe shares; sourced by egs/<corpus>/run.sh after stage_lib.sh.
# The recipe sets:
#   corpus          manifest prefix (data/manifests/<corpus>_cuts_<part>.jsonl.gz)
#   parts           the parts to compute features for
#   prepare_cmd     array: stage 1's command, writing data/manifests and data/local
#                   (empty where an earlier stage made the manifests: stage 1 is then skipped)
#   lang_cmd        array: stage 2's command, writing data/lang
#   fbank_conf, nj, speed_perturb (applied to parts named train*)
# Stages:
#   1  data preparation (lhotse manifests)   -> data/manifests, data/local
#   2  lang                                  -> data/lang
#   3  log-mel fbank features                -> data/fbank
# shellcheck shell=bash

if [ ${#prepare_cmd[@]} -gt 0 ] && [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] \
   && [ -z "${corpus_dir:-}" ]; then
  echo "$0: --corpus-dir is required for stage 1" >&2; exit 1
fi

if [ ${#prepare_cmd[@]} -gt 0 ] && stage_begin 1 "data preparation" "data/manifests/.done.$corpus"; then
  stage_run prepare_data "${prepare_cmd[@]}"
  stage_end
fi

if stage_begin 2 "lang" data/lang/.done; then
  stage_run prepare_lang "${lang_cmd[@]}"
  stage_end
fi

if stage_begin 3 "fbank features" "data/fbank/.done.$corpus"; then
  for part in $parts; do
    perturb=()
    case $part in train*) [ "${speed_perturb:-false}" = true ] && perturb+=(--speed-perturb) ;; esac
    stage_run "fbank_$part" frugal compute-fbank --config "$fbank_conf" --nj "$nj" \
      "${perturb[@]+"${perturb[@]}"}" \
      --cuts-in "data/manifests/${corpus}_cuts_$part.jsonl.gz" \
      --cuts-out "data/fbank/${corpus}_cuts_$part.jsonl.gz" \
      --storage-dir "data/fbank/${corpus}_feats_$part"
  done
  stage_end
fi
