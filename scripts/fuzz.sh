#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang, ASan+UBSan, in
# build-fuzz/) and runs each for SECONDS (default 60), one after another,
# on a scratch copy of its committed seed corpus with its dictionary. Fails
# (exit 1) on any finding: the reproducer is kept in build-fuzz/findings/.
# Writes one line per harness (executions, coverage, corpus size) to
# build-fuzz/results/HARNESS.md and the table of all to build-fuzz/fuzz-summary.md,
# and appends one row per harness run (date, harness, seconds, executions,
# coverage, features, corpus, findings, the command and its commit) to the record of real
# runs, benchmarks/results/fuzz-runs.md ($TRACEMARK_FUZZ_RECORD to write it
# elsewhere: CI's short pass does, so that it leaves the tree as it was).
# TRACEMARK_FUZZ_JOBS=N runs N harnesses at a time (each still for SECONDS).
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
# Needs the fixtures (scripts/fixtures.sh) for the detection and chat harnesses.
set -euo pipefail
cd "$(dirname "$0")/.."
command_line="scripts/fuzz.sh $*"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown commit")
seconds=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(gguf llama2c tokenizer_bin scheme_yaml key detect_text detect_jsonl chat_json
                                        task_yaml policy_yaml manifest_json manifest_embedded server_body)

if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRACEMARK_FUZZ=ON -DTRACEMARK_TESTS=OFF >/dev/null
fi
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}" >/dev/null

export TRACEMARK_FIXTURES=${TRACEMARK_FIXTURES:-$(scripts/fixtures.sh)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build-fuzz/findings build-fuzz/results
record=${TRACEMARK_FUZZ_RECORD:-benchmarks/results/fuzz-runs.md}
if [ ! -s "$record" ]; then
  mkdir -p "$(dirname "$record")"
  {
    echo "# Fuzz runs (written by scripts/fuzz.sh, one row per harness run)"
    echo
    echo "libFuzzer with ASan+UBSan (clang, build-fuzz/); each run continues from the corpus the"
    echo "previous runs left in build-fuzz/corpus/HARNESS plus the committed seeds. executions:"
    echo "libFuzzer's stat::number_of_executed_units; cov: covered edges; ft: features; findings:"
    echo "crash, sanitizer report, leak, timeout or out-of-memory reproducers written by the run."
    echo
    echo "| date (UTC) | harness | seconds | executions | exec/s | cov | ft | corpus | findings | command |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
  } >"$record"
fi
# One harness: run it, then record its row. Its exit status says whether it found something.
fuzz_one() {
  local h=$1 work log before started run_failed runs last cov ft corp rate found
  work=build-fuzz/corpus/$h
  mkdir -p "$work"
  log=build-fuzz/fuzz_$h.log
  before=$(ls build-fuzz/findings | grep -c "^$h-" || true)
  started=$(date -u +%Y-%m-%dT%H:%M)
  run_failed=0
  # New inputs go to the scratch folder (first); the committed seeds are only read.
  if ! build-fuzz/fuzz_"$h" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -max_len=65536 \
       -dict=tests/fuzz/dict/"$h".dict -artifact_prefix=build-fuzz/findings/"$h"- -print_final_stats=1 \
       "$work" tests/fuzz/corpus/"$h" >"$log" 2>&1; then
    echo "fuzz: $h: FINDING (see $log and build-fuzz/findings/)" >&2
    tail -40 "$log" >&2
    run_failed=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  # A run that never started (a bad dictionary, a setup abort) has no status line.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo ?)
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo ?)
  corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | sed 's/corp: //' || echo ?)
  rate=$(( seconds > 0 ? ${runs:-0} / seconds : 0 ))
  echo "| $h | $seconds | ${runs:-0} | $rate | $cov | $ft | $corp |" >build-fuzz/results/"$h".md
  found=$(( $(ls build-fuzz/findings | grep -c "^$h-" || true) - before ))
  [ "$found" -gt 0 ] || [ "$run_failed" = 0 ] || found="failed, no reproducer (see the log)"
  echo "| $started | $h | $seconds | ${runs:-0} | $rate | $cov | $ft | $corp | $found | \`$command_line\` at $commit |" >>"$record"
  echo "fuzz: $h: ${runs:-0} executions in ${seconds}s, cov $cov, ft $ft" >&2
  return "$run_failed"
}

# TRACEMARK_FUZZ_JOBS harnesses at a time (default 1: one after another).
jobs_at_once=${TRACEMARK_FUZZ_JOBS:-1}
[[ "$jobs_at_once" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: TRACEMARK_FUZZ_JOBS must be a positive integer" >&2; exit 2; }
failed=0
running=0
for h in "${harnesses[@]}"; do
  if [ "$running" -ge "$jobs_at_once" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$h" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
# One table of the latest result of every harness (runs of subsets may overlap).
summary=build-fuzz/fuzz-summary.md
{
  echo "| harness | seconds | executions | exec/s | coverage (cov) | features (ft) | corpus |"
  echo "|---|---|---|---|---|---|---|"
  cat build-fuzz/results/*.md
} >"$summary"
cat "$summary"
exit $failed
