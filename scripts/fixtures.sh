#!/usr/bin/env bash
# Prints the folder that holds the test fixtures: $TRACEMARK_FIXTURES, else
# ../shared beside the checkout. On a machine with neither, fetches the pinned
# public files into .fixtures/ (SHA-256 checked) and prints that folder:
# stories260K + tok512 from karpathy/tinyllamas on Hugging Face, and llama.cpp's
# tokenizer vectors from the llama.cpp bundle inside the npm package
# node-llama-cpp@3.21.1. Peer reference outputs are not public downloads: the
# tests that compare against them fail, naming the missing file.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${TRACEMARK_FIXTURES:-}" ]; then echo "$TRACEMARK_FIXTURES"; exit 0; fi
if [ -f ../shared/models/stories260K.bin ]; then (cd ../shared && pwd); exit 0; fi

root=$PWD/.fixtures
mkdir -p "$root/models" "$root/tokenizer-tests"
fetch() { # url destination sha256
  local url=$1 out=$2 sum=$3
  if [ ! -f "$out" ] || ! echo "$sum  $out" | sha256sum -c --status; then
    echo "fixtures: fetching $url" >&2
    curl -fsSL --retry 3 -o "$out.part" "$url"
    echo "$sum  $out.part" | sha256sum -c --status || { echo "fixtures: SHA-256 mismatch for $url" >&2; rm -f "$out.part"; exit 1; }
    mv "$out.part" "$out"
  fi
}
hf=https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K
fetch $hf/stories260K.bin "$root/models/stories260K.bin" b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696
fetch $hf/tok512.bin "$root/models/tok512.bin" 037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312
if [ ! -f "$root/tokenizer-tests/ggml-vocab-llama-spm.gguf" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack -q node-llama-cpp@3.21.1 >/dev/null && tar xzf node-llama-cpp-3.21.1.tgz &&
   git clone -q package/llama/gitRelease.bundle lcpp)
  for f in ggml-vocab-llama-spm.gguf ggml-vocab-llama-spm.gguf.inp ggml-vocab-llama-spm.gguf.out \
           ggml-vocab-llama-bpe.gguf ggml-vocab-llama-bpe.gguf.inp ggml-vocab-llama-bpe.gguf.out; do
    cp "$work/lcpp/models/$f" "$root/tokenizer-tests/$f"
  done
  rm -rf "$work"
fi
( cd "$root/tokenizer-tests" && sha256sum -c --status <<SUMS ) || { echo "fixtures: tokenizer vectors do not match their pinned SHA-256" >&2; exit 1; }
16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69  ggml-vocab-llama-spm.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-spm.gguf.inp
ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29  ggml-vocab-llama-spm.gguf.out
97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e  ggml-vocab-llama-bpe.gguf
be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0  ggml-vocab-llama-bpe.gguf.inp
118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b  ggml-vocab-llama-bpe.gguf.out
SUMS
echo "$root"
