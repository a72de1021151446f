#!/usr/bin/env bash
# Continuous batching's throughput, as `tracemark serve --parallel N` runs it:
# aggregate decode tokens/s of 1, 2, 4 and 8 streams batched through
# tm_context_eval_batch on the Llama-2-110M-shaped Q4_K_M model (synthesised
# once into $TMPDIR/tracemark-bench/models), plain and watermarked (KGW), by the
# wall clock and by the engine thread's CPU clock (1 thread: the work itself,
# whatever else the machine runs), on each instruction-set path this CPU has:
# AVX-512 (the default where present), TM_NO_AVX512=1 (AVX2 with AVX-VNNI
# where present) and TM_NO_AVX512=1 TM_NO_VNNI=1 (plain AVX2). Writes
# benchmarks/results/batch.jsonl and batch.md (with --threads N > 1:
# batch-Nthreads.jsonl and .md, where the wall clock is the measure) and
# prints the tables, each with the memory read bandwidth at that thread count
# measured right before and after it: one stream is bound by it, so the
# speedups move with it (a starved stream gains more from batching). Never
# asserts a speed.
# Usage: benchmarks/batch.sh [--build-dir DIR] [--threads N] [--steps N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build threads=1 steps=48
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --threads) threads=$2; shift ;;
    --steps) steps=$2; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "batch.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
shared=${TRACEMARK_FIXTURES:-$root/../shared}
work=${TMPDIR:-/tmp}/tracemark-bench
mkdir -p "$work/models" benchmarks/results
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target tracemark bench_batch bench_bandwidth >/dev/null
model=$work/models/llama2-110m-Q4_K_M.gguf
[ -f "$model" ] || "$build/tracemark" model synth --like llama2-110m --type Q4_K_M --out "$model" \
  --tokenizer "$shared/models/llama-2-tiny-random.gguf" >/dev/null
key=$work/batch.key
[ -f "$key" ] || "$build/tracemark" keygen --out "$key" >/dev/null
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
paths=()
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if has avx512_vnni && has avx512bw && has avx512vl; then paths+=("avx512-vnni:"); fi
if has avx2 && has avx_vnni; then
  paths+=("avx2+avx-vnni:TM_NO_AVX512=1" "avx2:TM_NO_AVX512=1 TM_NO_VNNI=1")
elif has avx2; then
  paths+=("avx2:TM_NO_AVX512=1")
fi
[ ${#paths[@]} -gt 0 ] || paths=("portable:TM_NO_AVX2=1")
result=batch
[ "$threads" = 1 ] || result=batch-${threads}threads
out=benchmarks/results/$result.jsonl
: > "$out.tmp"
bandwidth() { # best read GB/s at $threads threads over a 512 MiB buffer
  "$build/bench_bandwidth" 512 "$threads" | python3 -c '
import json, sys
print(max(r["gb_s_best"] for r in map(json.loads, sys.stdin) if r.get("bench") == "bandwidth"))'
}
for entry in "${paths[@]}"; do
  name=${entry%%:*} env=${entry#*:}
  before=$(bandwidth)
  # shellcheck disable=SC2086 # env holds VAR=value words
  env $env OMP_NUM_THREADS="$threads" "$build/bench_batch" "$model" "$key" configs/schemes/kgw-lefthash.yaml \
    "$threads" "$steps" > "$out.rows"
  after=$(bandwidth)
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row["path"], row["env"] = sys.argv[2], sys.argv[3]
    row["bandwidth_gb_s"] = [float(sys.argv[4]), float(sys.argv[5])]
    print(json.dumps(row))' "$out.rows" "$name" "$env" "$before" "$after" >> "$out.tmp"
done
rm -f "$out.rows"
mv "$out.tmp" "$out"
python3 - "$out" "$(uptime)" > "benchmarks/results/$result.md.tmp" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("# Continuous batching: aggregate decode tokens/s (llama2-110m shape, Q4_K_M)\n")
print(f"{rows[0]['threads']} engine thread(s), {rows[0]['steps']} steps after a 16-token prompt per stream; "
      f"watermark {rows[0]['scheme']}; {rows[0]['rounds']} rounds, each timing every stream count back to back; "
      f"tokens/s are medians, speedups and overheads medians of the ratios within a round. "
      + ("With several threads the wall clock is the measure (the CPU clock is the calling thread's share). "
         if rows[0]['threads'] > 1 else "")
      + f"Load: {sys.argv[2].strip()}\n")
print("Written by `benchmarks/batch.sh`; what limits the speedup: `benchmarks/results/batch-limits.md`.\n")
for path in dict.fromkeys(r["path"] for r in rows):
    env = next(r["env"] for r in rows if r["path"] == path)
    bw = next(r["bandwidth_gb_s"] for r in rows if r["path"] == path)
    print(f"## {path}" + (f" (`{env}`)" if env else " (default)") + "\n")
    print(f"Read bandwidth at {rows[0]['threads']} thread(s): {bw[0]:.1f} GB/s before, {bw[1]:.1f} after.\n")
    print("| streams | CPU clock: plain tok/s | watermarked tok/s | × one stream | watermark overhead | "
          "wall clock: watermarked tok/s | × one stream |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["path"] != path:
            continue
        c, w = r["cpu"], r["wall"]
        print(f"| {r['streams']} | {c['plain_tokens_per_second']:.0f} | {c['watermarked_tokens_per_second']:.0f} | "
              f"{c['speedup_over_one_stream']:.2f}× | {c['watermark_overhead_percent']:+.1f}% | "
              f"{w['watermarked_tokens_per_second']:.0f} | {w['speedup_over_one_stream']:.2f}× |")
    print()
PY
mv "benchmarks/results/$result.md.tmp" "benchmarks/results/$result.md"
cat "benchmarks/results/$result.md"
