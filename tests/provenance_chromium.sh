#!/bin/sh
# Invisibility of an embedded manifest (issue 12): renders a signed text with
# and without its embedded manifest in headless Chromium and requires the two
# screenshots to be byte-identical, and a text with one visible character
# changed to differ (so a blank or broken render cannot pass). Exits 77
# (ctest: skipped) when Chromium is not installed. Never touches anything
# outside its own temporary folder.
# Usage: tests/provenance_chromium.sh path/to/tracemark
set -eu
bin=${1:?usage: provenance_chromium.sh TRACEMARK}
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "SKIP: chromium is not installed (apt-get install chromium)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'Once upon a time, a small dog found a red ball in the park.\nShe was happy, and she ran home to show her friend Ben. Grüße, 世界.\n' > "$work/story.txt"
"$bin" keygen --signing --out "$work/signer" >/dev/null
"$bin" sign "$work/story.txt" --signing-key "$work/signer.key" --embed --out "$work/embedded.txt" >/dev/null
sed 's/ball/bell/' "$work/story.txt" > "$work/changed.txt"
[ "$(wc -c < "$work/embedded.txt")" -gt "$(($(wc -c < "$work/story.txt") + 1000))" ] || { echo "FAIL: nothing embedded"; exit 1; }

page() { # text file -> HTML page showing it as preformatted UTF-8 text
  { printf '<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:16px;font:18px serif"><pre style="white-space:pre-wrap">'
    sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' "$1"
    printf '</pre></body></html>\n'; } > "$2"
}
shot() { # HTML page -> PNG
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --user-data-dir="$(mktemp -d -p "$work")" --hide-scrollbars --window-size=900,300 \
    --screenshot="$2" "file://$1" >/dev/null 2>&1
  [ -s "$2" ] || { echo "FAIL: $browser wrote no screenshot for $1"; exit 1; }
}
for name in story embedded changed; do
  page "$work/$name.txt" "$work/$name.html"
  shot "$work/$name.html" "$work/$name.png"
done
if ! cmp -s "$work/story.png" "$work/changed.png"; then :; else
  echo "FAIL: a visible change did not change the screenshot (is the text rendered at all?)"; exit 1
fi
if cmp -s "$work/story.png" "$work/embedded.png"; then
  echo "PASS: the embedded manifest ($(($(wc -c < "$work/embedded.txt") - $(wc -c < "$work/story.txt"))) bytes) renders identically in $($browser --version 2>/dev/null | head -1)"
  exit 0
fi
echo "FAIL: the screenshots with and without the embedded manifest differ"
exit 1
