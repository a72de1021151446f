#!/usr/bin/env bash
# The main job, end to end: make a watermark key (once), generate a story
# with the default model through a keyed watermark, detect the watermark in
# the text with the model-free detector, and write the evidence to out/:
# story.txt (the text), generation.json (ids, timings, scheme, parameters and
# key id; never the key) and verdict.json (the detector's verdict).
# Usage: scripts/demo.sh [SCHEME.yaml] [PROMPT]
set -euo pipefail
cd "$(dirname "$0")/.."
scheme=${1:-configs/schemes/kgw-lefthash.yaml}
prompt=${2:-Once upon a time}
bin=${TRACEMARK_BIN:-build/tracemark}
mkdir -p out
[ -f out/demo.key ] || "$bin" keygen --out out/demo.key >/dev/null
"$bin" generate --prompt "$prompt" --max-tokens 200 --seed "$RANDOM" --watermark "$scheme" --key out/demo.key \
  --json --output out/story.txt > out/generation.json.tmp
mv out/generation.json.tmp out/generation.json
status=0
"$bin" detect --key out/demo.key --watermark "$scheme" --json out/story.txt > out/verdict.json.tmp || status=$?
mv out/verdict.json.tmp out/verdict.json
[ $status -eq 0 ] || [ $status -eq 3 ] || exit $status
echo "== out/story.txt"; cat out/story.txt; echo
echo "== out/verdict.json"; cat out/verdict.json
# Provenance: sign the story with an Ed25519 key (made once), beside it
# (out/story.txt.manifest.json) and embedded invisibly (out/story.signed.txt),
# and verify both with the public key and the watermark key.
[ -f out/demo-signing.key ] || "$bin" keygen --signing --out out/demo-signing >/dev/null
"$bin" sign out/story.txt --signing-key out/demo-signing.key --generation out/generation.json >/dev/null
"$bin" sign out/story.txt --signing-key out/demo-signing.key --generation out/generation.json --embed >/dev/null
echo "== tracemark verify out/story.txt (manifest beside it)"
"$bin" verify out/story.txt --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme"
echo "== tracemark verify out/story.signed.txt (manifest embedded)"
"$bin" verify out/story.signed.txt --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme"
# The evidence: a small smoke evaluation of the watermark harness
# (configs/tasks/watermark-smoke.yaml, seconds), then one signed report of
# everything above (generation, detection, provenance verdicts, evaluation)
# with the EU AI Act Art. 50 policy: HTML, Markdown, JSON (and PDF when
# Chromium is installed), each with a signed manifest beside it.
"$bin" verify out/story.txt --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme" --json \
  > out/verify.json || [ $? -eq 3 ]
"$bin" verify out/story.signed.txt --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme" --json \
  > out/verify-embedded.json || [ $? -eq 3 ]
rm -rf out/eval-smoke
echo "== tracemark eval configs/tasks/watermark-smoke.yaml"
"$bin" eval configs/tasks/watermark-smoke.yaml --out out/eval-smoke
echo "== tracemark report (signed)"
"$bin" report out/eval-smoke out/generation.json out/verdict.json out/verify.json out/verify-embedded.json \
  --policy configs/policies/eu-ai-act-art50.yaml --sign out/demo-signing.key --out out/report
"$bin" verify out/report/report.html --trust out/demo-signing.pub >/dev/null
echo "report: $PWD/out/report/report.html (signed; tracemark verify out/report/report.html --trust out/demo-signing.pub)"
