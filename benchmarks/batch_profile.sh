#!/usr/bin/env bash
# Where a batched decode step spends its time: `perf record -e cpu-clock` of
# bench_batch timing 1, 4 and 8 streams (one count per run), the samples
# summed by what the functions do (matrix products, attention, sampling and
# the watermark, ...), the prompt's products (untimed by the benchmark) and
# the kernel's own samples left out. Needs perf; run benchmarks/batch.sh
# first (it builds bench_batch and synthesises the model). Prints shares;
# with the tokens/s bench_batch prints, they give each part's time per step.
# Usage: benchmarks/batch_profile.sh [--build-dir DIR] [--steps N] [COUNT...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build steps=48
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --steps) steps=$2; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || set -- 1 4 8
work=${TMPDIR:-/tmp}/tracemark-bench
model=$work/models/llama2-110m-Q4_K_M.gguf key=$work/batch.key
[ -f "$model" ] && [ -f "$key" ] || { echo "batch_profile.sh: run benchmarks/batch.sh first" >&2; exit 1; }
command -v perf >/dev/null || { echo "batch_profile.sh: perf is not installed" >&2; exit 1; }
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
for n in "$@"; do
  perf record -q -e cpu-clock -F 2000 -o "$data/$n.data" "$build/bench_batch" "$model" "$key" \
    configs/schemes/kgw-lefthash.yaml 1 "$steps" "$n" > "$data/$n.json" 2>/dev/null
  perf report -i "$data/$n.data" --no-children --sort symbol --stdio 2>/dev/null > "$data/$n.txt"
done
python3 - "$data" "$@" <<'PY'
import json, re, sys
data, counts = sys.argv[1], sys.argv[2:]
parts = [
    ("prompt", r"^(tiles_|unpack_|tm_quant_gemm)"),
    ("matrix products", r"^(q4_k|q6_k|matvec_|wide_|tm_batch_matvec|quantize_q8_k|tm_quant_matvec|tm_kernel_prepare)"),
    # softmax_in_place is the sampler's (over the vocabulary), not attention's
    ("attention", r"^(scores_|values_|tm_kernel_softmax|tm_kernel_attention|exp_shifted)"),
    ("expf (sampling; attention tails)", r"expf"),
    ("sampling and watermark", r"^(distribution_apply|softmax_in_place|kgw_|prf_|green_|tm_sampler|sampler_|tm_wm)"),
    ("norms, rope, swiglu, adds", r"^(tm_kernel_rmsnorm|rmsnorm|swiglu|rope_|tm_kernel_add|add_|tm_kernel_dequantize|tm_context_eval_batch)"),
]
print("| streams | tok/s (CPU, watermarked) | ms per step | " + " | ".join(p for p, _ in parts[1:]) + " | other |")
print("|---|---|---|" + "---|" * len(parts))
for n in counts:
    rate = json.loads(open(f"{data}/{n}.json").readline())["cpu"]["watermarked_tokens_per_second"]
    share = {p: 0.0 for p, _ in parts}
    other = system = 0.0
    for line in open(f"{data}/{n}.txt"):
        m = re.match(r"\s+([0-9.]+)%\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        pct, kind, symbol = float(m.group(1)), m.group(2), m.group(3)
        if kind == "k":
            system += pct
            continue
        for p, rx in parts:
            if re.search(rx, symbol):
                share[p] += pct
                break
        else:
            other += pct
    timed = 100 - share["prompt"] - system
    step = 1000 * int(n) / rate
    cells = [f"{step * share[p] / timed:.2f} ms ({100 * share[p] / timed:.0f}%)" for p, _ in parts[1:]]
    print(f"| {n} | {rate:.0f} | {step:.2f} | " + " | ".join(cells) + f" | {step * other / timed:.2f} ms |")
PY
