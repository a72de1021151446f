#!/usr/bin/env bash
# Makes tests/data/truthfulqa_loglik_<model>.jsonl: llama.cpp's summed
# log-likelihoods of every choice (MC0, MC1, MC2) of the first 20 TruthfulQA
# items after the six-shot primer, on the ids tracemark's _encode_pair split
# gives (bench_loglik --dump-requests), for test_loglik.c. Not run by CI (it
# needs the llama.cpp peer, see ../shared/tools/README.md).
#
# The peer runs llama.cpp with an F32 KV cache and flash attention off
# (llamaref.c with three context parameters set, patched below), the
# arithmetic tracemark's engine does; llama.cpp's defaults (F16 cache, flash
# attention with an F16 accumulator) move summed log-likelihoods of 30-90
# tokens by up to 0.12 on stories260K, which docs/evals-hallucination.md reports.
#
# usage: tests/data/make_truthfulqa_loglik.sh BUILD_DIR   (run from the repository root)
set -euo pipefail
build=${1:-build}
shared=${SHARED:-../shared}
REF=${REF:-/tmp/llamaref}
work=$(mktemp -d)
"$shared/tools/build-llamaref.sh" >/dev/null
lib=$REF/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
sed 's/cp.n_threads_batch = threads;/cp.n_threads_batch = threads; cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;/; s/printf("%s%.6g", i?",":"", lg\[i\])/printf("%s%.9g", i?",":"", lg[i])/' \
    "$shared/tools/llamaref.c" > "$work/llamaref_f32kv.c"
grep -q 'LLAMA_FLASH_ATTN_TYPE_DISABLED' "$work/llamaref_f32kv.c"
grep -q '%s%.9g' "$work/llamaref_f32kv.c"
gcc -O2 -o "$work/llamaref" "$work/llamaref_f32kv.c" -I"$REF/lcpp/include" -I"$REF/lcpp/ggml/include" -L"$lib" \
    -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$lib" -lm
"$build/tracemark" model quantize "$shared/models/stories260K.gguf" "$work/stories260K-q8_0.gguf" Q8_0 >/dev/null 2>&1
for pair in "stories260K:$shared/models/stories260K.gguf" "stories260K-q8_0:$work/stories260K-q8_0.gguf" \
            "llama-2-tiny-random:$shared/models/llama-2-tiny-random.gguf"; do
    name=${pair%%:*} model=${pair#*:}
    "$build/bench_loglik" --model "$model" --data "$shared/data/truthfulqa/mc_task.json" --limit 20 --mode reuse \
        --dump-requests "$work/$name.requests.jsonl" >/dev/null
    "$work/llamaref" "$lib" "$model" loglik "$work/$name.requests.jsonl" - 1 > "$work/$name.llamacpp.jsonl"
    python3 - "$work/$name.requests.jsonl" "$work/$name.llamacpp.jsonl" "$model" \
        "tests/data/truthfulqa_loglik_$name.jsonl" <<'PY'
import hashlib, json, sys
requests = [json.loads(l) for l in open(sys.argv[1])]
outputs = [json.loads(l) for l in open(sys.argv[2])]
assert len(requests) == len(outputs)
model_sha = hashlib.sha256(open(sys.argv[3], 'rb').read()).hexdigest()
with open(sys.argv[4], 'w') as f:
    f.write(json.dumps({"model_sha256": model_sha, "items": 20, "peer": "llama.cpp (node-llama-cpp 3.21.1), F32 KV cache, flash attention off",
                        "command": "tests/data/make_truthfulqa_loglik.sh build"}) + "\n")
    for r, o in zip(requests, outputs):
        assert o["n_cont"] == r["n_cont"], (r, o)
        ids = ",".join(str(i) for i in r["ids"])
        f.write(json.dumps({"item": r["item"], "set": r["set"], "choice": r["choice"], "n_ids": len(r["ids"]),
                            "n_cont": r["n_cont"], "ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
                            "ll": o["ll"], "greedy": o["greedy"]}) + "\n")
PY
done
# The Q8_0 model's logits after BOS alone (one token: no batch, no cache to
# carry a rounding difference forward), all 9 digits, for test_loglik.c.
"$work/llamaref" "$lib" "$work/stories260K-q8_0.gguf" logits "" 1 1 | python3 -c '
import hashlib, json, sys
lines = sys.stdin.read().splitlines()
assert json.loads(lines[0])["prompt_ids"] == [1]
sha = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
with open("tests/data/stories260K-q8_0.bos.llamacpp.logits.json", "w") as f:
    json.dump({"model_sha256": sha, "peer": "llama.cpp (node-llama-cpp 3.21.1), F32 KV cache, flash attention off, one token",
               "command": "tests/data/make_truthfulqa_loglik.sh build", "ids": [1], "logits": json.loads(lines[1])["logits"]}, f)
    f.write("\n")
' "$work/stories260K-q8_0.gguf"
rm -rf "$work"
