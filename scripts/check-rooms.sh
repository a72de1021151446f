#!/usr/bin/env bash
# Checks the arrows of ../shared/DESIGN.md's table of rooms: every #include
# of a project header in a room's files (its folder and its public header
# include/tracemark/<room>.h) names a header of the room itself or of a room
# it may use, and no files include each other in a circle. Prints each
# offending line and exits 1 when there is one. Usage: scripts/check-rooms.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# room -> rooms it may use (besides itself)
declare -A may_use=(
  [core]=""
  [model]="core"
  [tokenizer]="core model"
  [watermark]="core"
  [generator]="core model tokenizer watermark"
  [detect]="core tokenizer watermark"
  [zeroshot]="core model tokenizer generator"
  [provenance]="core model tokenizer watermark detect"
  [evals]="core model tokenizer watermark generator detect zeroshot provenance"
  [reports]="core model watermark evals provenance"
  [server]="core model tokenizer watermark generator detect zeroshot provenance"
)
# The public header of a room also names the headers its own public header
# includes (tokenizer.h includes model.h for the GGUF reader, and so on).

status=0
room_of_header() { # path of an included header -> its room, or empty
  case "$1" in
    tracemark/*.h) basename "$1" .h ;;
    ../*/*) echo "$1" | cut -d/ -f2 ;;
    *) echo "" ;;
  esac
}
for room in "${!may_use[@]}"; do
  files=()
  [ -d "$room" ] && while IFS= read -r f; do files+=("$f"); done < <(find "$room" -name '*.[ch]')
  [ -f "include/tracemark/$room.h" ] && files+=("include/tracemark/$room.h")
  for f in "${files[@]}"; do
    while IFS= read -r line; do
      header=$(echo "$line" | sed -E 's/^[0-9]+:#include "([^"]+)".*/\1/')
      other=$(room_of_header "$header")
      [ -z "$other" ] || [ "$other" = "$room" ] && continue
      if [[ " ${may_use[$room]} " != *" $other "* ]]; then
        echo "rooms: $f:${line%%:*}: $room/ may not include $header (a header of $other/)"
        status=1
      fi
    done < <(grep -n '^#include "' "$f" || true)
  done
done

# Circles between files: a file and its header form one module (x.c with
# x.h); module A depends on module B when A's .c or .h includes B's header.
# A depth-first walk over that graph finds any circle.
declare -A edges=()
while IFS= read -r f; do
  dir=$(dirname "$f")
  module=${f%.*}
  while IFS= read -r header; do
    if [[ $header == tracemark/* ]]; then target="include/$header"; else target=$(realpath -m --relative-to=. "$dir/$header"); fi
    [ -f "$target" ] || continue
    [ "${target%.*}" = "$module" ] && continue
    edges[$module]+=" ${target%.*}"
  done < <(sed -nE 's/^#include "([^"]+)".*/\1/p' "$f")
  edges[$module]+=""
done < <(find core model tokenizer watermark generator detect zeroshot provenance evals reports server include \
              -name '*.[ch]' 2>/dev/null)
declare -A state=()
visit() {
  local node=$1 next
  state[$node]=open
  for next in ${edges[$node]:-}; do
    if [ "${state[$next]:-}" = open ]; then echo "rooms: include circle through $node and $next"; status=1
    elif [ -z "${state[$next]:-}" ]; then visit "$next"; fi
  done
  state[$node]=done
}
for node in "${!edges[@]}"; do [ -n "${state[$node]:-}" ] || visit "$node"; done
[ $status -eq 0 ] && echo "rooms: every include follows DESIGN.md's table; no include circle"
exit $status
