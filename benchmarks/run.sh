#!/usr/bin/env bash
# Generation speed of tracemark side by side with llama.cpp, in one run, on
# the same machine and the same model files: prompt and decode tokens/s
# (median of 3, same prompt ids and decode walk in both engines) and their
# ratio. Writes benchmarks/results/generate.json and generate.md.
# Usage: benchmarks/run.sh [--quick]   (--quick skips the 110M-parameter model)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = --quick ] && quick=1
shared=${TRACEMARK_FIXTURES:-../shared}
work=${TMPDIR:-/tmp}/tracemark-bench
mkdir -p "$work" benchmarks/results

scripts/setup.sh release >/dev/null
bench=build/bench_generate

llamaref=""
if [ -x "$shared/tools/build-llamaref.sh" ] || [ -f "$shared/tools/build-llamaref.sh" ]; then
  read -r llamaref llamalib < <(REF="$work/llamaref" bash "$shared/tools/build-llamaref.sh" | tail -n 1)
fi
[ -n "$llamaref" ] || echo "bench: llama.cpp peer unavailable (no $shared/tools); measuring tracemark alone" >&2

models=("$shared/models/stories260K.gguf:stories260K:1" "$shared/models/stories260K.gguf:stories260K:2")
if [ $quick = 0 ]; then
  m110="$work/llama2-110m-f32.gguf"
  [ -f "$m110" ] || python3 "$shared/tools/synth_gguf.py" "$m110" "$shared/models/llama-2-tiny-random.gguf" 768 12 12 12 2048 1024
  models+=("$m110:llama2-110m-f32:1" "$m110:llama2-110m-f32:2")
fi

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "null" }'; }

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
machine="$cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB"
rows=""
json_rows=""
for entry in "${models[@]}"; do
  IFS=: read -r path name threads <<<"$entry"
  ours=$("$bench" "$path" 128 64 "$threads")
  op=$(echo "$ours" | field prompt_tok_s); od=$(echo "$ours" | field decode_tok_s)
  lp=null; ld=null
  if [ -n "$llamaref" ]; then
    theirs=$("$llamaref" "$llamalib" "$path" bench 128 64 "$threads")
    lp=$(echo "$theirs" | field prompt_tok_s); ld=$(echo "$theirs" | field decode_tok_s)
  fi
  rp=$(ratio "$op" "$lp"); rd=$(ratio "$od" "$ld")
  echo "bench: $name, $threads thread(s): prompt $op vs $lp tok/s (x$rp), decode $od vs $ld tok/s (x$rd)" >&2
  rows+="| $name | F32 | $threads | $op | $lp | $rp | $od | $ld | $rd |"$'\n'
  json_rows+="${json_rows:+,}{\"model\":\"$name\",\"type\":\"F32\",\"threads\":$threads,\"n_prompt\":128,\"n_gen\":64,\"tracemark\":{\"prompt_tok_s\":$op,\"decode_tok_s\":$od},\"llama_cpp\":{\"prompt_tok_s\":$lp,\"decode_tok_s\":$ld},\"ratio\":{\"prompt\":$rp,\"decode\":$rd}}"
done

date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
tmp=$(mktemp benchmarks/results/.generate.XXXXXX)
printf '{"date":"%s","commit":"%s","machine":"%s","runs":[%s]}\n' "$date" "$commit" "$machine" "$json_rows" >"$tmp"
mv "$tmp" benchmarks/results/generate.json
tmp=$(mktemp benchmarks/results/.generate.XXXXXX)
{
  echo "# Generation speed, tracemark vs llama.cpp"
  echo
  echo "$date, commit $commit, $machine. Prompt 128 tokens, decode 64, median of 3; ratio = tracemark / llama.cpp."
  echo
  echo "| model | type | threads | prompt tok/s | llama.cpp | ratio | decode tok/s | llama.cpp | ratio |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s' "$rows"
} >"$tmp"
mv "$tmp" benchmarks/results/generate.md
cat benchmarks/results/generate.md
