"""python -m tracemark detect ...: the CLI's detect command over the binding,
with the same options, output (text, --json, --jsonl) and exit status (0
watermarked / every line processed, 3 not watermarked, 1 failure, 2 usage).
It exists so that a Python installation can check a text without the
tracemark command, and so that the tests can hold the binding to the CLI."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from typing import List, Optional, Sequence

from . import Detector, Error, Key, NotFoundError, UnsupportedError, Verdict, _lib, _raise

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_DETECTED = 0, 1, 2, 3


def _load_keys(paths: Sequence[str]) -> List[Key]:
    """Key files and folders (every regular file in a folder, sorted by name), as the CLI."""
    keys: List[Key] = []
    for path in paths:
        if os.path.isdir(path):
            before = len(keys)
            for name in sorted(os.listdir(path)):
                file = os.path.join(path, name)
                if not name.startswith(".") and os.path.isfile(file):
                    keys.append(Key.load(file))
            if len(keys) == before:
                raise NotFoundError(f"{path}: no key files in this folder")
        else:
            keys.append(Key.load(path))
    return keys


def _default_tokenizer() -> str:
    """The default tokenizer where it lies on disk, as the CLI's detect finds it: $TRACEMARK_MODEL's
    tokenizer, then tok512.bin in ./models/ and ../shared/models/. Never a download (a detector needs
    only a vocabulary)."""
    if os.environ.get("TRACEMARK_MODEL"):
        resolve = getattr(_lib.lib, "tm_model_resolve", None)
        if resolve is None or not _lib.HAS_GENERATOR:
            raise UnsupportedError("--tokenizer is required with libtracemark-detect (it cannot resolve models)")
        err = _lib.tm_error()
        model, tokenizer = ctypes.create_string_buffer(4096), ctypes.create_string_buffer(4096)
        status = resolve(os.fsencode(os.environ["TRACEMARK_MODEL"]), model, 4096, tokenizer, 4096, ctypes.byref(err))
        if status:
            _raise(status, err)
        return os.fsdecode(tokenizer.value or model.value)
    for candidate in ("models/tok512.bin", "../shared/models/tok512.bin"):
        if os.path.isfile(candidate):
            return candidate
    raise NotFoundError("no tokenizer: pass --tokenizer PATH (looked at $TRACEMARK_MODEL, ./models/tok512.bin and "
                        "../shared/models/tok512.bin; a detector never downloads)")


def _g(x: float) -> str:
    """C's %.3g."""
    return "%.3g" % x


def _print_text(v: Verdict, tokenizer: str, vocab: int, defaulted: bool) -> None:
    p = v.keys["family_p_value"] if v.keys else v.p_decision
    print("verdict:        %s (p = %s %s fpr %s)" % ("WATERMARKED" if v.detected else "not watermarked", _g(p),
                                                    "<=" if v.detected else ">", "%g" % v.fpr))
    print(f"scheme:         {v.scheme} ({v.parameters})")
    line = f"key id:         {v.key_id}"
    if v.keys:
        line += " (best of %d keys; family-wise p = %s)" % (v.keys["tested"], _g(v.keys["family_p_value"]))
    print(line)
    t = v.tokens
    print("tokens:         %d (scored %d; ignored: %d without full context, %d repeated; prompt %d)"
          % (t["total"], t["scored"], t["ignored_context"], t["ignored_repeated"], t["prompt"]))
    nan = float("nan")
    print("statistic:      %s = %.6g (expected %.6g without a watermark)"
          % (v.statistic_name, v.statistic if v.statistic is not None else nan,
             v.expected if v.expected is not None else nan))
    if v.z is not None:
        print("z:              %.3f" % v.z)
    line = "p-value:        " + _g(v.p_value)
    if v.p_resolution is not None:
        line += " (permutation test, resolution %s%s)" % (_g(v.p_resolution), ", at its floor" if v.p_at_floor else "")
    else:
        line += " (exact)"
    if v.p_normal_approximation is not None:
        line += "; normal approximation " + _g(v.p_normal_approximation)
    print(line)
    if v.weighted_mean_g is not None:
        print("weighted mean:  %.4f (p = %s)" % (v.weighted_mean_g, _g(v.weighted_p_value)))
    if v.window:
        w = v.window
        print("best window:    tokens %d-%d, characters %d-%d, p = %s (%s corrected over %d windows)"
              % (w["start_token"], w["end_token"], w["start_char"], w["end_char"], _g(w["p_value"]),
                 _g(w["p_value_corrected"]), w["windows_examined"]))
    print(f"normalization:  {v.normalization}")
    print("tokenizer:      %s (%d tokens%s)" % (tokenizer, vocab, "; the default model's, no --tokenizer given"
                                                 if defaulted else ""))


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)


def _run_jsonl(detector: Detector, stream, threads: Optional[int], window: bool) -> int:
    failed = False
    batch: List[tuple] = []

    def flush() -> None:
        nonlocal failed
        good = [(i, item) for i, item in enumerate(batch) if "text" in item[1]]
        verdicts = detector.detect_many([item["text"] for _, (_, item) in good], threads=threads, window=window,
                                        errors="return", prompts=[item.get("prompt") for _, (_, item) in good])
        results = {}
        for (i, _), verdict in zip(good, verdicts):
            results[i] = verdict
        for i, (line_number, item) in enumerate(batch):
            result = results.get(i, item.get("error"))
            if isinstance(result, Verdict):
                record = result.to_dict()
                if "id" in item:
                    record["id"] = item["id"]
                print(_dumps(record))
            else:
                failed = True
                message = result.message if isinstance(result, Error) else result
                record = {"id": item.get("id"), "line": line_number, "error": message}
                print(_dumps(record))
        batch.clear()
        sys.stdout.flush()

    for line_number, line in enumerate(stream, 1):
        line = line.rstrip("\r\n")
        if not line:
            continue  # blank lines carry no record
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            batch.append((line_number, {"error": f"invalid JSON: {exc.msg}"}))
        else:
            if not isinstance(item, dict):
                batch.append((line_number, {"error": 'expected an object {"id", "text", "prompt"?}'}))
            elif not isinstance(item.get("text"), str):
                batch.append((line_number, {"id": item.get("id"), "error": '"text" must be a string'}))
            elif "prompt" in item and not isinstance(item["prompt"], str):
                batch.append((line_number, {"id": item.get("id"), "error": '"prompt" must be a string'}))
            else:
                batch.append((line_number, item))
        if len(batch) >= 4096:
            flush()
    flush()
    return EXIT_FAILURE if failed else EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracemark")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("detect", help="test a text for a watermark (as tracemark detect)",
                            description="Test a text (FILE, or stdin) for a watermark made with KEY and the scheme "
                                        "CONFIG. Exit status: 0 watermark detected (for --jsonl: every line "
                                        "processed), 3 not detected, 1 failure, 2 usage error.")
    p.add_argument("--key", action="append", required=True, help="key file, or a folder of key files; repeatable")
    p.add_argument("--watermark", required=True, metavar="CONFIG", help="scheme settings (YAML, configs/schemes/)")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="model GGUF, vocab-only GGUF or tokenizer.bin (default: the default model's)")
    p.add_argument("--prompt-file", metavar="PATH", help="the prompt the text continues (context, never scored)")
    p.add_argument("--fpr", type=float, default=1e-3, help="false-positive rate of the decision (default 0.001)")
    p.add_argument("--window", action="store_true", help="also find the best window")
    p.add_argument("--min-window", type=int, default=25, help="smallest window in scored tokens (default 25)")
    p.add_argument("--keep-repeated", action="store_true", help="score repeated (context, token) pairs every time")
    p.add_argument("--no-nfc", action="store_true")
    p.add_argument("--no-homoglyphs", action="store_true")
    p.add_argument("--no-whitespace", action="store_true")
    p.add_argument("--permutations", type=int, default=0,
                   help="EXP-edit permutation test size (default: the fewest that can detect at --fpr)")
    p.add_argument("--full-permutations", action="store_true", help="EXP-edit: run every permutation")
    p.add_argument("--jsonl", action="store_true", help='input is JSON lines {"id", "text", "prompt"?}')
    p.add_argument("--threads", type=int, help="threads for --jsonl (default: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.add_argument("input", nargs="?", default="-", metavar="FILE|-")
    args = parser.parse_args(argv)
    if args.jsonl and args.prompt_file:
        parser.error('with --jsonl, prompts come from each line\'s "prompt"')
    if not (1e-300 <= args.fpr <= 0.5) or args.min_window < 1 or args.permutations < 0 or \
            (args.threads is not None and args.threads < 1):
        parser.error("--fpr must be in [1e-300, 0.5]; --min-window, --permutations and --threads at least 1")
    try:
        tokenizer = args.tokenizer or _default_tokenizer()
        keys = _load_keys(args.key)
        with Detector(keys, args.watermark, tokenizer, fpr=args.fpr, min_window=args.min_window,
                      keep_repeated=args.keep_repeated, nfc=not args.no_nfc, homoglyphs=not args.no_homoglyphs,
                      whitespace=not args.no_whitespace, permutations=args.permutations,
                      full_permutations=args.full_permutations) as detector:
            vocab = detector._tokenizer.vocab_size
            if not args.tokenizer:
                print(f"tracemark detect: no --tokenizer given: using {tokenizer} ({vocab} tokens); text from a model "
                      "with another vocabulary needs that model's --tokenizer", file=sys.stderr)
            stdin = args.input == "-"
            if args.jsonl:
                if stdin:
                    return _run_jsonl(detector, sys.stdin, args.threads, args.window)
                with open(args.input, encoding="utf-8", errors="surrogateescape") as stream:
                    return _run_jsonl(detector, stream, args.threads, args.window)
            try:
                text = sys.stdin.buffer.read() if stdin else open(args.input, "rb").read()
                prompt = open(args.prompt_file, "rb").read().decode("utf-8") if args.prompt_file else None
            except OSError as exc:
                raise Error(f"{exc.filename}: cannot open: {exc.strerror}") from exc
            try:
                verdict = detector.detect(text, window=args.window, prompt=prompt)
            except Error as exc:  # named like the CLI's: "<file or stdin>: <message>"
                raise type(exc)(f"{'stdin' if stdin else args.input}: {exc.message}", exc.status, exc.code) from exc
            if args.json:
                print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
            else:
                _print_text(verdict, tokenizer, vocab, not args.tokenizer)
            return EXIT_OK if verdict.detected else EXIT_NOT_DETECTED
    except Error as exc:
        print(f"tracemark: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
