#!/usr/bin/env bash
# Zero-shot detection throughput on the Llama-2-110M-shaped model: texts/s of
# each method (likelihood, log-rank, entropy, Fast-DetectGPT, Binoculars with a
# second 110M model as performer) on texts of 200 tokens and of 30 tokens
# (tweets, answers), the room's paths side by side in one run per length
# (bench_zeroshot): one text at a time (each window's positions in one
# prompt-style pass, tm_context_eval_rows), the batch path (many texts packed
# into passes of up to 256 rows, tm_zeroshot_score_ids_many), one position at
# a time, and a decode batch of several texts per pass (tm_context_eval_batch). Both models are random
# Q4_0 Llama-2-110M shapes from `tracemark model synth` (seeds 1 and 2, Llama
# 2's 32000-token vocabulary), cached in $TMPDIR. Writes
# benchmarks/results/zeroshot.jsonl and zeroshot.md (atomically) and prints the
# Markdown. Figures are process CPU seconds at 1 thread (wall time on a shared
# machine mostly measures the other tenants) and wall seconds beside them.
# Never asserts a speed.
#
# usage: benchmarks/zeroshot.sh [BUILD_DIR] [--texts K] [--short-texts K] [--batch B]   (from the repository root)
set -euo pipefail
build=build texts=4 short_texts=32 batch=4
while [ $# -gt 0 ]; do
  case "$1" in
    --texts) texts=$2; shift ;;
    --short-texts) short_texts=$2; shift ;;
    --batch) batch=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
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
for length in "200 $texts" "30 $short_texts"; do
  set -- $length
  "$build/bench_zeroshot" "$models/llama2-110m-q4_0-seed1.gguf" "$models/llama2-110m-q4_0-seed2.gguf" \
    --tokens "$1" --texts "$2" --batch "$batch" --threads 1 >>"$tmp"
done
python3 - "$tmp" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(git rev-parse --short=12 HEAD)" "$(uptime | sed 's/.*load average: //')" \
  >"$tmp.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"# Zero-shot detection throughput ({sys.argv[2]}, commit {sys.argv[3]}, load average {sys.argv[4]})\n")
r0 = rows[0]
counts = ", ".join(f"{t} tokens: {k} texts" for t, k in dict((r["tokens"], r["texts"]) for r in rows).items())
print(f"Model: {r0['model']} shape, Q4_0 (`tracemark model synth --like llama2-110m --type Q4_0`), "
      f"{counts}, 1 thread, window = the model's context. texts/s per CPU second of the process "
      "(CLOCK_PROCESS_CPUTIME_ID; a niced fuzzing job shares the machine, so wall-clock texts/s, beside it, "
      "mostly measures the other tenants); `benchmarks/zeroshot.sh`.\n")
print("| tokens | method | path | texts/s (CPU) | tokens/s (CPU) | texts/s (wall) | vs one text at a time | vs one position at a time |")
print("|---|---|---|---|---|---|---|---|")
def key(r): return (r["tokens"], r["method"])
one = {key(r): r["texts_per_cpu_s"] for r in rows if r["path"].startswith("one position")}
alone = {key(r): r["texts_per_cpu_s"] for r in rows if r["path"].startswith("rows")}
for r in rows:
    ratio = f"{r['texts_per_cpu_s'] / one[key(r)]:.2f}x" if key(r) in one else "—"
    ratio_alone = f"{r['texts_per_cpu_s'] / alone[key(r)]:.2f}x" if key(r) in alone else "—"
    path = r["path"] + (f", {r['batch']} texts" if r["path"].startswith(("decode batch", "packed")) else "")
    print(f"| {r['tokens']} | {r['method']} | {path} | {r['texts_per_cpu_s']:.3f} | {r['texts_per_cpu_s'] * r['tokens']:.1f} | "
          f"{r['texts_per_s']:.3f} | {ratio_alone} | {ratio} |")
PY
mv "$tmp" "$results/zeroshot.jsonl"
mv "$tmp.md" "$results/zeroshot.md"
cat "$results/zeroshot.md"
