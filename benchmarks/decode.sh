#!/usr/bin/env bash
# Decode speed of the quantized types against the memory bandwidth bound, per
# instruction-set path, side by side with llama.cpp's matching CPU build in one
# run (issue 19). For each type (the Llama-2-110M-shaped model, random weights,
# quantized by llama.cpp's quantizer) and each path this CPU has, tracemark
# (path forced with TM_NO_AVX512 / TM_NO_VNNI) and llama.cpp (its best CPU
# variant for the best path; libggml-cpu-haswell.so loaded alone, from a
# folder that holds only it, for the AVX2 path) decode in turn, alternating who
# goes first, with the read bandwidth measured right before and after. Bound =
# bandwidth / bytes read per token. Writes benchmarks/results/NAME.json and
# NAME.md (atomically) and prints the Markdown. Never asserts a speed
# (DESIGN.md); models and raw output live under $TMPDIR, never in the repository.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/decode.sh [--types "Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K"] [--threads N]
                            [--repeats N] [--n-gen N] [--name NAME] [--build-dir DIR]

Decode tokens/s of tracemark and llama.cpp on the 110M-shaped model for each
quantized type and each instruction-set path this CPU has (AVX-512/VNNI best
path, AVX2 forced), with the measured bandwidth bound and % of it.

  --types T      quantized types (default: Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K)
  --threads N    decode threads (default 2)
  --repeats N    invocations per engine, path and type (default 3; median reported,
                 each invocation being a median of 3 runs itself)
  --n-gen N      decoded tokens per run (default 64)
  --name NAME    results file name (default decode)
  --build-dir D  Release build folder to configure and build (default build-bench)
  --cpu-only     only the second table (on a machine too loaded for wall-clock figures)
  --no-cpu-time  skip the second table: decode tokens per CPU-second at 1 thread, from
                 the CPU time (user + sys) of two invocations that differ only in the
                 number of decoded tokens; unlike tok/s it does not count the time the
                 process waits for a core, so it stays readable on a loaded machine

Needs ../shared/tools (llama.cpp peer, synthetic model). Environment: TMPDIR,
TRACEMARK_FIXTURES (default ../shared), BENCH_TIMEOUT (seconds per invocation,
default 900).
EOF
}
die() { echo "decode.sh: error: $*" >&2; exit 1; }

types="Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K" threads=2 repeats=3 n_gen=64 name=decode build_dir=build-bench cpu_time=1 wall=1
while [ $# -gt 0 ]; do
  case "$1" in
    --types) [ $# -ge 2 ] || die "--types needs a value"; types=$2; shift ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; threads=$2; shift ;;
    --repeats) [ $# -ge 2 ] || die "--repeats needs a value"; repeats=$2; shift ;;
    --n-gen) [ $# -ge 2 ] || die "--n-gen needs a value"; n_gen=$2; shift ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; build_dir=$2; shift ;;
    --no-cpu-time) cpu_time=0 ;;
    --cpu-only) wall=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--name '$name': use letters, digits, '.', '_' and '-' only"
[[ $threads =~ ^[1-9][0-9]?$ ]] || die "--threads '$threads': give a number from 1 to 99"
[[ $repeats =~ ^[1-9][0-9]?$ ]] || die "--repeats '$repeats': give a number from 1 to 99"
[[ $n_gen =~ ^[1-9][0-9]{0,3}$ ]] || die "--n-gen '$n_gen': give a number from 1 to 9999"
declare -A ftype=([Q8_0]=7 [Q4_0]=2 [Q4_K_M]=15 [Q5_K_M]=17 [Q6_K]=18)
for t in $types; do [ -n "${ftype[$t]:-}" ] || die "--types: unknown type '$t' (Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K)"; done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${TRACEMARK_FIXTURES:-$root/../shared}
tmp=${TMPDIR:-/tmp}
work=$tmp/tracemark-bench
models=$work/models
run_dir=$(mktemp -d "$tmp/tracemark-decode.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
mkdir -p "$models" benchmarks/results
timeout_s=${BENCH_TIMEOUT:-900}
log() { printf '[decode %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
load_now() { awk '{ printf "[%s,%s,%s]", $1, $2, $3 }' /proc/loadavg; }
[ -f "$shared/tools/build-llamaref.sh" ] || die "no $shared/tools: the llama.cpp peer and the synthetic model are needed"

build=$root/$build_dir
log "building bench_generate and bench_bandwidth (Release) in $build_dir"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$run_dir/cmake.log" 2>&1 || { tail -n 20 "$run_dir/cmake.log" >&2; die "cmake failed"; }
cmake --build "$build" -j2 --target bench_generate bench_bandwidth >>"$run_dir/cmake.log" 2>&1 ||
  { tail -n 20 "$run_dir/cmake.log" >&2; die "build failed"; }

line=$(REF="$tmp/llamaref" bash "$shared/tools/build-llamaref.sh" 2>"$run_dir/llamaref.log" | tail -n 1) ||
  { tail -n 5 "$run_dir/llamaref.log" >&2; die "could not build llamaref"; }
read -r llamaref llamalib <<<"$line"
[ -x "$llamaref" ] || die "llamaref was not built"
# llama.cpp's AVX2 build alone: ggml loads every libggml-cpu-*.so of the folder it is
# given and keeps the best one this CPU runs, so the folder holds only the haswell one.
haswell_dir=$tmp/llamaref-haswell-only
if [ -f "$llamalib/libggml-cpu-haswell.so" ]; then
  mkdir -p "$haswell_dir"
  cmp -s "$llamalib/libggml-cpu-haswell.so" "$haswell_dir/libggml-cpu-haswell.so" ||
    cp "$llamalib/libggml-cpu-haswell.so" "$haswell_dir/libggml-cpu-haswell.so"
else
  haswell_dir=""
fi

f32=$models/llama2-110m-f32.gguf
if [ ! -f "$f32" ]; then
  log "writing the Llama-2-110M-shaped F32 model (random weights, llama-2 tokenizer)"
  python3 "$shared/tools/synth_gguf.py" "$f32.tmp" "$shared/models/llama-2-tiny-random.gguf" 768 12 12 12 2048 1024 \
    >"$run_dir/synth.log" 2>&1 || { cat "$run_dir/synth.log" >&2; die "synth_gguf.py failed"; }
  mv "$f32.tmp" "$f32"
fi
model_file() { # TYPE -> the 110M model of that type, quantized by llama.cpp on first use
  local path=$models/llama2-110m-${1,,}.gguf
  if [ ! -f "$path" ]; then
    log "quantizing the 110M model to $1 with llama.cpp's quantizer"
    "$llamaref" "$llamalib" "$f32" quantize "$path.tmp" "${ftype[$1]}" "$(nproc)" >"$run_dir/quantize.log" 2>&1 ||
      { tail -n 5 "$run_dir/quantize.log" >&2; rm -f "$path.tmp"; return 1; }
    mv "$path.tmp" "$path"
  fi
  echo "$path"
}

# The paths: the best one this CPU has, and AVX2 forced (what an AVX2-only CPU runs).
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
paths=()
if has avx512_vnni || has avx_vnni; then
  best="AVX-512/VNNI"
  has avx512_vnni || best="AVX-VNNI"
  paths+=("$best||$llamalib|llama.cpp best CPU variant")
fi
if has avx2; then
  [ -n "$haswell_dir" ] && paths+=("AVX2|TM_NO_AVX512=1 TM_NO_VNNI=1|$haswell_dir|llama.cpp haswell") ||
    paths+=("AVX2|TM_NO_AVX512=1 TM_NO_VNNI=1||")
fi
[ ${#paths[@]} -gt 0 ] || die "this CPU has no AVX2: nothing to compare"

records=$run_dir/records.jsonl
: >"$records"
bandwidth() { # -> GB/s (median) at $threads threads
  "$build/bench_bandwidth" 1024 "$threads" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("bench") == "bandwidth": print(r["gb_s_median"])'
}
decode_rate() { # ENGINE ENV DIR MODEL -> decode tok/s or "failed"
  local out
  if [ "$1" = tracemark ]; then
    out=$(env $2 timeout "$timeout_s" "$build/bench_generate" "$4" 16 "$n_gen" "$threads" 2>>"$run_dir/err.log") || { echo failed; return; }
  else
    out=$(timeout "$timeout_s" "$llamaref" "$3" "$4" bench 16 "$n_gen" "$threads" 2>>"$run_dir/err.log") || { echo failed; return; }
  fi
  sed -n 's/.*"decode_tok_s":\([0-9.]*\).*/\1/p' <<<"$out" | tail -n 1
}

cpu_seconds() { # ENGINE ENV DIR MODEL N_GEN -> user + sys seconds of one 1-thread invocation
  local cmd
  if [ "$1" = tracemark ]; then cmd=(env $2 "$build/bench_generate" "$4" 16 "$5" 1); else cmd=("$llamaref" "$3" "$4" bench 16 "$5" 1); fi
  /usr/bin/time -f '%U %S' -o "$run_dir/cpu.txt" timeout "$timeout_s" "${cmd[@]}" >/dev/null 2>>"$run_dir/err.log" || { echo failed; return; }
  awk '{ printf "%.3f", $1 + $2 }' "$run_dir/cpu.txt"
}
cpu_rate() { # ENGINE ENV DIR MODEL -> decode tokens per CPU-second at 1 thread (3 runs of n_gen more tokens)
  local a b
  a=$(cpu_seconds "$1" "$2" "$3" "$4" 8)
  b=$(cpu_seconds "$1" "$2" "$3" "$4" $((8 + n_gen)))
  python3 -c 'import sys; a, b, n = sys.argv[1:]; print("null" if "failed" in (a, b) or float(b) <= float(a) else f"{3 * int(n) / (float(b) - float(a)):.2f}")' "$a" "$b" "$n_gen"
}
bandwidth1() { # 1-thread read bandwidth per CPU-second (the same clock as the decode rate)
  "$build/bench_bandwidth" 1024 1 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("bench") == "bandwidth": print(r["gb_s_cpu_median"])'; }

start=$(date +%s)
for type in $types; do
  path=$(model_file "$type") || { log "$type skipped: llama.cpp's quantizer failed"; continue; }
  per_token=$(python3 "$root/benchmarks/gguf_weights.py" "$path" | python3 -c 'import json, sys; print(json.load(sys.stdin)["decode_bytes_per_token"])')
  for entry in "${paths[@]}"; do
    IFS='|' read -r label envs libdir peer_name <<<"$entry"
    bw_before=$( [ $wall = 1 ] && bandwidth || true)
    for rep in $(seq 1 "$repeats"); do
      [ $wall = 1 ] || break
      order=(tracemark llama.cpp)
      [ -z "$libdir" ] && order=(tracemark)
      [ $((rep % 2)) = 0 ] && [ ${#order[@]} = 2 ] && order=(llama.cpp tracemark)
      load=$(load_now)
      for engine in "${order[@]}"; do
        rate=$(decode_rate "$engine" "$envs" "$libdir" "$path")
        log "$type $label run $rep/$repeats, load ${load//,/ }: $engine $rate tok/s"
        printf '{"type":"%s","path":"%s","engine":"%s","rep":%s,"load":%s,"decode_tok_s":%s}\n' "$type" "$label" \
          "$engine" "$rep" "$load" "$( [ "$rate" = failed ] || [ -z "$rate" ] && echo null || echo "$rate")" >>"$records"
      done
    done
    if [ $cpu_time = 1 ]; then
      for rep in $(seq 1 "$repeats"); do
        for engine in tracemark llama.cpp; do
          [ "$engine" = llama.cpp ] && [ -z "$libdir" ] && continue
          rate=$(cpu_rate "$engine" "$envs" "$libdir" "$path")
          log "$type $label 1 thread, CPU time, run $rep/$repeats: $engine $rate tok per CPU-s"
          printf '{"type":"%s","path":"%s","engine":"%s","rep":%s,"load":%s,"cpu_tok_s":%s}\n' "$type" "$label" \
            "$engine" "$rep" "$(load_now)" "$rate" >>"$records"
        done
      done
      printf '{"type":"%s","path":"%s","bandwidth1_cpu_gb_s":%s}\n' "$type" "$label" "$(bandwidth1)" >>"$records"
    fi
    bw_after=$( [ $wall = 1 ] && bandwidth || true)
    printf '{"type":"%s","path":"%s","peer":"%s","bandwidth_gb_s":[%s,%s],"decode_bytes_per_token":%s}\n' \
      "$type" "$label" "$peer_name" "${bw_before:-null}" "${bw_after:-null}" "$per_token" >>"$records"
  done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit + uncommitted changes"
python3 - "$records" "$root/benchmarks/results/$name" "$commit" "$threads" "$n_gen" "$(($(date +%s) - start))" \
  "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" <<'EOF'
import json, os, statistics, sys
records_path, out, commit, threads, n_gen, elapsed, cpu = sys.argv[1:]
runs, configs = [], []
cpu_runs, bw1 = [], {}
for line in open(records_path):
    r = json.loads(line)
    if "bandwidth1_cpu_gb_s" in r:
        bw1[(r["type"], r["path"])] = r["bandwidth1_cpu_gb_s"]
    elif "cpu_tok_s" in r:
        cpu_runs.append(r)
    else:
        (configs if "bandwidth_gb_s" in r else runs).append(r)
rows = []
for c in configs:
    def median(engine):
        v = [r["decode_tok_s"] for r in runs if r["type"] == c["type"] and r["path"] == c["path"]
             and r["engine"] == engine and r["decode_tok_s"] is not None]
        return statistics.median(v) if v else None
    loads = [r["load"][0] for r in runs if r["type"] == c["type"] and r["path"] == c["path"]]
    bws = [b for b in c["bandwidth_gb_s"] if b is not None]
    bw = statistics.median(bws) if bws else None
    bound = bw * 1e9 / c["decode_bytes_per_token"] if bw else None
    ours, theirs = median("tracemark"), median("llama.cpp")
    rows.append({"type": c["type"], "path": c["path"], "peer": c["peer"], "tracemark_tok_s": ours, "llama_cpp_tok_s": theirs,
                 "ratio": ours / theirs if ours and theirs else None, "bandwidth_gb_s": bw, "bound_tok_s": bound,
                 "percent_of_bound": 100 * ours / bound if ours and bound else None,
                 "load_1min": [min(loads), max(loads)] if loads else None})
meta = {"commit": commit, "threads": int(threads), "n_gen": int(n_gen), "elapsed_s": int(elapsed), "cpu": cpu}
f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
md = [f"# Decode at the bandwidth bound ({threads} threads, 110M-shaped model)", "",
      f"`benchmarks/decode.sh`, commit {commit}, {cpu}, {elapsed} s. Median of the invocations; "
      "bound = read bandwidth (median of before and after, same thread count) / bytes read per token.", "",
      "| type | path | tracemark tok/s | llama.cpp build | llama.cpp tok/s | ratio | bandwidth GB/s | bound tok/s | % of bound | load (1 min) |",
      "|---|---|---|---|---|---|---|---|---|---|"]
if all(r["tracemark_tok_s"] is None and r["llama_cpp_tok_s"] is None for r in rows):
    md = md[:4] + ["(--cpu-only: no wall-clock figures in this run.)"]
for r in rows if len(md) > 5 else []:
    load = "-" if not r["load_1min"] else f"{r['load_1min'][0]:.1f}-{r['load_1min'][1]:.1f}"
    md.append(f"| {r['type']} | {r['path']} | {f(r['tracemark_tok_s'])} | {r['peer'] or '-'} | {f(r['llama_cpp_tok_s'])} | "
              f"{f(r['ratio'], 2)} | {f(r['bandwidth_gb_s'])} | {f(r['bound_tok_s'])} | {f(r['percent_of_bound'], 0)} | {load} |")
cpu_rows = []
for c in configs:
    def cpu_median(engine):
        v = [r["cpu_tok_s"] for r in cpu_runs if r["type"] == c["type"] and r["path"] == c["path"]
             and r["engine"] == engine and r["cpu_tok_s"] is not None]
        return statistics.median(v) if v else None
    ours, theirs = cpu_median("tracemark"), cpu_median("llama.cpp")
    if ours is None and theirs is None:
        continue
    bw = bw1.get((c["type"], c["path"]))
    bound = bw * 1e9 / c["decode_bytes_per_token"] if bw else None
    cpu_rows.append({"type": c["type"], "path": c["path"], "peer": c["peer"], "tracemark_tok_per_cpu_s": ours,
                     "llama_cpp_tok_per_cpu_s": theirs, "ratio": ours / theirs if ours and theirs else None,
                     "bandwidth1_cpu_gb_s": bw, "bound_tok_s": bound,
                     "percent_of_bound": 100 * ours / bound if ours and bound else None})
if cpu_rows:
    md += ["", "Decode tokens per CPU-second at 1 thread (CPU time of two invocations that differ only in the number "
           "of decoded tokens: the time spent waiting for a core on a loaded machine is not in it); bound = the "
           "1-thread read bandwidth in bytes per CPU-second (bench_bandwidth's gb_s_cpu_median, same clock) / bytes per token.", "",
           "| type | path | tracemark tok/CPU-s | llama.cpp build | llama.cpp tok/CPU-s | ratio | 1-thread bandwidth GB/CPU-s | bound tok/CPU-s | % of bound |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in cpu_rows:
        md.append(f"| {r['type']} | {r['path']} | {f(r['tracemark_tok_per_cpu_s'])} | {r['peer'] or '-'} | "
                  f"{f(r['llama_cpp_tok_per_cpu_s'])} | {f(r['ratio'], 2)} | {f(r['bandwidth1_cpu_gb_s'])} | "
                  f"{f(r['bound_tok_s'])} | {f(r['percent_of_bound'], 0)} |")
text = "\n".join(md) + "\n"
for ext, data in ((".json", json.dumps({"meta": meta, "rows": rows, "cpu_rows": cpu_rows, "runs": runs, "cpu_runs": cpu_runs}, indent=1) + "\n"), (".md", text)):
    tmp = out + ext + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(data)
    os.replace(tmp, out + ext)
print(text)
EOF
