#!/usr/bin/env bash
# Zero-shot detection throughput on the Llama-2-110M-shaped model: texts/s of
# each method (likelihood, log-rank, entropy, Fast-DetectGPT, Binoculars with a
# second 110M model as performer) on texts of 200 tokens, the room's path (each
# window's positions in one prompt-style pass, tm_context_eval_rows) beside one
# position at a time and beside a decode batch of several texts per pass
# (tm_context_eval_batch), in one run (bench_zeroshot). Both models are random
# Q4_0 Llama-2-110M shapes from `tracemark model synth` (seeds 1 and 2, Llama
# 2's 32000-token vocabulary), cached in $TMPDIR. Writes
# benchmarks/results/zeroshot.jsonl and zeroshot.md (atomically) and prints the
# Markdown. Figures are process CPU seconds at 1 thread (wall time on a shared
# machine mostly measures the other tenants) and wall seconds beside them.
# Never asserts a speed.
#
# usage: benchmarks/zeroshot.sh [BUILD_DIR] [--texts K] [--batch B]   (from the repository root)
set -euo pipefail
build=build texts=4 batch=4
while [ $# -gt 0 ]; do
  case "$1" in
    --texts) texts=$2; shift ;;
    --batch) batch=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) build=$1 ;;
  esac
  shift
done
cmake --build "$build" --target tracemark bench_zeroshot >/dev/null
models=${TMPDIR:-/tmp}/tracemark-zeroshot-models
mkdir -p "$models"
for seed in 1 2; do
  out="$models/llama2-110m-q4_0-seed$seed.gguf"
  [ -f "$out" ] && continue
  "$build/tracemark" model synth --like llama2-110m --type Q4_0 --seed "$seed" --out "$out.tmp" --force >/dev/null 2>&1
  mv "$out.tmp" "$out"
done
results=benchmarks/results
tmp=$(mktemp "$results/.zeroshot.XXXXXX")
trap 'rm -f "$tmp" "$tmp.md"' EXIT
"$build/bench_zeroshot" "$models/llama2-110m-q4_0-seed1.gguf" "$models/llama2-110m-q4_0-seed2.gguf" \
  --tokens 200 --texts "$texts" --batch "$batch" --threads 1 >"$tmp"
python3 - "$tmp" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(git rev-parse --short=12 HEAD)" "$(uptime | sed 's/.*load average: //')" \
  >"$tmp.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"# Zero-shot detection throughput ({sys.argv[2]}, commit {sys.argv[3]}, load average {sys.argv[4]})\n")
r0 = rows[0]
print(f"Model: {r0['model']} shape, Q4_0 (`tracemark model synth --like llama2-110m --type Q4_0`), "
      f"{r0['tokens']} tokens per text, {r0['texts']} texts, 1 thread. texts/s per CPU second of the process "
      "(wall-clock texts/s beside it); `benchmarks/zeroshot.sh`.\n")
print("| method | path | texts/s (CPU) | tokens/s (CPU) | texts/s (wall) | vs one position at a time |")
print("|---|---|---|---|---|---|")
one = {r["method"]: r["texts_per_cpu_s"] for r in rows if r["path"].startswith("one position")}
for r in rows:
    ratio = f"{r['texts_per_cpu_s'] / one[r['method']]:.2f}x" if r["method"] in one else "—"
    path = r["path"] + (f", {r['batch']} texts" if r["path"].startswith("decode batch") else "")
    print(f"| {r['method']} | {path} | {r['texts_per_cpu_s']:.3f} | {r['texts_per_cpu_s'] * r['tokens']:.1f} | "
          f"{r['texts_per_s']:.3f} | {ratio} |")
PY
mv "$tmp" "$results/zeroshot.jsonl"
mv "$tmp.md" "$results/zeroshot.md"
cat "$results/zeroshot.md"
