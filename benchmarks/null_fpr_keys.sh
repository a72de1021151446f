#!/usr/bin/env bash
# The false-positive rate of one key against many: generates N unwatermarked
# stories260K texts (200 tokens, seeds 1000.., the prompts of
# configs/tasks/story-prompts.txt), makes K fresh keys, and detects every text
# with every key for each scheme given, counting per key the texts with
# p <= 0.01, 0.05 and 0.1. Each p-value is valid for a key drawn at random;
# across one model's texts, which share most of their word pairs, the texts'
# p-values under one fixed key are not independent, so one key's rate on a
# corpus can sit far from nominal while the mean over keys does not. This is
# what an evaluation with a single key (watermark-stories.yaml) measures.
# Writes benchmarks/results/null-fpr-keys.md (atomically) and prints it.
#
# usage: benchmarks/null_fpr_keys.sh [TRACEMARK] [N] [K] [SCHEME...]   (from the repository root)
#   defaults: build/tracemark, 400 texts, 10 keys, exp-edit kgw-lefthash gumbel
set -euo pipefail
tracemark=${1:-build/tracemark}
n=${2:-400}
k=${3:-10}
shift $(($# < 3 ? $# : 3))
schemes=("$@")
[ ${#schemes[@]} -gt 0 ] || schemes=(exp-edit kgw-lefthash gumbel)
[ -x "$tracemark" ] || { echo "null_fpr_keys.sh: no tracemark binary at $tracemark" >&2; exit 1; }
fixtures=${TRACEMARK_FIXTURES:-$(scripts/fixtures.sh)}
model=$fixtures/models/stories260K.bin tokenizer=$fixtures/models/tok512.bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mapfile -t prompts < configs/tasks/story-prompts.txt
for ((i = 0; i < n; i++)); do
  "$tracemark" generate --model "$model" --tokenizer "$tokenizer" --prompt "${prompts[i % ${#prompts[@]}]}" \
    --max-tokens 200 --seed $((1000 + i)) --json 2> /dev/null |
    python3 -c 'import json, sys; print(json.dumps({"id": sys.argv[1], "text": json.load(sys.stdin)["text"]}))' "t$i"
done > "$work/null.jsonl"
for ((j = 0; j < k; j++)); do "$tracemark" keygen --out "$work/key$j.key" > /dev/null; done

out=benchmarks/results/null-fpr-keys.md
{
  echo "# One key's false-positive rate on one model's texts ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD))"
  echo
  echo "\`benchmarks/null_fpr_keys.sh $tracemark $n $k ${schemes[*]}\`: $n unwatermarked stories260K texts of"
  echo "200 tokens, each detected with each of $k fresh keys (EXP-edit with all 999 null keys)."
  echo "Each cell: texts with p at or below 0.01 / 0.05 / 0.1, out of $n (nominal $((n / 100)) / $((n / 20)) / $((n / 10)))."
  echo
  printf '| scheme |'; for ((j = 0; j < k; j++)); do printf ' %d |' "$j"; done; echo ' mean rate over the keys ± its standard error, at 0.01 / 0.05 / 0.1 |'
  printf '|---|'; for ((j = 0; j <= k; j++)); do printf -- '---|'; done; echo
  for s in "${schemes[@]}"; do
    printf '| %s |' "$s"
    for ((j = 0; j < k; j++)); do
      "$tracemark" detect --key "$work/key$j.key" --watermark "configs/schemes/$s.yaml" --tokenizer "$tokenizer" \
        --full-permutations --jsonl "$work/null.jsonl" 2> /dev/null > "$work/$s.$j.jsonl"
      python3 - "$work/$s.$j.jsonl" <<'EOF'
import json, sys
ps = [json.loads(line)["p_value"] for line in open(sys.argv[1])]
print(" %d / %d / %d |" % tuple(sum(p <= a for p in ps) for a in (0.01, 0.05, 0.1)), end="")
EOF
    done
    python3 - "$work" "$s" "$k" <<'EOF'
import json, statistics, sys
keys = [[json.loads(line)["p_value"] for line in open("%s/%s.%d.jsonl" % (sys.argv[1], sys.argv[2], j))]
        for j in range(int(sys.argv[3]))]
cells = []
for a in (0.01, 0.05, 0.1):
    rates = [sum(p <= a for p in ps) / len(ps) for ps in keys]
    se = statistics.stdev(rates) / len(rates) ** 0.5 if len(rates) > 1 else float("nan")
    cells.append("%.4f ± %.4f" % (statistics.mean(rates), se))
print(" %s |" % " / ".join(cells))
EOF
  done
} > "$work/table.md"
mv "$work/table.md" "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
