#!/usr/bin/env python3
"""Markdown tables of a zero_shot eval run (`tracemark eval configs/tasks/zero-shot.yaml --out RUN`).

Reads RUN/results.json only (the run's own aggregate: AUROC and TPR at each FPR with
their bootstrap CIs per method, machine set and length, and the watermark beside the
zero-shot scores) and prints three tables: whole texts per method and machine set;
AUROC per length for the sets named by --sets; and per scheme the watermark's detection
rate and the zero-shot means before and after the paraphrase attack. It computes
nothing of its own.

usage: scripts/zeroshot-table.py RUN_DIR [--sets generated,chatgpt]
"""
import argparse, json, os

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--sets", default="generated,chatgpt")
args = parser.parse_args()
results = json.load(open(os.path.join(args.run, "results.json")))["results"]
rows = results["detection"]


def ci(x, digits=3):
    return f"{x['value']:.{digits}f} ({x['low']:.{digits}f}–{x['high']:.{digits}f})"


fprs = sorted(rows[0]["tpr_at_fpr"].keys(), key=float) if rows else []
print("| method | machine set | n machine / human | AUROC (95% CI) | " +
      " | ".join(f"TPR at {float(f) * 100:g}% FPR (95% CI)" for f in fprs) + " | mean score machine / human |")
print("|---|---|---|---|" + "---|" * len(fprs) + "---|")
for r in rows:
    if r["length"] != "all":
        continue
    print(f"| {r['method']} | {r['machine']} | {r['n_machine']} / {r['n_human']} | {ci(r['auroc'])} | " +
          " | ".join(ci(r["tpr_at_fpr"][f], 2) for f in fprs) +
          f" | {r['mean_machine']:.3f} / {r['mean_human']:.3f} |")
print()
sets = args.sets.split(",")
lengths = []
for r in rows:
    if r["length"] not in lengths:
        lengths.append(r["length"])
print("| method | machine set | " + " | ".join(f"AUROC, first {l} tokens" if l != "all" else "AUROC, whole text"
                                             for l in lengths) + " |")
print("|---|---|" + "---|" * len(lengths))
for method in dict.fromkeys(r["method"] for r in rows):
    for s in sets:
        cells = []
        for l in lengths:
            hit = [r for r in rows if r["method"] == method and r["machine"] == s and r["length"] == l]
            cells.append(ci(hit[0]["auroc"]) if hit else "—")
        print(f"| {method} | {s} | " + " | ".join(cells) + " |")
print()
print("| scheme | watermark detected at p ≤ 0.01: as written / paraphrased | method | mean zero-shot score: "
      "plain generations / watermarked / watermarked + paraphrase | AUROC watermarked vs plain (95% CI) |")
print("|---|---|---|---|---|")
for scheme, w in results["watermark"].items():
    for method, z in w["zero_shot"].items():
        print(f"| {scheme} | {w['detected_at_p_0.01']:.2f} / {w['detected_at_p_0.01_paraphrased']:.2f} | {method} | "
              f"{z['mean_generated']:.3f} / {z['mean_watermarked']:.3f} / {z['mean_watermarked_paraphrased']:.3f} | "
              f"{ci(z['auroc_watermarked_vs_generated'])} |")
