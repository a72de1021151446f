#!/usr/bin/env bash
# The main job, end to end, with the default model: make a watermark key and
# an Ed25519 signing key (once each), generate a story through a keyed
# watermark and sign it as it is written, detect the watermark with the
# model-free detector, verify the signed manifest (beside the text and
# embedded in it), run the smoke evaluation, and write one signed report of
# all of it. Everything lands in out/: story.txt with story.txt.manifest.json,
# story.signed.txt (manifest embedded), generation.json (ids, timings,
# sampling, scheme, parameters and key id; never a key), verdict.json,
# verify.json, eval-smoke/ and report/.
# Usage: scripts/demo.sh [SCHEME.yaml] [PROMPT]
set -euo pipefail
cd "$(dirname "$0")/.."
scheme=${1:-configs/schemes/kgw-lefthash.yaml}
prompt=${2:-Once upon a time}
bin=${TRACEMARK_BIN:-build/tracemark}
mkdir -p out
[ -f out/demo.key ] || "$bin" keygen --out out/demo.key >/dev/null
[ -f out/demo-signing.key ] || "$bin" keygen --signing --out out/demo-signing >/dev/null

"$bin" generate --prompt "$prompt" --max-tokens 200 --seed "$RANDOM" --watermark "$scheme" --key out/demo.key \
  --sign out/demo-signing.key --json --output out/story.txt > out/generation.json.tmp
mv out/generation.json.tmp out/generation.json
echo "== out/story.txt"; cat out/story.txt; echo

echo "== tracemark detect out/story.txt"
status=0
"$bin" detect --key out/demo.key --watermark "$scheme" --json out/story.txt > out/verdict.json.tmp || status=$?
mv out/verdict.json.tmp out/verdict.json
[ $status -eq 0 ] || [ $status -eq 3 ] || exit $status
cat out/verdict.json

# The manifest beside the text (written by generate --sign), and the same
# manifest carried invisibly inside a copy of the text.
"$bin" sign out/story.txt --signing-key out/demo-signing.key --generation out/generation.json --embed >/dev/null
for text in out/story.txt out/story.signed.txt; do
  echo "== tracemark verify $text"
  "$bin" verify "$text" --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme"
done
"$bin" verify out/story.txt --trust out/demo-signing.pub --key out/demo.key --watermark "$scheme" --json \
  > out/verify.json

echo "== tracemark eval configs/tasks/watermark-smoke.yaml"
rm -rf out/eval-smoke
"$bin" eval configs/tasks/watermark-smoke.yaml --out out/eval-smoke

# One report of everything above with the EU AI Act Art. 50 policy: HTML,
# Markdown, JSON (and PDF where Chromium is installed), each signed.
echo "== tracemark report (signed)"
"$bin" report out/eval-smoke out/generation.json out/verdict.json out/verify.json \
  --policy configs/policies/eu-ai-act-art50.yaml --sign out/demo-signing.key --out out/report
"$bin" verify out/report/report.html --trust out/demo-signing.pub >/dev/null
echo "report: $PWD/out/report/report.html (signed: tracemark verify out/report/report.html --trust out/demo-signing.pub)"
