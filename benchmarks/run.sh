#!/usr/bin/env bash
# The speed of tracemark, measured in one run on this machine and side by side
# with llama.cpp (through ../shared/tools/llamaref) on the same model files:
# the machine and its memory read bandwidth; prompt and decode tokens/s, time
# to first token and peak memory per model, tensor type and thread count, as
# ratios to llama.cpp and against the decode bandwidth bound; the watermark's
# cost per scheme; the detector's throughput. Writes
# benchmarks/results/NAME.json and NAME.md (atomically) and prints the Markdown.
# Never asserts a speed (DESIGN.md); models, keys and raw output live under
# $TMPDIR, never in the repository. Run with --help for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: benchmarks/run.sh [--quick] [--name NAME] [--build-dir DIR] [--repeats N]

Measures tracemark side by side with llama.cpp in one run and writes
benchmarks/results/NAME.json and NAME.md (NAME: "quick" or "full" unless given).

  --quick          stories260K (1 thread) and the Llama-2-110M-shaped F32 model
                   (2 threads) only, shorter detection passes: about 3 minutes on
                   an idle 2-core machine
  (default)        stories260K, and the 110M model in F32, F16, Q8_0, Q4_0 and
                   Q4_K_M at 1 and 2 threads: about 10 minutes on an idle 2-core
                   machine, several times that under load
  --name NAME      results file name (letters, digits, . _ -)
  --build-dir DIR  Release build folder to configure and build (default build-bench)
  --repeats N      invocations per engine and configuration (default 3; the median
                   is reported, each invocation being a median of 3 runs itself)

Environment: TMPDIR (models, keys, llama.cpp peer and raw output go under
$TMPDIR/tracemark-bench and $TMPDIR/llamaref), TRACEMARK_FIXTURES (default
../shared), BENCH_TIMEOUT (seconds per invocation, default 1800).
Without ../shared/tools the llama.cpp peer, the 110M model and the quantized
types are skipped and tracemark is measured alone.
EOF
}

die() { echo "run.sh: error: $*" >&2; exit 1; }

quick=0 name="" build_dir="build-bench" repeats=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a value"; build_dir=$2; shift ;;
    --repeats) [ $# -ge 2 ] || die "--repeats needs a value"; repeats=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done
[ -n "$name" ] || { [ $quick = 1 ] && name=quick || name=full; }
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "--name '$name': use letters, digits, '.', '_' and '-' only"
[[ $repeats =~ ^[1-9][0-9]?$ ]] || die "--repeats '$repeats': give a number from 1 to 99"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${TRACEMARK_FIXTURES:-$root/../shared}
tmp=${TMPDIR:-/tmp}
work=$tmp/tracemark-bench
models=$work/models
timeout_s=${BENCH_TIMEOUT:-1800}
n_prompt=128 n_gen=64
case "$build_dir" in /*) build=$build_dir ;; *) build=$root/$build_dir ;; esac

for tool in python3 cmake git; do
  command -v $tool >/dev/null || die "$tool is required and not on PATH"
done
for f in models/stories260K.gguf models/tok512.bin data/truthfulqa/TruthfulQA.csv data/halueval/general_data.json; do
  [ -f "$shared/$f" ] || die "$shared/$f is missing (set TRACEMARK_FIXTURES to the shared fixtures folder)"
done
mkdir -p "$models" benchmarks/results
run_dir=$(mktemp -d "$work/run.XXXXXX")
records=$run_dir/records.jsonl
ok=0
trap '[ $ok = 1 ] && rm -rf "$run_dir" || echo "run.sh: raw output kept in $run_dir" >&2' EXIT

start=$(date +%s)
start_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log() { printf 'bench [%4ds] %s\n' $(($(date +%s) - start)) "$*" >&2; }
json_string() { python3 -c 'import json, sys; print(json.dumps(sys.stdin.read().strip()[-400:]))'; }
load_now() { awk '{ printf "[%s,%s,%s]", $1, $2, $3 }' /proc/loadavg; }
notes=()

if [ $quick = 1 ]; then
  log "quick run: about 3 minutes on an idle 2-core machine (more under load)"
else
  log "full run: about 10 minutes on an idle 2-core machine, several times that under load; --quick takes about 3"
fi
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# ---- build --------------------------------------------------------------------------------
log "building (Release) in $build"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j "$(nproc)" --target tracemark bench_generate bench_watermark bench_detect bench_bandwidth; } \
     >"$run_dir/build.log" 2>&1; then
  tail -n 20 "$run_dir/build.log" >&2
  die "the build failed (full log above in $run_dir/build.log)"
fi

# ---- peer ---------------------------------------------------------------------------------
llamaref="" llamalib="" peer=""
if [ -f "$shared/tools/build-llamaref.sh" ]; then
  log "building the llama.cpp peer (llamaref) in $tmp/llamaref"
  if line=$(REF="$tmp/llamaref" bash "$shared/tools/build-llamaref.sh" 2>"$run_dir/llamaref.log" | tail -n 1) &&
     read -r llamaref llamalib <<<"$line" && [ -x "$llamaref" ]; then
    version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
      "$tmp/llamaref/node_modules/node-llama-cpp/package.json" 2>/dev/null || echo "?")
    llama_commit=$(git -C "$tmp/llamaref/lcpp" rev-parse --short HEAD 2>/dev/null || echo "?")
    peer="llama.cpp $llama_commit (prebuilt CPU libraries of node-llama-cpp $version), through llamaref"
  else
    llamaref=""
    tail -n 5 "$run_dir/llamaref.log" >&2 || true
    log "could not build llamaref: measuring tracemark alone"
    notes+=("The llama.cpp peer could not be built here (see build-llamaref.sh); tracemark is measured alone.")
  fi
else
  log "no $shared/tools: llama.cpp peer unavailable, measuring tracemark alone"
  notes+=("No ../shared/tools: no llama.cpp peer, no 110M model and no quantized types; tracemark is measured alone.")
fi

# ---- machine ------------------------------------------------------------------------------
compiler_path=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" | head -n 1)
compiler=$("${compiler_path:-cc}" --version 2>/dev/null | head -n 1 || echo unknown)
python3 - "$compiler" "$(load_now)" >>"$records" <<'EOF'
import json, os, platform, subprocess, sys
lscpu = {}
for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
    key, _, value = line.partition(":")
    lscpu[key.strip()] = value.strip()
memory = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
l3_bytes = None
try:  # "32768K": the last-level cache, below which a model's weights are not read from memory
    size = open("/sys/devices/system/cpu/cpu0/cache/index3/size").read().strip()
    l3_bytes = int(size.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
except (OSError, ValueError):
    pass
flags = set(lscpu.get("Flags", "").split())
print(json.dumps({"section": "machine", "cpu": lscpu.get("Model name", platform.processor()),
                  "cores": os.cpu_count(), "memory_gib": round(memory / 2**20, 1),
                  "l3_cache": lscpu.get("L3 cache"), "l3_bytes": l3_bytes, "hypervisor": lscpu.get("Hypervisor vendor"),
                  "simd": " ".join(f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags),
                  "compiler": sys.argv[1], "kernel": platform.release(),
                  "load_at_start": sys.argv[2].strip("[]").replace(",", ", ")}))
EOF
log "measuring memory read bandwidth (2 GiB buffer, 1 and 2 threads)"
if ! "$build/bench_bandwidth" 2048 1,2 >"$run_dir/bandwidth.out" 2>"$run_dir/bandwidth.err"; then
  cat "$run_dir/bandwidth.err" >&2
  die "bench_bandwidth failed"
fi
while read -r line; do
  case "$line" in
    *'"bench":"openblas"'*) printf '{"section":"openblas","result":%s}\n' "$line" ;;
    *'"bench":"bandwidth"'*) printf '{"section":"bandwidth","result":%s}\n' "$line" ;;
  esac
done <"$run_dir/bandwidth.out" >>"$records"
grep bandwidth "$run_dir/bandwidth.out" | sed 's/^/bench         /' >&2

# ---- models -------------------------------------------------------------------------------
# Synthetic and quantized models are cached in $models, each written under a temporary
# name and renamed, so that an interrupted run never leaves half a model to be reused.
f32_110m=$models/llama2-110m-f32.gguf
have_110m=0
if [ -f "$shared/tools/synth_gguf.py" ] && [ -f "$shared/models/llama-2-tiny-random.gguf" ]; then
  if [ ! -f "$f32_110m" ]; then
    log "writing the Llama-2-110M-shaped F32 model (random weights, llama-2 tokenizer)"
    python3 "$shared/tools/synth_gguf.py" "$f32_110m.tmp" "$shared/models/llama-2-tiny-random.gguf" \
      768 12 12 12 2048 1024 >"$run_dir/synth.log" 2>&1 || { cat "$run_dir/synth.log" >&2; die "synth_gguf.py failed"; }
    mv "$f32_110m.tmp" "$f32_110m"
  fi
  have_110m=1
fi
declare -A ftype=([F16]=1 [Q8_0]=7 [Q4_0]=2 [Q4_K_M]=15)
model_file() { # TYPE -> path of the 110M model of that type (quantized with llama.cpp's quantizer on first use)
  local type=$1 lower
  lower=${type,,}
  local path=$models/llama2-110m-$lower.gguf
  [ "$type" = F32 ] && { echo "$f32_110m"; return 0; }
  if [ ! -f "$path" ]; then
    log "quantizing the 110M model to $type with llama.cpp's quantizer"
    "$llamaref" "$llamalib" "$f32_110m" quantize "$path.tmp" "${ftype[$type]}" "$(nproc)" \
      >"$run_dir/quantize.log" 2>&1 || { tail -n 5 "$run_dir/quantize.log" >&2; rm -f "$path.tmp"; return 1; }
    mv "$path.tmp" "$path"
  fi
  echo "$path"
}

configs=("stories260K|F32|$shared/models/stories260K.gguf|1")
if [ $have_110m = 1 ]; then
  if [ $quick = 1 ]; then
    configs+=("llama2-110m|F32|$f32_110m|2")
  else
    for type in F32 F16 Q8_0 Q4_0 Q4_K_M; do
      if [ $type != F32 ] && [ -z "$llamaref" ]; then
        notes+=("110M $type skipped: no quantizer without the llama.cpp peer.")
        continue
      fi
      path=$(model_file $type) || { notes+=("110M $type skipped: llama.cpp's quantizer failed."); continue; }
      for threads in 1 2; do configs+=("llama2-110m|$type|$path|$threads"); done
    done
  fi
fi

# ---- generation ---------------------------------------------------------------------------
# One invocation of an engine: its JSON result with peak memory (/usr/bin/time -v) and wall
# time, or an error record. Never aborts the run: a failure is reported in the tables.
have_time=0
[ -x /usr/bin/time ] && have_time=1 || notes+=("/usr/bin/time is missing: no peak memory figures.")
invoke() { # ENGINE MODEL TYPE PATH THREADS REP FIRST_OF_PAIR LOAD BYTES_JSON
  local engine=$1 model=$2 type=$3 path=$4 threads=$5 rep=$6 first=$7 load=$8 bytes=$9
  local cmd out rss=null wall t0 line
  if [ "$engine" = tracemark ]; then
    cmd=("$build/bench_generate" "$path" "$n_prompt" "$n_gen" "$threads")
  else
    cmd=("$llamaref" "$llamalib" "$path" bench "$n_prompt" "$n_gen" "$threads")
  fi
  [ $have_time = 1 ] && cmd=(/usr/bin/time -v -o "$run_dir/time.txt" "${cmd[@]}")
  t0=$(date +%s.%N)
  if out=$(timeout "$timeout_s" "${cmd[@]}" 2>"$run_dir/engine.err"); then
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    line=$(grep '^{' <<<"$out" | tail -n 1)
    [ $have_time = 1 ] && rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$run_dir/time.txt")
    python3 - "$line" "$engine" "$model" "$type" "$threads" "$rep" "$first" "$load" "${rss:-null}" "$wall" "$bytes" \
      $n_prompt $n_gen <<'EOF' >>"$records"
import json, sys
line, engine, model, type_, threads, rep, first, load, rss, wall, size, n_prompt, n_gen = sys.argv[1:]
r = json.loads(line)
record = {"section": "generate", "engine": engine, "model": model, "type": type_, "threads": int(threads),
          "rep": int(rep), "first_of_pair": first == "1", "load": json.loads(load), "n_prompt": int(n_prompt),
          "n_gen": int(n_gen), "prompt_tok_s": r["prompt_tok_s"], "decode_tok_s": r["decode_tok_s"],
          "load_ms": r.get("load_ms"), "max_rss_kb": json.loads(rss), "wall_s": float(wall)}
record.update(json.loads(size))
print(json.dumps(record))
EOF
    printf '%s' "$line"
  else
    local status=$?
    local message
    message=$( { echo "exit status $status"; tail -n 3 "$run_dir/engine.err"; } | json_string)
    printf '{"section":"generate","engine":"%s","model":"%s","type":"%s","threads":%s,"rep":%s,"first_of_pair":%s,"load":%s,"n_prompt":%s,"n_gen":%s,"error":%s}\n' \
      "$engine" "$model" "$type" "$threads" "$rep" "$([ "$first" = 1 ] && echo true || echo false)" "$load" \
      $n_prompt $n_gen "$message" >>"$records"
    printf 'failed (%s)' "$message"
  fi
}

# The read bandwidth right before and after a configuration's pairs (1 GiB buffer, 1 thread and
# the configuration's count): this VM's 2-thread bandwidth has read 47 GB/s in one run and 78 in
# the next, so the bound is taken from measurements made next to the decode figures it bounds.
bandwidth_at() { # MODEL TYPE THREADS WHEN
  [ "$1" = stories260K ] && return 0 # in cache: no bound
  local counts=1 line
  [ "$3" != 1 ] && counts=1,$3
  "$build/bench_bandwidth" 1024 "$counts" 2>/dev/null | grep '"bench":"bandwidth"' | while read -r line; do
    printf '{"section":"bandwidth_at","model":"%s","type":"%s","threads":%s,"when":"%s","result":%s}\n' \
      "$1" "$2" "$3" "$4" "$line"
  done >>"$records"
}

short() { sed -n 's/.*"prompt_tok_s":\([0-9.]*\),"decode_tok_s":\([0-9.]*\).*/prompt \1, decode \2 tok\/s/p;/^failed/p' <<<"$1"; }
pair_110m_s=""
for entry in "${configs[@]}"; do
  IFS='|' read -r model type path threads <<<"$entry"
  bytes=$(python3 "$root/benchmarks/gguf_weights.py" "$path" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(json.dumps({"file_bytes": r["file_bytes"], "decode_bytes_per_token": r["decode_bytes_per_token"]}))')
  engines=(tracemark)
  [ -n "$llamaref" ] && engines+=(llama.cpp)
  bandwidth_at "$model" "$type" "$threads" before
  t_config=$(date +%s)
  for rep in $(seq 1 "$repeats"); do
    # Alternate which engine goes first, so that neither always runs on a warmer or quieter machine.
    order=("${engines[@]}")
    if [ $((rep % 2)) = 0 ] && [ ${#engines[@]} = 2 ]; then order=(llama.cpp tracemark); fi
    load=$(load_now)
    first=1
    for engine in "${order[@]}"; do
      result=$(invoke "$engine" "$model" "$type" "$path" "$threads" "$rep" $first "$load" "$bytes")
      log "$model $type, $threads thr, run $rep/$repeats, load ${load//,/ }: $engine $(short "$result")"
      first=0
    done
  done
  [ "$model/$type/$threads" = llama2-110m/F32/2 ] && pair_110m_s=$(( ($(date +%s) - t_config) / repeats ))
  bandwidth_at "$model" "$type" "$threads" after
done

# ---- watermark overhead -------------------------------------------------------------------
key=$run_dir/bench.key
"$build/tracemark" keygen --out "$key" >/dev/null || die "tracemark keygen failed"
schemes=("$root"/configs/schemes/*.yaml)
[ -f "${schemes[0]}" ] || die "no scheme configs in configs/schemes/"
wm_models=("stories260K|$shared/models/stories260K.gguf|1")
# The 110M model at the speed the budget is set for (issue 19): Q4_K_M where it is cached or llama.cpp's
# quantizer can make it, else F32.
if [ $have_110m = 1 ]; then
  wm_q4=$models/llama2-110m-q4_k_m.gguf
  if [ -f "$wm_q4" ] || { [ -n "$llamaref" ] && wm_q4=$(model_file Q4_K_M); }; then
    wm_models+=("llama2-110m-q4_k_m|$wm_q4|2")
    # The same with llama.cpp's default truncation, where KGW and Unigram may skip what cannot
    # survive it, on logits as peaked as a trained model's: the synthesised model's are flat
    # (std about 0.6 over the vocabulary, against 5-10 for the trained stories260K).
    wm_models+=("llama2-110m-q4_k_m, top-k 40, top-p 0.95, min-p 0.05, temperature 0.8, logits x6|$wm_q4|2|BENCH_WM_TOP_K=40 BENCH_WM_TOP_P=0.95 BENCH_WM_MIN_P=0.05 BENCH_WM_TEMPERATURE=0.8 BENCH_WM_LOGIT_SCALE=6")
  else
    wm_models+=("llama2-110m-f32|$f32_110m|2")
    notes+=("Watermark overhead on the F32 110M model: no Q4_K_M model without llama.cpp's quantizer.")
  fi
fi
# Every SIMD path the machine has, side by side: the best one, then AVX2 forced where the best is AVX-512.
wm_paths=("")
[ "$(env -u TM_NO_AVX512 "$build/bench_watermark" --path 2>/dev/null)" = avx512 ] && wm_paths+=("TM_NO_AVX512=1")
for entry in "${wm_models[@]}"; do
  IFS='|' read -r model path threads sampling <<<"$entry"
  for wm_env in "${wm_paths[@]}"; do
    load=$(load_now)
    log "watermark overhead on $model ($threads thr${wm_env:+, $wm_env}), ${#schemes[@]} schemes, load ${load//,/ }"
    # shellcheck disable=SC2086 # the settings are NAME=VALUE words
    if env $wm_env $sampling "$build/bench_watermark" "$path" "$key" "$threads" "${schemes[@]}" >"$run_dir/watermark.out" \
         2>"$run_dir/watermark.err"; then
      while read -r line; do
        printf '{"section":"watermark","model":"%s","threads":%s,"load":%s,"result":%s}\n' "$model" "$threads" "$load" "$line"
      done <"$run_dir/watermark.out" >>"$records"
    else
      printf '{"section":"watermark-error","model":"%s","threads":%s,"error":%s}\n' "$model" "$threads" \
        "$(tail -n 3 "$run_dir/watermark.err" | json_string)" >>"$records"
      log "bench_watermark failed on $model: $(tail -n 1 "$run_dir/watermark.err")"
    fi
  done
done

# ---- detection throughput -----------------------------------------------------------------
corpus=$work/corpus-truthfulqa-halueval.txt
[ -f "$corpus" ] || python3 "$root/benchmarks/make_corpus.py" "$shared/data" "$corpus" >/dev/null ||
  die "could not build the detection corpus from $shared/data"
seconds=1
[ $quick = 1 ] && seconds=0.25
load=$(load_now)
log "detection throughput, ${#schemes[@]} schemes, 1 and 2 threads, ${seconds} s a measurement, load ${load//,/ }"
printf '{"section":"detect-load","load":%s}\n' "$load" >>"$records"
if BENCH_DETECT_SECONDS=$seconds "$build/bench_detect" "$shared/models/tok512.bin" "$corpus" 1,2 "${schemes[@]}" \
     >"$run_dir/detect.out" 2>"$run_dir/detect.err"; then
  while read -r line; do printf '{"section":"detect","result":%s}\n' "$line"; done <"$run_dir/detect.out" >>"$records"
else
  while read -r line; do printf '{"section":"detect","result":%s}\n' "$line"; done <"$run_dir/detect.out" >>"$records"
  printf '{"section":"detect-error","error":%s}\n' "$(tail -n 3 "$run_dir/detect.err" | json_string)" >>"$records"
  log "bench_detect failed: $(tail -n 1 "$run_dir/detect.err")"
fi

# ---- results ------------------------------------------------------------------------------
elapsed=$(($(date +%s) - start))
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit + uncommitted changes"
if [ $quick = 1 ] && [ -n "$pair_110m_s" ] && [ -n "$llamaref" ]; then
  # A full run does 10 configurations of the 110M model; relative to F32 at 2 threads they cost
  # about 1.9 (F32, 1 thread), 0.6/1.1 (F16), 0.5/0.9 (Q8_0), 0.45/0.8 (Q4_0, Q4_K_M), ~9.5 in all.
  estimate=$(( (elapsed + pair_110m_s * repeats * 85 / 10 + 60) / 60 ))
  notes+=("At this run's speed a full run would take about $estimate minutes.")
fi
{
  printf '{"section":"meta","name":"%s","mode":"%s","date":"%s","commit":"%s","elapsed_s":%s,"peer":%s,"notes":%s}\n' \
    "$name" "$([ $quick = 1 ] && echo quick || echo full)" "$start_date" "$commit" "$elapsed" \
    "$( [ -n "$peer" ] && printf '%s' "$peer" | json_string || echo null)" \
    "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' ${notes[@]+"${notes[@]}"})"
  cat "$records"
} >"$run_dir/final.jsonl"
cp "$run_dir/final.jsonl" "$work/$name.records.jsonl" # to re-render with report.py without rerunning
python3 "$root/benchmarks/report.py" "$run_dir/final.jsonl" "$root/benchmarks/results/$name"
log "wrote benchmarks/results/$name.json and $name.md in $elapsed s"
ok=1
