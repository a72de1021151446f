#!/usr/bin/env bash
# Remakes tests/data/zeroshot/stories260K-dist.jsonl: llama.cpp's per-position
# distribution facts (llamaref `dist`: lp, rank, entropy, var, and with the
# performer lp2 and xent) on the 20 texts' token ids already in that file
# (8 stories260K samples, 6 TruthfulQA question+answer, 6 HaluEval passages),
# with stories260K.gguf as the first model and, as the second, the random
# performer `tracemark model synth` writes (checked by SHA-256 in
# test_zeroshot.c). For test_zeroshot.c; not run by CI (it needs the llama.cpp
# peer, see ../shared/tools/README.md).
#
# The peer runs llama.cpp with an F32 KV cache and flash attention off
# (llamaref.c with three context parameters set, patched below: the peer tool
# itself is read-only), which is the arithmetic tracemark's engine does.
# llama.cpp's defaults (F16 K and V cache, flash attention) round every cached
# key and value to 11 bits; on out-of-domain text that moved log p by up to
# 0.035 and the ranks of near-tied tail tokens by dozens, which the earlier
# version of this file (made with the defaults) showed as a 2e-2 log-rank and
# 6e-3 Fast-DetectGPT disagreement. Ids go in, so tokenization is not part of
# the comparison.
#
# usage: tests/data/make_zeroshot_dist.sh BUILD_DIR   (run from the repository root)
set -euo pipefail
build=${1:-build}
shared=${SHARED:-../shared}
REF=${REF:-/tmp/llamaref}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
REF=$REF "$shared/tools/build-llamaref.sh" >/dev/null
lib=$REF/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
sed 's/cp.n_threads_batch = threads;/cp.n_threads_batch = threads; cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;/' \
    "$shared/tools/llamaref.c" > "$work/llamaref_f32kv.c"
grep -q 'LLAMA_FLASH_ATTN_TYPE_DISABLED' "$work/llamaref_f32kv.c"
gcc -O2 -o "$work/llamaref" "$work/llamaref_f32kv.c" -I"$REF/lcpp/include" -I"$REF/lcpp/ggml/include" -L"$lib" \
    -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$lib" -lm
model="$shared/models/stories260K.gguf"
"$build/tracemark" model synth --like llama2-110m --dim 64 --layers 2 --heads 4 --kv-heads 4 --hidden 172 --ctx 128 \
    --tokenizer "$model" --seed 7 --out "$work/performer.gguf" >/dev/null 2>&1
fixture=tests/data/zeroshot/stories260K-dist.jsonl
python3 -c 'import json,sys
for l in open(sys.argv[1]): print(json.dumps({"ids": json.loads(l)["ids"]}))' "$fixture" > "$work/ids.jsonl"
"$work/llamaref" "$lib" "$model" dist "$work/ids.jsonl" "$work/performer.gguf" 1 > "$work/dist.jsonl"
python3 - "$fixture" "$work/dist.jsonl" <<'PY'
import json, sys
old = [json.loads(l) for l in open(sys.argv[1])]
new = [json.loads(l) for l in open(sys.argv[2])]
assert len(old) == len(new) == 20
with open(sys.argv[1], "w") as f:
    for o, n in zip(old, new):
        assert n["n"] == len(o["ids"]) and len(n["positions"]) == len(o["ids"]) - 1, o["id"]
        f.write(json.dumps({"id": o["id"], "ids": o["ids"], "positions": n["positions"]}, separators=(",", ":")) + "\n")
PY
