#!/usr/bin/env bash
# Continuous batching's throughput, as `tracemark serve --parallel N` runs it:
# aggregate decode tokens/s of 1, 2, 4 and 8 streams batched through
# tm_context_eval_batch on the Llama-2-110M-shaped Q4_K_M model (synthesised
# once into $TMPDIR/tracemark-bench/models), plain and watermarked (KGW), by the
# wall clock and by the engine thread's CPU clock (1 thread: the work itself,
# whatever else the machine runs). Writes benchmarks/results/batch.jsonl and
# batch.md and prints the table. Never asserts a speed.
# Usage: benchmarks/batch.sh [--build-dir DIR] [--threads N] [--steps N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build threads=1 steps=64
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --threads) threads=$2; shift ;;
    --steps) steps=$2; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "batch.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
shared=${TRACEMARK_FIXTURES:-$root/../shared}
work=${TMPDIR:-/tmp}/tracemark-bench
mkdir -p "$work/models" benchmarks/results
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target tracemark bench_batch >/dev/null
model=$work/models/llama2-110m-Q4_K_M.gguf
[ -f "$model" ] || "$build/tracemark" model synth --like llama2-110m --type Q4_K_M --out "$model" \
  --tokenizer "$shared/models/llama-2-tiny-random.gguf" >/dev/null
key=$work/batch.key
[ -f "$key" ] || "$build/tracemark" keygen --out "$key" >/dev/null
out=benchmarks/results/batch.jsonl
OMP_NUM_THREADS=$threads "$build/bench_batch" "$model" "$key" configs/schemes/kgw-lefthash.yaml "$threads" "$steps" > "$out.tmp"
mv "$out.tmp" "$out"
python3 - "$out" "$(uptime)" > benchmarks/results/batch.md.tmp <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("# Continuous batching: aggregate decode tokens/s (llama2-110m shape, Q4_K_M)\n")
print(f"{rows[0]['threads']} engine thread(s), {rows[0]['steps']} steps after a 16-token prompt per stream; "
      f"watermark {rows[0]['scheme']}; medians of 5 rounds. Load: {sys.argv[2].strip()}\n")
print("| streams | CPU clock: plain tok/s | watermarked tok/s | × one stream | watermark overhead | "
      "wall clock: watermarked tok/s | × one stream |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    c, w = r["cpu"], r["wall"]
    print(f"| {r['streams']} | {c['plain_tokens_per_second']:.0f} | {c['watermarked_tokens_per_second']:.0f} | "
          f"{c['speedup_over_one_stream']:.2f}× | {c['watermark_overhead_percent']:+.1f}% | "
          f"{w['watermarked_tokens_per_second']:.0f} | {w['speedup_over_one_stream']:.2f}× |")
PY
mv benchmarks/results/batch.md.tmp benchmarks/results/batch.md
cat benchmarks/results/batch.md
