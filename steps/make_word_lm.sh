#!/usr/bin/env bash
# A word n-gram LM (interpolated modified Kneser-Ney, ARPA) from the transcripts of cut
# manifests and from Kaldi text files, and its perplexity on that text.
#
#   steps/make_word_lm.sh [--order N] <arpa> <cuts.jsonl.gz or text>...
#
# Give the manifests of data preparation, not the speed-perturbed ones of the features, so
# that each transcript counts once. The text the LM was estimated on is kept as <arpa>.text.
# With --units-lang (a frugal prepare-units directory) the LM is over its tokens (a token LM
# for transducer shallow fusion), the words spelled as the units directory spells them.
set -eu
order=3                     # n-gram order
units_lang=""               # spell the words in these units first
vocab=""                    # closed vocabulary (one word a line): its words unseen in the text get the smoothed mass
help_message="Usage: $0 [--order N] [--units-lang DIR] [--vocab FILE] <arpa> <cuts.jsonl.gz or text>..."
. "$FRUGAL_ROOT/tools/parse_options.sh"
[ $# -ge 2 ] || { echo "$help_message" >&2; exit 1; }
arpa=$1; shift

text=$arpa.text
mkdir -p "$(dirname "$arpa")"
: > "$text.tmp"
for src in "$@"; do
  case $src in
    *.jsonl.gz) frugal cuts-to-text --cuts "$src" --output "$text.part" && cat "$text.part" >> "$text.tmp" && rm "$text.part" ;;
    *) cat "$src" >> "$text.tmp" ;;
  esac
done
mv "$text.tmp" "$text"
if [ -n "$units_lang" ]; then
  frugal make-word-lm --text "$text" --order "$order" --output "$arpa" --units-lang "$units_lang"
else
  vocab_opt=()
  [ -n "$vocab" ] && vocab_opt=(--vocab "$vocab")
  frugal make-word-lm --text "$text" --order "$order" --output "$arpa" ${vocab_opt[@]+"${vocab_opt[@]}"}
  frugal lm-perplexity --arpa "$arpa" --text "$text"
fi
