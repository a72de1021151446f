#!/usr/bin/env python3
"""Turns the raw records of one benchmarks/run.sh run (JSON lines, one per
invocation of a benchmark program) into the results file pair
benchmarks/results/NAME.json and NAME.md, each written atomically (temporary
file, then rename), and prints the Markdown. Medians over invocations, ratios
to llama.cpp, the decode bandwidth bound and the issues' goals are computed
here, from the records alone, so that a results file can be re-rendered from
its raw records. Never runs a benchmark itself.
usage: report.py RECORDS.jsonl OUT_BASE (writes OUT_BASE.json and OUT_BASE.md)"""
import json
import os
import statistics
import sys
import tempfile

NOISY = 0.15  # invocations further apart than ±15% of their median: the machine was busy
GOALS_SOURCE = "issues 2 (item 6), 3 (item 4), 4 (item 5) and 5 (Benchmarks)"



# The token time the watermark's budget is set against (issue 19): the 110M Q4_K_M model at 2 threads
# once the quantized kernels reach their goal, about 200 tokens/s.
WM_BUDGET_TOKEN_US = 5000.0

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if abs(x) >= 1e6:
        return f"{x / 1e6:.{max(digits, 1)}f} M"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if 0 < abs(x) < 0.1:
        return f"{x:.2g}"
    return f"{x:.{digits}f}"


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def fmt_percent(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def spread(values):
    """Half the range over the median: the noise between invocations."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    m = statistics.median(values)
    return round((max(values) - min(values)) / 2 / m, 3) if m else None


def load_records(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"report.py: {path}:{number}: not JSON ({e})")
    return records


def summarise(records):
    meta = next((r for r in records if r["section"] == "meta"), {})
    machine = dict(next((r for r in records if r["section"] == "machine"), {}))
    machine.pop("section", None)
    bandwidth = {}
    for r in records:
        if r["section"] == "openblas":
            machine["openblas_core"] = r["result"].get("corename")
            machine["openblas_config"] = r["result"].get("config")
        if r["section"] == "bandwidth":
            b = r["result"]
            bandwidth[b["threads"]] = {"gb_s_best": b["gb_s_best"], "gb_s_median": b["gb_s_median"],
                                       "buffer_bytes": b["bytes"], "kernel": b["kernel"]}
    machine["read_bandwidth"] = {str(k): v for k, v in sorted(bandwidth.items())}
    # Measurements made right before and after each configuration's pairs.
    bandwidth_near = {}
    for r in records:
        if r["section"] == "bandwidth_at":
            bandwidth_near.setdefault((r["model"], r["type"], r["threads"]), []).append(r["result"])

    # Generation: group invocations by (model, type, threads), then by engine.
    groups = {}
    for r in records:
        if r["section"] != "generate":
            continue
        key = (r["model"], r["type"], r["threads"])
        g = groups.setdefault(key, {"model": r["model"], "type": r["type"], "threads": r["threads"],
                                    "file_bytes": r.get("file_bytes"),
                                    "decode_bytes_per_token": r.get("decode_bytes_per_token"),
                                    "n_prompt": r.get("n_prompt"), "n_gen": r.get("n_gen"),
                                    "load_before_pairs": [], "engines": {}})
        if r.get("load") and r.get("first_of_pair"):
            g["load_before_pairs"].append(r["load"][0])
        e = g["engines"].setdefault(r["engine"], {"invocations": []})
        e["invocations"].append({k: r.get(k) for k in ("rep", "prompt_tok_s", "decode_tok_s", "max_rss_kb",
                                                        "load_ms", "wall_s", "error")})
    generate = []
    for g in groups.values():
        bound = None
        # The best bandwidth measured with at most this many threads: an upper bound that a busy
        # machine's lower 2-thread figure cannot push below what one thread already reached.
        near = [b for b in bandwidth_near.get((g["model"], g["type"], g["threads"]), []) if b["threads"] <= g["threads"]]
        usable = near or [b for t, b in bandwidth.items() if t <= g["threads"]]
        bw = max(usable, key=lambda b: b["gb_s_best"]) if usable else None
        g["bound_bandwidth_gb_s"] = bw["gb_s_best"] if bw else None
        g["bound_bandwidth_measured"] = "next to the pairs" if near else "at the start of the run" if bw else None
        l3 = machine.get("l3_bytes")
        g["weights_fit_in_cache"] = bool(l3 and g["decode_bytes_per_token"] and g["decode_bytes_per_token"] <= l3)
        if bw and g["decode_bytes_per_token"] and not g["weights_fit_in_cache"]:
            bound = round(bw["gb_s_best"] * 1e9 / g["decode_bytes_per_token"], 2)
        g["decode_bound_tok_s"] = bound
        for name, e in g["engines"].items():
            ok = [i for i in e["invocations"] if not i.get("error")]
            e["prompt_tok_s"] = median([i["prompt_tok_s"] for i in ok])
            e["decode_tok_s"] = median([i["decode_tok_s"] for i in ok])
            e["ttft_ms"] = round(1000 * g["n_prompt"] / e["prompt_tok_s"], 2) if e["prompt_tok_s"] else None
            e["peak_rss_mib"] = round(max(i["max_rss_kb"] for i in ok if i["max_rss_kb"]) / 1024, 1) if any(
                i["max_rss_kb"] for i in ok) else None
            e["decode_spread"] = spread([i["decode_tok_s"] for i in ok])
            e["prompt_spread"] = spread([i["prompt_tok_s"] for i in ok])
            e["fraction_of_bound"] = round(e["decode_tok_s"] / bound, 3) if bound and e["decode_tok_s"] else None
            e["failed"] = len(e["invocations"]) - len(ok)
            if not ok:
                e["error"] = e["invocations"][-1].get("error")
        tm, lc = g["engines"].get("tracemark", {}), g["engines"].get("llama.cpp", {})
        g["ratio"] = {"prompt": ratio(tm.get("prompt_tok_s"), lc.get("prompt_tok_s")),
                      "decode": ratio(tm.get("decode_tok_s"), lc.get("decode_tok_s")),
                      "ttft": ratio(lc.get("ttft_ms"), tm.get("ttft_ms")),
                      "peak_rss": ratio(tm.get("peak_rss_mib"), lc.get("peak_rss_mib"))}
        generate.append(g)

    # One group per (model, SIMD path): run.sh runs each path the machine has.
    watermark = {}
    for r in records:
        if r["section"] == "watermark":
            path = r["result"].get("path", "")
            w = watermark.setdefault((r["model"], path), {"model": r["model"], "path": path, "threads": r["threads"],
                                                          "load": r.get("load"), "rows": []})
            w["rows"].append(r["result"])
        if r["section"] == "watermark-error":
            watermark.setdefault((r["model"], "error"), {"model": r["model"], "path": "", "threads": r["threads"],
                                                         "rows": []})["error"] = r["error"]
    detect = {"corpus": None, "stages": [], "schemes": {}}
    for r in records:
        if r["section"] == "detect-load":
            detect["load"] = r["load"]
        if r["section"] == "detect-error":
            detect["error"] = r["error"]
        if r["section"] != "detect":
            continue
        d = r["result"]
        if d["bench"] == "corpus":
            detect["corpus"] = d
        elif d["bench"] in ("normalize", "tokenize"):
            detect["stages"].append(d)
        else:
            s = detect["schemes"].setdefault(d.get("config", d["scheme"]), {"config": d.get("config"),
                                                                             "scheme": d["scheme"],
                                                                             "parameters": d["parameters"],
                                                                             "threads": {}})
            t = s["threads"].setdefault(str(d["threads"]), {})
            if d["bench"] == "detect_tokens":
                t["tokens_per_s"] = d["tokens_per_s"]
                t["tokens_per_s_per_thread"] = d["tokens_per_s_per_thread"]
            else:
                t["mb_per_s"] = d["mb_per_s"]
    return {"name": meta.get("name"), "date": meta.get("date"), "commit": meta.get("commit"),
            "mode": meta.get("mode"), "elapsed_s": meta.get("elapsed_s"), "peer": meta.get("peer"),
            "notes": meta.get("notes", []), "machine": machine, "generate": generate,
            "watermark": list(watermark.values()), "detect": detect}


def goals(result):
    """The speed goals of the issues, each with what this run measured."""
    rows = []  # (goal, measured value, predicate that says whether it is met, how to show the value[, noise])
    at_least = lambda threshold: (lambda x: x >= threshold)

    def noise(g, kind, engines=("tracemark", "llama.cpp")):
        values = [g["engines"].get(e, {}).get(f"{kind}_spread") for e in engines]
        values = [v for v in values if v is not None]
        return max(values) if values else None
    gen = {(g["model"], g["type"], g["threads"]): g for g in result["generate"]}
    s = gen.get(("stories260K", "F32", 1))
    if s:
        rows.append(("stories260K decode, 1 thread, ≥ 3× llama.cpp", s["ratio"]["decode"], at_least(3.0), fmt_ratio,
                     noise(s, "decode")))
    for t in ("F32", "F16", "Q8_0", "Q4_0", "Q4_K_M"):
        g = gen.get(("llama2-110m", t, 2))
        if not g:
            continue
        rows.append((f"110M {t}, 2 threads, prompt ≥ 1.0× llama.cpp", g["ratio"]["prompt"], at_least(1.0), fmt_ratio,
                     noise(g, "prompt")))
        rows.append((f"110M {t}, 2 threads, decode ≥ 1.0× llama.cpp", g["ratio"]["decode"], at_least(1.0), fmt_ratio,
                     noise(g, "decode")))
        if t in ("F32", "F16"):
            f = g["engines"].get("tracemark", {}).get("fraction_of_bound")
            rows.append((f"110M {t}, 2 threads, decode ≥ 80% of the bandwidth bound", f, at_least(0.8), fmt_percent,
                         noise(g, "decode", ("tracemark",))))
    for w in result["watermark"]:
        if w["model"].startswith("llama2-110m") and w["rows"]:
            worst = max((x.get("overhead_us") or 0 for x in w["rows"] if x["scheme"] != "none"), default=None)
            rows.append((f"watermark overhead on {w['model']}, {w['path'] or 'default'} path, worst scheme, "
                         f"< 2% of a {WM_BUDGET_TOKEN_US / 1000:g} ms token", None if worst is None else
                         worst / WM_BUDGET_TOKEN_US, lambda x: x < 0.02, fmt_percent))
    for config, s in result["detect"]["schemes"].items():
        if s["scheme"] in ("kgw", "gumbel", "synthid") and "1" in s["threads"]:
            rows.append((f"detect {config}, pre-tokenized, 1 thread, ≥ 10 M tokens/s per core",
                         s["threads"]["1"].get("tokens_per_s_per_thread"), at_least(10e6), fmt))
    text = [s["threads"]["1"].get("mb_per_s") for s in result["detect"]["schemes"].values()
            if s["scheme"] in ("kgw", "gumbel", "synthid") and "1" in s["threads"]]
    if text:
        rows.append(("detect end to end, 1 thread, slowest of KGW/Gumbel/SynthID, ≥ 20 MB/s", min(text),
                     at_least(20.0), lambda x: f"{x:.1f} MB/s"))
    out = []
    for label, value, met, show, *rest in rows:
        spread_ = rest[0] if rest else None
        out.append({"goal": label, "measured": value, "met": None if value is None else bool(met(value)),
                    "noise": spread_, "noisy": bool(spread_ is not None and spread_ > NOISY),
                    "shown": show(value) if value is not None else "–"})
    return out


def markdown(r):
    m = r["machine"]
    lines = [f"# tracemark speed, side by side with llama.cpp ({r['mode']} run)", ""]
    lines.append(f"{r['date']}, commit {r['commit']}, run time {fmt(r['elapsed_s'], 0)} s. "
                 f"Peer: {r['peer'] or 'none (tracemark alone)'}.")
    lines.append("")
    for note in r["notes"]:
        lines.append(f"- {note}")
    if r["notes"]:
        lines.append("")
    lines += ["## Machine", "", "| | |", "|---|---|"]
    for key, label in (("cpu", "CPU"), ("cores", "cores (online)"), ("memory_gib", "memory, GiB"),
                       ("l3_cache", "L3 cache"), ("hypervisor", "hypervisor"), ("openblas_core", "OpenBLAS core"),
                       ("openblas_config", "OpenBLAS build"), ("compiler", "compiler"), ("kernel", "kernel"),
                       ("load_at_start", "load average at start (1, 5, 15 min)")):
        if m.get(key) is not None:
            lines.append(f"| {label} | {m[key]} |")
    for threads, b in m.get("read_bandwidth", {}).items():
        lines.append(f"| read bandwidth, {threads} thread(s) | {b['gb_s_best']:.1f} GB/s best, "
                     f"{b['gb_s_median']:.1f} median ({b['buffer_bytes'] >> 20} MiB buffer, {b['kernel']}) |")
    lines.append("")

    g_all = r["generate"]
    if g_all:
        n_prompt, n_gen = g_all[0]["n_prompt"], g_all[0]["n_gen"]
        lines += ["## Generation", "",
                  f"Prompt {n_prompt} tokens, decode {n_gen}; each figure is the median of the invocations "
                  "(each already the median of 3 runs), engines alternating; ratio = tracemark ÷ llama.cpp "
                  "(for time to first token, llama.cpp ÷ tracemark, so > 1 is better for tracemark too). "
                  "Time to first token = prompt time of the "
                  f"{n_prompt}-token prompt (model load excluded). Bound = read bandwidth measured right before and after that row's pairs (best with at "
                  "most as many threads; the Machine table's figures were measured at the start) ÷ weight bytes "
                  "read per decoded token; % = decode ÷ bound (none where the "
                  "weights fit in the L3 cache). ± = half the range "
                  "of decode tok/s over the invocations ÷ median: the run's noise. Load = 1-minute load "
                  "average before each pair.", "",
                  "| model | type | thr | prompt tok/s tm / llama | ratio | decode tok/s tm / llama | ratio "
                  "| ± tm / llama | TTFT ms tm / llama | peak RSS MiB tm / llama | bound tok/s (at GB/s) | % of bound "
                  "tm / llama | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        def bound_cell(g):
            if g["weights_fit_in_cache"]:
                return "in cache"
            if g["decode_bound_tok_s"] is None:
                return "–"
            return f"{fmt(g['decode_bound_tok_s'])} ({g['bound_bandwidth_gb_s']:.1f})"

        for g in g_all:
            tm, lc = g["engines"].get("tracemark", {}), g["engines"].get("llama.cpp", {})

            def pair(key, show=fmt):
                a = "failed" if tm.get("error") else show(tm.get(key))
                b = "failed" if lc.get("error") else show(lc.get(key))
                return f"{a} / {b}"
            loads = g["load_before_pairs"]
            load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–"
            lines.append(f"| {g['model']} | {g['type']} | {g['threads']} | {pair('prompt_tok_s')} | "
                         f"{fmt_ratio(g['ratio']['prompt'])} | {pair('decode_tok_s')} | "
                         f"{fmt_ratio(g['ratio']['decode'])} | {pair('decode_spread', fmt_percent)} | "
                         f"{pair('ttft_ms')} | {pair('peak_rss_mib', lambda x: fmt(x, 0))} | "
                         f"{bound_cell(g)} | {pair('fraction_of_bound', fmt_percent)} | {load} |")
        errors = [(g, name, e["error"]) for g in g_all for name, e in g["engines"].items() if e.get("error")]
        if errors:
            lines.append("")
            for g, name, error in errors:
                lines.append(f"- {name} failed on {g['model']} {g['type']} ({g['threads']} thr): {error}")
        lines.append("")

    if r["watermark"]:
        lines += ["## Watermark overhead", "",
                  "Sampling time per token with each scheme against plain sampling (the same logits, recorded "
                  "by a greedy decode; median of 20 passes over 64 tokens, in the sampling thread's CPU time, "
                  "so that other load on the machine is not counted), on each SIMD path the machine has, side "
                  "by side (AVX2 forced with TM_NO_AVX512=1). Share = extra ÷ (forward + plain sampling) at "
                  f"the forward time measured in the same run; budget (110M model) = extra ÷ a "
                  f"{WM_BUDGET_TOKEN_US / 1000:g} ms token, the 110M Q4_K_M model's decode at 2 threads once the quantized kernels reach "
                  "their goal (issue 19: every scheme under 2%).", ""]
        models = {}
        for w in r["watermark"]:
            models.setdefault(w["model"], []).append(w)
        for model, runs in models.items():
            ok = [w for w in runs if not w.get("error")]
            for w in runs:
                if w.get("error"):
                    lines += [f"**{model}**: failed: {w['error']}", ""]
            if not ok:
                continue
            for w in ok:
                none = next((x for x in w["rows"] if x["scheme"] == "none"), None)
                head = f"**{model}**, {w['path'] or 'default'} path, {w['threads']} thread(s)"
                if w.get("load"):
                    head += f", load {w['load'][0]:.1f}"
                if none:
                    head += (f", vocabulary {none['n_vocab']}: forward {fmt(none['forward_us'])} µs/token, "
                             f"plain sampling {none['sampling_us']:.2f} µs/token")
                lines += [head, ""]
            paths = [w["path"] or "default" for w in ok]
            budget = model.startswith("llama2-110m")  # the budget is set for the 110M model's tokens only
            per = 3 if budget else 2
            lines += ["| config | parameters | " + " | ".join(f"extra µs {p} | share {p}" + (f" | budget {p}" if budget
                                                                                           else "") for p in paths)
                      + " |", "|---|---|" + "---|" * (per * len(ok))]
            configs = [x.get("config", x["scheme"]) for x in ok[0]["rows"] if x["scheme"] != "none"]
            for config in configs:
                cells, parameters = [], ""
                for w in ok:
                    x = next((y for y in w["rows"] if y.get("config") == config), None)
                    if x is None:
                        cells += ["–"] * per
                        continue
                    parameters = x["parameters"]
                    cells += [f"{x['overhead_us']:.1f}", f"{100 * x['overhead_share_of_token']:.2f}%"]
                    if budget:
                        cells.append(f"{100 * x['overhead_us'] / WM_BUDGET_TOKEN_US:.2f}%")
                lines.append(f"| {config} | {parameters} | " + " | ".join(cells) + " |")
            lines.append("")

    d = r["detect"]
    if d["corpus"] or d.get("error"):
        lines += ["## Detection throughput", ""]
        if d.get("error"):
            lines += [f"failed: {d['error']}", ""]
        if d["corpus"]:
            c = d["corpus"]
            lines += [f"Corpus: {c['bytes'] / 1e6:.2f} MB of TruthfulQA and HaluEval text in {c['documents']} "
                      f"documents of ~1 kB, {c['tokens']:,} tokens of a {c['tokenizer_vocab']}-token vocabulary. "
                      "Pre-tokenized: tm_detect_tokens alone. End to end: tm_detect_text (normalise, tokenize, "
                      "score), documents spread over threads. 1-minute load average before: "
                      f"{fmt(d.get('load', [None])[0])}.", ""]
            threads = sorted({t for s in d["schemes"].values() for t in s["threads"]}, key=int)
            header = "| config | parameters | " + " | ".join(
                f"tokens/s, {t} thr | tokens/s/thread, {t} thr" for t in threads) + " | " + " | ".join(
                f"MB/s end to end, {t} thr" for t in threads) + " |"
            lines += [header, "|" + "---|" * (2 + 3 * len(threads))]
            for s in d["schemes"].values():
                cells = []
                for t in threads:
                    x = s["threads"].get(t, {})
                    cells += [fmt(x.get("tokens_per_s")), fmt(x.get("tokens_per_s_per_thread"))]
                cells += [fmt(s["threads"].get(t, {}).get("mb_per_s"), 2) for t in threads]
                lines.append(f"| {s['config']} | {s['parameters']} | " + " | ".join(cells) + " |")
            stages = ", ".join(f"{x['bench']} {x['mb_per_s']:.1f} MB/s ({x['threads']} thr)" for x in d["stages"])
            if stages:
                lines += ["", f"Stages alone: {stages}."]
            lines.append("")

    lines += ["## Goals", "", f"From {GOALS_SOURCE}. Measured on a shared machine: read with the noise and load "
              "columns above.", "", "| goal | measured | met |", "|---|---|---|"]
    for g in r["goals"]:
        met = {True: "yes", False: "no", None: "–"}[g["met"]]
        if g["noisy"]:
            met += f" (noisy: ±{100 * g['noise']:.0f}%, rerun)"
        lines.append(f"| {g['goal']} | {g['shown']} | {met} |")
    lines.append("")
    return "\n".join(lines)


def write_atomically(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    if len(sys.argv) != 3 or sys.argv[1] == "--help":
        sys.exit(__doc__.split("usage: ")[1])
    result = summarise(load_records(sys.argv[1]))
    result["goals"] = goals(result)
    text = markdown(result)
    write_atomically(sys.argv[2] + ".json", json.dumps(result, indent=1) + "\n")
    write_atomically(sys.argv[2] + ".md", text)
    print(text)


main()
