#!/usr/bin/env python3
"""A plain-text corpus for the detection benchmark, built from the evaluation data in
../shared/data: TruthfulQA questions and answers, HaluEval ChatGPT responses and QA
knowledge paragraphs, one passage a line, in file order (deterministic). Stops once
MAX_BYTES bytes are written. Writes OUT atomically (temporary file, then rename).
usage: make_corpus.py DATA_DIR OUT.txt [MAX_BYTES]"""
import csv
import json
import os
import sys


def passages(data):
    with open(os.path.join(data, "truthfulqa", "TruthfulQA.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield " ".join(x for x in (row.get("Question"), row.get("Best Answer"), row.get("Correct Answers"),
                                       row.get("Incorrect Answers")) if x)
    with open(os.path.join(data, "halueval", "general_data.json"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                yield record.get("chatgpt_response", "")
    with open(os.path.join(data, "halueval", "qa_one-turn_data.json"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                yield " ".join(record.get(k, "") for k in ("knowledge", "question", "right_answer"))


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] == "--help":
        sys.exit(__doc__.split("usage: ")[1])
    data, out = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else 1 << 62
    tmp = out + ".tmp"
    written = 0
    with open(tmp, "w", encoding="utf-8") as o:
        for passage in passages(data):
            text = " ".join(passage.split())  # one passage a line
            if not text:
                continue
            line = (text + "\n").encode("utf-8")
            if written + len(line) > limit:
                break
            o.write(text + "\n")
            written += len(line)
    os.replace(tmp, out)
    print(json.dumps({"file": out, "bytes": written}))


main()
