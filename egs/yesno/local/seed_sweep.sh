#!/usr/bin/env bash
# Run the whole yesno recipe once per training seed and print each seed's test WER and the mean:
# on 30 training files the seed moves the WER more than most settings do, so settings are
# compared over seeds (README, "yesno and the 0% target").
#
#   egs/yesno/local/seed_sweep.sh [--seeds "1 2 3 4 5 6 7 8"] [--jobs 2] [--keep true] [run.sh options]
#   e.g. egs/yesno/local/seed_sweep.sh --split kaldi --den-graph-opts "--ngram-order 2 --no-prune-ngram-order 2"
#
# Each seed runs in a scratch copy of the recipe (egs/.yesno_seed_<seed>, the seed written into
# its conf/train.yaml), removed afterwards unless --keep true or the run gave no WER. The table
# goes to standard output and to egs/yesno/exp/seed_sweep.txt; each run's output to the copy's
# run.log.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
egs=$(dirname "$here")
seeds="1 2 3 4 5 6 7 8"
jobs=2
keep=false
run_opts=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) run_opts+=("$1" "$2"); shift 2 ;;
  esac
done
for n in $seeds $jobs; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "$0: --seeds and --jobs take whole numbers, got '$n'" >&2; exit 1; }
done
[ "$jobs" -ge 1 ] || { echo "$0: --jobs must be at least 1" >&2; exit 1; }
grep -q '^  seed: ' "$here/conf/train.yaml" || { echo "$here/conf/train.yaml: no 'seed:' line in its train section" >&2; exit 1; }

run_seed() {  # run_seed SEED: writes the seed's row (SEED %WER errors, or why there is none)
  local seed=$1 dir=$egs/.yesno_seed_$1
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$here/run.sh" "$here/conf" "$here/local" "$here/steps" "$dir/"
  sed -i "s/^  seed: .*/  seed: $seed/" "$dir/conf/train.yaml"
  if ! (cd "$dir" && ./run.sh "${run_opts[@]+"${run_opts[@]}"}" > run.log 2>&1); then
    echo "$seed failed: $dir/run.log" > "$rows/$seed"
  elif [ ! -f "$dir/exp/RESULTS.md" ]; then
    echo "$seed no exp/RESULTS.md: $dir/run.log" > "$rows/$seed"
  else
    tail -n 1 "$dir/exp/RESULTS.md" | awk -F'|' -v s="$seed" '{gsub(/ /, "", $5); gsub(/^ +| +$/, "", $6); print s, $5, $6}' \
      > "$rows/$seed"
    [ "$keep" = true ] || rm -rf "$dir"
  fi
}

rows=$(mktemp -d)
trap 'rm -rf "$rows"' EXIT
for seed in $seeds; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_seed "$seed" &
done
wait

mkdir -p "$here/exp"
table=$here/exp/seed_sweep.txt
{
  echo "# yesno seed sweep, $(date '+%F %T'), run.sh$(printf ' %q' "${run_opts[@]+"${run_opts[@]}"}")"
  echo "# seed %WER errors"
  for seed in $seeds; do cat "$rows/$seed" 2>/dev/null || echo "$seed no row: see $egs/.yesno_seed_$seed"; done
  cat "$rows"/* | awk '$2 ~ /^[0-9.]+$/ {n++; s += $2; z += ($2 == 0)}
    END {if (n) printf "# mean %.2f%% over %d seeds, %d at 0%%\n", s / n, n, z}'
} > "$table.tmp"
mv "$table.tmp" "$table"
cat "$table"
