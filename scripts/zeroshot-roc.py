#!/usr/bin/env python3
"""Zero-shot detection on stories260K: AUROC with bootstrap CIs and TPR at 1% FPR per method.

Builds the corpora from ../shared/data and the local model, scores every text with
`tracemark zeroshot --jsonl` for each method, and prints a Markdown table. It is the
stand-in for the `configs/tasks/zero-shot.yaml` eval task until the evals room can run
zero-shot methods; it must never be read as more than it measures (see docs/zero-shot.md).

  human:   TruthfulQA best answers (question + answer), HaluEval knowledge passages
  machine: stories260K samples (temperature 1, from BOS), stories260K samples through
           the KGW watermark, HaluEval's ChatGPT responses

usage: scripts/zeroshot-roc.py [--tracemark build/tracemark] [--n 100] [--out DIR]
Binoculars uses stories260K.gguf as observer and its Q8_0 quantization (written by
`tracemark model quantize`) as performer: same vocabulary, a slightly different model.
"""
import argparse, csv, json, os, random, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.path.normpath(os.path.join(here, "..", "..", "shared"))
if not os.path.isdir(shared):
    shared = "/work/shared"
METHODS = ["likelihood", "log-rank", "entropy", "fast-detectgpt", "binoculars"]
HIGHER_IS_MACHINE = {"likelihood": True, "log-rank": True, "entropy": False, "fast-detectgpt": True,
                     "binoculars": False}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def human_texts(n):
    rows = list(csv.DictReader(open(os.path.join(shared, "data/truthfulqa/TruthfulQA.csv"), encoding="utf-8")))
    truthful = [r["Question"] + " " + r["Best Answer"] for r in rows[:n]]
    halu = []
    for line in open(os.path.join(shared, "data/halueval/qa_one-turn_data.json"), encoding="utf-8"):
        halu.append(json.loads(line)["knowledge"][:600])
        if len(halu) == n:
            break
    return {"truthfulqa": truthful, "halueval-knowledge": halu}


def chatgpt_texts(n):
    out = []
    for line in open(os.path.join(shared, "data/halueval/general_data.json"), encoding="utf-8"):
        r = json.loads(line)
        if r.get("hallucination") == "no" and len(r["chatgpt_response"]) > 80:
            out.append(r["chatgpt_response"][:600])
        if len(out) == n:
            break
    return out


def generate(tm, model, n, extra, seed0):
    texts = []
    for i in range(n):
        out = run([tm, "generate", "--model", model, "--prompt", "", "--max-tokens", "120", "--temperature", "1",
                   "--seed", str(seed0 + i), "--threads", "1", "--json"] + extra)
        texts.append(json.loads(out)["text"].strip())
    return texts


def score(tm, method, texts, observer, performer):
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    cmd = [tm, "zeroshot", "--zero-shot", method, "--threads", "1", "--jsonl"]
    cmd += ["--observer", observer, "--performer", performer] if method == "binoculars" else ["--model", observer]
    p = subprocess.run(cmd + ["-"], input=lines, capture_output=True, text=True)
    scores = []
    for line in p.stdout.splitlines():
        r = json.loads(line)
        if "score" in r:
            scores.append(r["score"] if HIGHER_IS_MACHINE[method] else -r["score"])
    return scores


def auroc(pos, neg):
    # Mann-Whitney U with ties counted half.
    wins = 0.0
    for x in pos:
        for y in neg:
            wins += 1.0 if x > y else 0.5 if x == y else 0.0
    return wins / (len(pos) * len(neg))


def tpr_at_fpr(pos, neg, fpr=0.01):
    neg = sorted(neg, reverse=True)
    k = int(fpr * len(neg))
    t = neg[min(k, len(neg) - 1)]
    return sum(1 for x in pos if x > t) / len(pos)


def bootstrap(pos, neg, stat, rounds=300, seed=1):
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        p = [rng.choice(pos) for _ in pos]
        n = [rng.choice(neg) for _ in neg]
        values.append(stat(p, n))
    values.sort()
    return values[int(0.025 * rounds)], values[int(0.975 * rounds) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracemark", default=os.path.join(here, "..", "build", "tracemark"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="/tmp/tracemark-zeroshot")
    a = ap.parse_args()
    tm = os.path.abspath(a.tracemark)
    os.makedirs(a.out, exist_ok=True)
    observer = os.path.join(shared, "models/stories260K.gguf")
    performer = os.path.join(a.out, "stories260K-q8_0.gguf")
    if not os.path.exists(performer):
        run([tm, "model", "quantize", observer, performer, "Q8_0"])
    key = os.path.join(a.out, "kgw.key")
    if not os.path.exists(key):
        run([tm, "keygen", "--out", key])
    kgw = os.path.join(here, "..", "configs", "schemes", "kgw-selfhash.yaml")
    corpora = {"human": human_texts(a.n)}
    machine = {"stories260K": generate(tm, observer, a.n, [], 1000),
               "stories260K+kgw": generate(tm, observer, a.n, ["--watermark", kgw, "--key", key], 2000),
               "chatgpt (halueval)": chatgpt_texts(a.n)}
    human = corpora["human"]["truthfulqa"] + corpora["human"]["halueval-knowledge"]
    print(f"| method | machine set | AUROC (95% CI) | TPR at 1% FPR (95% CI) | mean score machine / human |")
    print(f"|---|---|---|---|---|")
    for method in METHODS:
        neg = score(tm, method, human, observer, performer)
        for name, texts in machine.items():
            pos = score(tm, method, texts, observer, performer)
            auc = auroc(pos, neg)
            lo, hi = bootstrap(pos, neg, auroc)
            tpr = tpr_at_fpr(pos, neg)
            tlo, thi = bootstrap(pos, neg, tpr_at_fpr)
            sign = 1 if HIGHER_IS_MACHINE[method] else -1  # back to the method's own scale
            print(f"| {method} | {name} (n={len(pos)} vs {len(neg)} human) | {auc:.3f} ({lo:.3f}-{hi:.3f}) "
                  f"| {tpr:.2f} ({tlo:.2f}-{thi:.2f}) | {sign * sum(pos) / len(pos):.3f} / "
                  f"{sign * sum(neg) / len(neg):.3f} |", flush=True)


if __name__ == "__main__":
    main()
