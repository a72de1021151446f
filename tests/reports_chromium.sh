#!/bin/sh
# The HTML report in a real browser (issue 13): runs the shipped smoke task,
# writes a report with HTML and PDF, opens the HTML in headless Chromium and
# (1) screenshots every chart on a grid page and requires each cell to hold
# drawn data (pixels of the charts' palette) where the same grid with the
# charts emptied holds none; (2) screenshots the whole report and requires
# more palette pixels than the report with its charts removed; (3) logs the
# browser's network activity (--log-net-log) and requires that the page made
# no request, where a control page with one remote image must show it (so the
# check can fail). Every host name resolves to nowhere meanwhile. Exits 77
# (ctest: skipped) when Chromium is not installed. Touches only its own
# temporary folder.
# Usage: tests/reports_chromium.sh path/to/tracemark SOURCE_DIR
set -eu
bin=${1:?usage: reports_chromium.sh TRACEMARK SOURCE_DIR}
src=${2:?usage: reports_chromium.sh TRACEMARK SOURCE_DIR}
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "SKIP: chromium is not installed (apt-get install chromium): the HTML report is not checked in a browser"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixtures=${TRACEMARK_FIXTURES:-$src/../shared}
export TRACEMARK_FIXTURES="$fixtures" TRACEMARK_MODEL="$fixtures/models/stories260K.bin"
helper="python3 $src/tests/reports_chromium.py"

"$bin" eval "$src/configs/tasks/watermark-smoke.yaml" --out "$work/run" --threads 2 >/dev/null 2>"$work/eval.err" ||
  { cat "$work/eval.err"; echo "FAIL: the smoke task did not run"; exit 1; }
"$bin" report "$work/run" "$src/benchmarks/results/quick.json" --policy "$src/configs/policies/eu-ai-act-art50.yaml" \
  --format html,pdf --out "$work/report" >/dev/null
head -c 5 "$work/report/report.pdf" | grep -q '%PDF-' || { echo "FAIL: report.pdf is not a PDF"; exit 1; }

shot() { # page png netlog width height [extra flag]
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
    --user-data-dir="$(mktemp -d -p "$work")" --host-resolver-rules='MAP * ~NOTFOUND' --log-net-log="$3" \
    --hide-scrollbars --window-size="$4,$5" ${6:-} --screenshot="$2" "file://$1" >/dev/null 2>&1 || true
  [ -s "$2" ] || { echo "FAIL: $browser wrote no screenshot of $1"; exit 1; }
}

# (1) every chart drew its data
n=$($helper charts "$work/report/report.html" "$work/grid.html" "$work/blank.html")
[ "$n" -ge 8 ] || { echo "FAIL: $n charts in the report, expected at least 8"; exit 1; }
rows=$(( (n + 1) / 2 ))
shot "$work/grid.html" "$work/grid.png" "$work/grid.netlog" 1320 $((rows * 320))
shot "$work/blank.html" "$work/blank.png" "$work/blank.netlog" 1320 $((rows * 320))
i=0
for count in $($helper colour "$work/grid.png" "$n"); do
  [ "$count" -ge 150 ] || { echo "FAIL: chart $i rendered blank ($count palette pixels)"; exit 1; }
  i=$((i + 1))
done
for count in $($helper colour "$work/blank.png" "$n"); do
  [ "$count" -eq 0 ] || { echo "FAIL: an emptied chart still shows $count palette pixels (the measure is broken)"; exit 1; }
done

# (2) the report page itself (a tall window, rendered at a small scale so the
# screenshot stays quick to read), with and without its charts
$helper strip "$work/report/report.html" "$work/report/stripped.html"
shot "$work/report/report.html" "$work/page.png" "$work/page.netlog" 1200 14000 --force-device-scale-factor=0.25
shot "$work/report/stripped.html" "$work/stripped.png" "$work/stripped.netlog" 1200 14000 --force-device-scale-factor=0.25
with=$($helper colour "$work/page.png")
without=$($helper colour "$work/stripped.png")
[ "$with" -gt $((without + 4000)) ] || { echo "FAIL: the report's charts add too little ($with vs $without palette pixels)"; exit 1; }

# (3) no network request from the page; the control page's request is seen
printf '<!DOCTYPE html><html><body>control<img src="http://tracemark-control.invalid/x.png"></body></html>\n' > "$work/control.html"
shot "$work/control.html" "$work/control.png" "$work/control.netlog" 400 200
$helper requests "$work/control.netlog" | grep -q 'tracemark-control.invalid' ||
  { echo "FAIL: the control page's request is not in the net log (the check cannot see requests)"; exit 1; }
requests=$($helper requests "$work/page.netlog")
[ -z "$requests" ] || { echo "FAIL: the report requested: $requests"; exit 1; }

echo "PASS: $n charts drew data (palette pixels per chart: $($helper colour "$work/grid.png" "$n" | tr '\n' ' ')); report page $with palette pixels vs $without without charts; no request from the page; PDF $(wc -c < "$work/report/report.pdf") bytes; $($browser --version 2>/dev/null | head -1)"
