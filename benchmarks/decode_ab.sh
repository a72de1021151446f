#!/usr/bin/env bash
# Decode speed of two builds side by side: each build's bench_generate decodes
# the same models (the 110M-shaped ones benchmarks/decode.sh and run.sh make
# under $TMPDIR/tracemark-bench/models) on 1 and 2 threads, on the best SIMD
# path and with AVX2 forced (TM_NO_AVX512=1 TM_NO_VNNI=1), the builds taking
# turns in ABBA order so that neither always runs first. Prints, per model,
# path and thread count, the median decode tokens/s before -> after and their
# ratio, and writes it to benchmarks/results/NAME.md. Wall-clock figures on a
# shared machine move by 10-20%: the ratio of medians, taken side by side, is
# what to read. Never asserts a speed (DESIGN.md).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/decode_ab.sh BEFORE_BUILD AFTER_BUILD [--rounds N] [--types "f32 f16 q8_0 q4_0 q4_k_m"]
                               [--n-gen N] [--name NAME]

BEFORE_BUILD and AFTER_BUILD are Release build folders holding bench_generate
(e.g. a worktree of the older commit, built with cmake --build DIR --target
bench_generate).

  --rounds N   rounds per build, model, path and thread count (default 4; ABBA order;
               the median is reported)
  --types T    models $TMPDIR/tracemark-bench/models/llama2-110m-T.gguf (default:
               those of f32 f16 q8_0 q4_0 q4_k_m that exist; benchmarks/decode.sh
               makes the quantized ones)
  --n-gen N    decoded tokens per run (default 64)
  --name NAME  results file benchmarks/results/NAME.md (default decode-ab)
EOF
}

die() { echo "decode_ab.sh: error: $*" >&2; exit 1; }

[ $# -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; } && { usage; exit 0; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
before=$1 after=$2
shift 2
rounds=4 name=decode-ab n_gen=64 types=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || die "--rounds needs a value"; rounds=$2; shift ;;
    --types) [ $# -ge 2 ] || die "--types needs a value"; types=$2; shift ;;
    --n-gen) [ $# -ge 2 ] || die "--n-gen needs a value"; n_gen=$2; shift ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done
[[ $rounds =~ ^[1-9][0-9]?$ ]] || die "--rounds '$rounds': give a number from 1 to 99"
[[ $n_gen =~ ^[1-9][0-9]{0,3}$ ]] || die "--n-gen '$n_gen': give a number from 1 to 9999"
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--name '$name': use letters, digits, '.', '_' and '-' only"
for build in "$before" "$after"; do
  [ -x "$build/bench_generate" ] || die "$build/bench_generate: not found (build it first)"
done
models=${TMPDIR:-/tmp}/tracemark-bench/models
if [ -z "$types" ]; then
  for t in f32 f16 q8_0 q4_0 q4_k_m; do [ -f "$models/llama2-110m-$t.gguf" ] && types="$types $t"; done
fi
[ -n "$types" ] || die "no models under $models (run benchmarks/decode.sh first)"
for t in $types; do [ -f "$models/llama2-110m-$t.gguf" ] || die "$models/llama2-110m-$t.gguf: no such model"; done

root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[decode-ab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
decode() { # BUILD MODEL THREADS ENV... -> tok/s
  local build=$1 model=$2 threads=$3
  shift 3
  env "$@" "$build/bench_generate" "$model" 16 "$n_gen" "$threads" 2>/dev/null |
    sed -n 's/.*"decode_tok_s":\([0-9.]*\).*/\1/p' | tail -n 1
}

rows=""
for t in $types; do
  model=$models/llama2-110m-$t.gguf
  for path in best avx2; do
    if [ "$path" = best ]; then forced=(); else forced=(TM_NO_AVX512=1 TM_NO_VNNI=1); fi
    for threads in 1 2; do
      a=() b=()
      for ((r = 0; r < rounds; r++)); do
        if ((r % 2 == 0)); then
          a+=("$(decode "$before" "$model" "$threads" "${forced[@]}")")
          b+=("$(decode "$after" "$model" "$threads" "${forced[@]}")")
        else
          b+=("$(decode "$after" "$model" "$threads" "${forced[@]}")")
          a+=("$(decode "$before" "$model" "$threads" "${forced[@]}")")
        fi
      done
      ma=$(printf '%s\n' "${a[@]}" | median) mb=$(printf '%s\n' "${b[@]}" | median)
      ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
      log "$t $path ${threads}T: $ma -> $mb tok/s (${ratio}x)"
      rows+="| ${t^^} | $path | $threads | $(printf '%.1f' "$ma") | $(printf '%.1f' "$mb") | ${ratio}x | ${a[*]} / ${b[*]} |"$'\n'
    done
  done
done

out=$root/benchmarks/results/$name.md
{
  echo "# Decode, two builds side by side (110M-shaped models)"
  echo
  echo "\`benchmarks/decode_ab.sh\`, $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"
  echo "$(nproc) cores, $rounds rounds per cell in ABBA order, $n_gen decoded tokens after a 16-token prompt; before:"
  echo "\`$before\`, after: \`$after\`. Median tokens/s by the wall clock; best = the widest SIMD path the CPU"
  echo "has, avx2 = \`TM_NO_AVX512=1 TM_NO_VNNI=1\`."
  echo
  echo "| model | path | threads | before tok/s | after tok/s | after / before | runs (before / after) |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s' "$rows"
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
