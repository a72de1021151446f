#!/usr/bin/env bash
# The watermark's cost per token, two builds side by side: each build's
# bench_watermark replays the very same recorded logits (BENCH_WM_LOGITS) through
# plain sampling and through every scheme in configs/schemes, on each SIMD path
# the CPU has (AVX-512, and AVX2 forced with TM_NO_AVX512=1), the builds taking
# turns in ABBA order so that neither always runs first. Prints, per scheme and
# path, the median sampling step and its extra over plain sampling (each round's
# scheme minus the same round's plain run), before -> after, and writes it to
# benchmarks/results/NAME.md. In the sampling thread's CPU time, so other load
# on the machine counts little; schemes whose code did not change between the
# builds show the run's noise floor. Never asserts a speed (DESIGN.md).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/watermark_ab.sh BEFORE_BUILD AFTER_BUILD [--rounds N] [--model MODEL] [--name NAME]

BEFORE_BUILD and AFTER_BUILD are Release build folders holding bench_watermark
(e.g. a worktree of the older commit, built with cmake --build DIR --target
bench_watermark). The logits are recorded once, by AFTER_BUILD, from MODEL at 2
threads (default: the 110M-shaped Q4_K_M model benchmarks/batch.sh and
benchmarks/decode.sh synthesise under $TMPDIR/tracemark-bench/models).

  --rounds N   rounds per build and path (default 12; the median is reported)
  --name NAME  results file benchmarks/results/NAME.md (default watermark-ab)

BENCH_WM_TOP_K, BENCH_WM_TOP_P, BENCH_WM_MIN_P, BENCH_WM_TEMPERATURE and
BENCH_WM_LOGIT_SCALE in the environment reach both builds' bench_watermark
(a build older than those variables ignores them: give it this bench_watermark.c).
EOF
}

die() { echo "watermark_ab.sh: error: $*" >&2; exit 1; }

[ $# -ge 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; } && { usage; exit 0; }
[ $# -ge 2 ] || { usage >&2; exit 2; }
before=$1 after=$2
shift 2
rounds=12 name=watermark-ab model=${TMPDIR:-/tmp}/tracemark-bench/models/llama2-110m-Q4_K_M.gguf
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || die "--rounds needs a value"; rounds=$2; shift ;;
    --model) [ $# -ge 2 ] || die "--model needs a value"; model=$2; shift ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done
[[ $rounds =~ ^[1-9][0-9]?$ ]] || die "--rounds '$rounds': give a number from 1 to 99"
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--name '$name': use letters, digits, '.', '_' and '-' only"
for build in "$before" "$after"; do
  [ -x "$build/bench_watermark" ] || die "$build/bench_watermark: not found (build it first)"
done
[ -f "$model" ] || die "$model: no such model (run benchmarks/batch.sh first, or give --model)"
[ -x "$after/tracemark" ] || die "$after/tracemark: not found (the key is made with it)"

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$after/tracemark" keygen --out "$work/key" >/dev/null
export BENCH_WM_LOGITS=$work/logits
schemes=("$root"/configs/schemes/*.yaml)
paths=(avx512)
[ "$("$after/bench_watermark" --path)" = avx512 ] || paths=()
paths+=(avx2)
"$after/bench_watermark" "$model" "$work/key" 2 >/dev/null # records the logits and the forward time
for ((r = 1; r <= rounds; r++)); do
  order=(before after)
  [ $((r % 2)) = 0 ] && order=(after before)
  for path in "${paths[@]}"; do
    env_path=()
    [ "$path" = avx2 ] && env_path=(TM_NO_AVX512=1)
    for side in "${order[@]}"; do
      build=$before
      [ "$side" = after ] && build=$after
      env "${env_path[@]}" "$build/bench_watermark" "$model" "$work/key" 2 "${schemes[@]}" |
        sed "s/^/$r $path $side /" >>"$work/runs"
    done
  done
  [ -t 2 ] && printf '\rwatermark_ab.sh: round %d of %d' "$r" "$rounds" >&2
done
[ -t 2 ] && echo >&2
mkdir -p "$root/benchmarks/results"
python3 - "$work/runs" "$rounds" "$(git -C "$root" rev-parse --short HEAD)" >"$work/out.md" <<'PY'
import json, os, statistics, sys, time
runs, rounds, commit = sys.argv[1], sys.argv[2], sys.argv[3]
# bench_watermark's sampling settings, passed through the environment (default: none of them)
names = {"BENCH_WM_TOP_K": "top-k", "BENCH_WM_TOP_P": "top-p", "BENCH_WM_MIN_P": "min-p",
         "BENCH_WM_TEMPERATURE": "temperature", "BENCH_WM_LOGIT_SCALE": "logits x"}
settings = ", ".join(f"{label} {os.environ[v]}" for v, label in names.items() if os.environ.get(v))
steps = {}
forward = None
for line in open(runs):
    r, path, side, text = line.split(" ", 3)
    d = json.loads(text)
    forward = d["forward_us"]
    steps.setdefault((path, d.get("config", "plain")), {}).setdefault(side, {})[r] = d["sampling_us"]
print(f"# The watermark's extra sampling time per token, two builds side by side\n")
print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, run from commit {commit}, {rounds} rounds per build "
      f"and path (ABBA order), the medians. 32000 candidates, "
      f"{'sampling with ' + settings if settings else 'no truncation'}; forward pass "
      f"{forward:.0f} us/token at 2 threads when the logits were recorded. Extra = the scheme's sampling step "
      f"minus plain sampling in the same round; share = extra / 5 ms (issue 19's budget: 2%).\n")
for path in sorted({p for p, _ in steps}, reverse=True):
    plain = steps[(path, "plain")]
    print(f"**{path} path**: plain sampling {statistics.median(plain['before'].values()):.0f} -> "
          f"{statistics.median(plain['after'].values()):.0f} us\n")
    print("| scheme | step us before -> after | extra us before -> after | extra / 5 ms after | ratio |")
    print("|---|---|---|---|---|")
    for (p, config), sides in sorted(steps.items()):
        if p != path or config == "plain":
            continue
        extra = {s: statistics.median(v - plain[s][r] for r, v in sides[s].items()) for s in ("before", "after")}
        step = {s: statistics.median(sides[s].values()) for s in ("before", "after")}
        print(f"| {config} | {step['before']:.0f} -> {step['after']:.0f} | {extra['before']:.0f} -> "
              f"{extra['after']:.0f} | {extra['after'] / 50:.1f}% | {extra['before'] / max(extra['after'], 1):.2f}x |")
    print()
PY
tmp=$root/benchmarks/results/.$name.md.tmp.$$
cp "$work/out.md" "$tmp" && mv "$tmp" "$root/benchmarks/results/$name.md"
cat "$work/out.md"
