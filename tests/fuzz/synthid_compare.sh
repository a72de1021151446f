#!/usr/bin/env bash
# Issue 17: the SynthID exact tail before and after a change to
# detect/statistics.c. Builds the file at revision BEFORE (default: the
# commit before the output-stationary convolution, 22d5b90) and as it is in
# the working tree, each -O3 as the Release build, links both into
# tests/fuzz/tools/synthid_compare.c under two names, checks they give the
# same doubles on its grid and times them side by side. Exit 1 when any value
# differs. Usage: tests/fuzz/synthid_compare.sh [BEFORE] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
before=${1:-22d5b90}
repeats=${2:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-O3 -DNDEBUG -std=c11 -D_DEFAULT_SOURCE -Iinclude)
git show "$before":detect/statistics.c >"$work/before.c"
cp detect/statistics.c "$work/after.c"
for side in before after; do
  cc "${flags[@]}" -c "$work/$side.c" -Dtm_stat_synthid_weighted_log_sf=${side}_sf -o "$work/$side.o"
  # Only the renamed entry point stays global: the two copies' helpers do not clash.
  objcopy --keep-global-symbol=${side}_sf "$work/$side.o"
done
cc "${flags[@]}" tests/fuzz/tools/synthid_compare.c "$work/before.o" "$work/after.o" -lm -o "$work/compare"
"$work/compare" "$repeats"
