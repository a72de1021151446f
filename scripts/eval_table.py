#!/usr/bin/env python3
"""Render the robustness table of a `tracemark eval` watermark run as Markdown.

Usage: scripts/eval_table.py RUN_DIR/results.json [FPR]
       scripts/eval_table.py RUN_DIR/results.json --lengths

One row per attack variant, one column per scheme: TPR at the analytic
p-value threshold FPR (default 0.001) with the ROC-AUC beside it, then the
empirical FPR of the null set at that threshold, tokens needed to detect and
the quality cost. With --lengths: TPR at the task's decision FPR against
length, one row per attack variant, each cell the TPR of the first 25/50/...
tokens ("-" where no text reached that length). Reads only results.json;
prints to stdout.
"""
import json
import sys


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    root = json.load(open(sys.argv[1]))
    if len(sys.argv) == 3 and sys.argv[2] == "--lengths":
        return lengths_table(root)
    fpr = float(sys.argv[2]) if len(sys.argv) == 3 else 0.001
    schemes = root["results"]["schemes"]
    names = list(schemes)
    attacks = [c["attack"] for c in schemes[names[0]]["attacks"]]

    def cell(scheme, attack):
        c = next(c for c in schemes[scheme]["attacks"] if c["attack"] == attack)
        at = next(a for a in c["at_fpr"] if abs(a["fpr"] - fpr) < 1e-12)
        tpr, auc = at["tpr"]["value"], c["auc"]["value"]
        if tpr is None or auc is None:
            return "n/a"
        return f"{tpr:.2f} / {auc:.3f}"

    print(f"TPR at FPR {fpr:g} / ROC-AUC ({root['task']}, {root['n_present']} of {root['n_samples']} samples):\n")
    print("| attack | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for attack in attacks:
        print(f"| {attack} | " + " | ".join(cell(s, attack) for s in names) + " |")
    row = []
    for s in names:
        none = schemes[s]["attacks"][0]
        at = next(a for a in none["at_fpr"] if abs(a["fpr"] - fpr) < 1e-12)
        v = at["empirical_fpr"]["value"]
        row.append("n/a" if v is None else f"{v:.4f}")
    print("| empirical FPR (null, unattacked) | " + " | ".join(row) + " |")
    row = []
    for s in names:
        t = schemes[s]["tokens_to_detect"]
        row.append("never" if t["median"] is None else f"{t['median']:.0f}")
    print("| tokens to detect (median) | " + " | ".join(row) + " |")
    row = []
    for s in names:
        q = schemes[s]["quality"]["perplexity"]
        r = q.get("ratio_to_baseline")
        row.append("n/a" if r is None else f"{r:.2f}x")
    print("| perplexity vs unwatermarked | " + " | ".join(row) + " |")


def lengths_table(root):
    schemes = root["results"]["schemes"]
    names = list(schemes)
    cells = {s: {c["attack"]: c.get("tpr_by_length") for c in schemes[s]["attacks"]} for s in names}
    attacks = [c["attack"] for c in schemes[names[0]]["attacks"] if "tpr_by_length" in c]
    first = next(v for v in cells[names[0]].values() if v)
    lengths = "/".join(str(row["length"]) for row in first)

    def cell(scheme, attack):
        rows = cells[scheme].get(attack)
        if not rows:
            return "n/a"
        return "/".join("-" if row["n"] == 0 or row["tpr"]["value"] is None else f"{row['tpr']['value']:.2f}"
                        for row in rows)

    print(f"TPR against length ({lengths} tokens) at the decision FPR ({root['task']}, "
          f"{root['n_present']} of {root['n_samples']} samples):\n")
    print("| attack | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for attack in attacks:
        print(f"| {attack} | " + " | ".join(cell(s, attack) for s in names) + " |")


if __name__ == "__main__":
    main()
