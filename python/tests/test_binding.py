"""The Python binding against the installed CLI on the same inputs: the same
generated ids and text for the same seed and key, the same verdicts (every
field of detect --json), the same failures with the library's messages,
deterministic release of C objects, and the GIL released while the library
works."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import weakref

import pytest

import tracemark
from conftest import NOTES, SCHEMES, cli_error, cli_json, lines, run_cli

PROMPT = "Once upon a time"
# The distortion-free schemes mark only sampled output; all of them run at
# temperature 1 here. EXP-edit's permutation test is cut to 99 keys for speed.
SCHEMES_TESTED = ["kgw-selfhash", "kgw-lefthash", "unigram", "gumbel", "synthid", "dipmark", "exp-edit"]


def test_library_is_the_installed_one():
    """The tests exercise what a user installs, not the build tree."""
    expected = os.environ.get("TRACEMARK_EXPECT_PREFIX")
    if not expected:
        pytest.skip("TRACEMARK_EXPECT_PREFIX not set (scripts/test-python.sh sets it)")
    assert os.path.realpath(tracemark._lib.lib._name).startswith(os.path.realpath(expected))
    site = os.environ.get("TRACEMARK_EXPECT_SITE")
    if site:
        assert os.path.realpath(tracemark.__file__).startswith(os.path.realpath(site))


@pytest.mark.parametrize("scheme", SCHEMES_TESTED)
def test_generate_and_detect_match_the_cli(scheme, cli, key, keydir, model, model_path, tokenizer_path):
    config = SCHEMES / f"{scheme}.yaml"
    out = model.generate(PROMPT, watermark=config, key=key, seed=1234, max_tokens=300)
    record = cli_json(cli, "generate", "--model", model_path, "--tokenizer", tokenizer_path, "--prompt", PROMPT,
                      "--watermark", config, "--key", keydir / "wm.key", "--seed", "1234", "--max-tokens", "300",
                      "--json")
    assert out.ids == record["ids"] and out.prompt_ids == record["prompt_ids"]
    assert out.text == record["text"] and out.stop_reason == record["stop_reason"]
    assert out.watermark == record["watermark"] and out.watermark["key_id"] == key.key_id
    assert out.record["sampling"] == record["sampling"] and out.record["seed"] == record["seed"] == 1234
    assert set(out.record) == set(record)

    # EXP-edit: 99 permutations (fast) can decide at fpr 0.01; its statistic is
    # an alignment, for which windows are refused.
    exp_edit = scheme == "exp-edit"
    fpr = 0.01 if exp_edit else 0.001
    perms = ["--permutations", "99"] if exp_edit else []
    with tracemark.Detector(key, config, tokenizer_path, fpr=fpr, permutations=99 if exp_edit else 0) as detector:
        text_file = keydir / f"{scheme}.txt"
        text_file.write_text(out.text, encoding="utf-8")
        verdicts = {}
        for window in ((False,) if exp_edit else (False, True)):
            verdict = verdicts[window] = detector.detect(out.text, window=window)
            expected = cli_json(cli, "detect", "--key", keydir / "wm.key", "--watermark", config, "--tokenizer",
                                tokenizer_path, "--json", "--fpr", str(fpr), *(["--window"] if window else []), *perms,
                                text_file)
            assert verdict.to_dict() == expected
            assert json.loads(json.dumps(verdict.to_dict())) == expected
        # Power is the detect room's subject (the weaker schemes miss now and
        # then on this tiny model): only KGW's whole-text verdict is held to a
        # detection here, with the fixed test key.
        if scheme.startswith("kgw"):
            assert verdicts[False].detected, f"{scheme}: {verdicts[False].p_value}"


def test_several_keys_and_prompt_match_the_cli(cli, key, keydir, model, tokenizer_path, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    others = [tracemark.Key.generate(folder / f"k{i}.key") for i in range(3)]
    config = SCHEMES / "synthid.yaml"
    out = model.generate(PROMPT, watermark=config, key=others[1], seed=5, max_tokens=100)
    (tmp_path / "text").write_text(out.text, encoding="utf-8")
    (tmp_path / "prompt").write_text(PROMPT, encoding="utf-8")
    with tracemark.Detector([key] + others, config, tokenizer_path) as detector:
        verdict = detector.detect(out.text, prompt=PROMPT)
    expected = cli_json(cli, "detect", "--key", keydir / "wm.key", "--key", folder, "--watermark", config,
                        "--tokenizer", tokenizer_path, "--prompt-file", tmp_path / "prompt", "--json",
                        tmp_path / "text")
    assert verdict.to_dict() == expected
    assert verdict.keys["tested"] == 4 and verdict.keys["best_index"] == 2 and verdict.key_id == others[1].key_id
    assert verdict.tokens["prompt"] > 0


def _short_texts(model, key, n):
    config = SCHEMES / "kgw-selfhash.yaml"
    long = [model.generate(PROMPT, watermark=config, key=key, seed=s, max_tokens=200).text for s in range(8)]
    plain = [model.generate(PROMPT, seed=100 + s, max_tokens=200).text for s in range(8)]
    pool = long + plain
    texts = []
    for i in range(n):
        t = pool[i % len(pool)]
        start = (i * 7919) % max(1, len(t) - 150)
        texts.append(t[start:start + 60 + i % 90])
    return texts


def test_detect_many_matches_detect_jsonl_and_keeps_its_pace(cli, key, keydir, model, tokenizer_path, tmp_path):
    """10,000 short texts: every verdict equals the CLI's --jsonl line. The
    time of each (the best of three interleaved runs, on the same number of
    threads) is printed at the end; issue 16 asks detect_many to stay within
    1.2x of the CLI (measured 0.89-0.95 on 2 cores)."""
    texts = _short_texts(model, key, 10_000)
    texts[17] = "caf\u00e9 \u0440\u0430ypal  \u200bdone"  # normalisation on the way
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    config = SCHEMES / "kgw-selfhash.yaml"
    threads = min(4, os.cpu_count() or 1)
    args = ["detect", "--key", keydir / "wm.key", "--watermark", config, "--tokenizer", tokenizer_path, "--jsonl",
            "--threads", str(threads), jsonl]
    with tracemark.Detector(key, config, tokenizer_path) as detector:
        cli_seconds, py_seconds = [], []
        for _ in range(3):
            start = time.perf_counter()
            done = run_cli(cli, *args)
            cli_seconds.append(time.perf_counter() - start)
            assert done.returncode == 0, done.stderr
            start = time.perf_counter()
            verdicts = detector.detect_many(texts, threads=threads)
            py_seconds.append(time.perf_counter() - start)
    expected = lines(done.stdout)
    assert len(expected) == len(verdicts) == 10_000
    for i, (verdict, line) in enumerate(zip(verdicts, expected)):
        assert line.pop("id") == i
        assert verdict.to_dict() == line
    assert any(v.detected for v in verdicts) and not all(v.detected for v in verdicts)
    best_cli, best_py = min(cli_seconds), min(py_seconds)
    NOTES.append(f"10,000 texts on {threads} threads: detect --jsonl {best_cli:.3f} s, detect_many {best_py:.3f} s "
                 f"(ratio {best_py / best_cli:.2f}; every run: cli {['%.3f' % s for s in cli_seconds]}, "
                 f"python {['%.3f' % s for s in py_seconds]})")
    # Speed is reported (the note above, printed at the end), never asserted:
    # a shared CI machine makes any timed assertion flaky.


def test_detect_many_reports_each_failure_in_place(key, tokenizer_path):
    with tracemark.Detector(key, SCHEMES / "kgw-selfhash.yaml", tokenizer_path) as detector:
        results = detector.detect_many(["fine text here", b"bad \xff utf-8", "more text"], errors="return")
        assert isinstance(results[0], tracemark.Verdict) and isinstance(results[2], tracemark.Verdict)
        assert isinstance(results[1], tracemark.FormatError) and "UTF-8" in str(results[1])
        with pytest.raises(tracemark.FormatError):
            detector.detect_many(["fine", b"\xff"], threads=2)


# ---- failures: the library's own messages, as the CLI prints them ------------------


def test_missing_key(cli, tmp_path, tokenizer_path):
    path = tmp_path / "missing.key"
    with pytest.raises(tracemark.NotFoundError) as caught:
        tracemark.Key.load(path)
    assert caught.value.code == 7 and caught.value.status == "not found"
    assert str(caught.value) == cli_error(cli, "detect", "--key", path, "--watermark", SCHEMES / "kgw-selfhash.yaml",
                                          "--tokenizer", tokenizer_path, "/dev/null")


def test_corrupt_and_readable_keys(cli, tmp_path, tokenizer_path):
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_bytes(b"not a key at all\n")
    corrupt.chmod(0o600)
    with pytest.raises(tracemark.FormatError) as caught:
        tracemark.Key.load(corrupt)
    assert str(caught.value) == cli_error(cli, "detect", "--key", corrupt, "--watermark",
                                          SCHEMES / "kgw-selfhash.yaml", "--tokenizer", tokenizer_path, "/dev/null")
    shared = tmp_path / "shared.key"
    tracemark.Key.generate(shared).close()
    assert (shared.stat().st_mode & 0o777) == 0o600
    shared.chmod(0o644)
    with pytest.raises(tracemark.KeyPermissionError) as caught:
        tracemark.Key.load(shared)
    assert str(caught.value) == cli_error(cli, "detect", "--key", shared, "--watermark",
                                          SCHEMES / "kgw-selfhash.yaml", "--tokenizer", tokenizer_path, "/dev/null")
    with pytest.raises(tracemark.ArgumentError):  # refuses to overwrite
        tracemark.Key.generate(shared)


@pytest.mark.parametrize("body", ["scheme: kgw\ngamma: 2.5\n", "scheme: kgw\nbogus_field: 1\n", "scheme: [unclosed\n"])
def test_bad_scheme_config(cli, key, keydir, tmp_path, tokenizer_path, body):
    config = tmp_path / "bad.yaml"
    config.write_text(body)
    with pytest.raises(tracemark.Error) as caught:
        tracemark.Detector(key, config, tokenizer_path)
    assert isinstance(caught.value, (tracemark.FormatError, tracemark.ArgumentError)), type(caught.value)
    assert str(config) in str(caught.value)
    assert str(caught.value) == cli_error(cli, "detect", "--key", keydir / "wm.key", "--watermark", config,
                                          "--tokenizer", tokenizer_path, "/dev/null")


def test_bad_models(cli, tmp_path, tokenizer_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\xff" * 60)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(b"\x01\x00\x00\x00" * 5)
    for path in (garbage, truncated):
        with pytest.raises(tracemark.Error) as caught:
            tracemark.Model(path, tokenizer=tokenizer_path)
        assert isinstance(caught.value, (tracemark.FormatError, tracemark.UnsupportedError)), type(caught.value)
        assert str(caught.value) == cli_error(cli, "generate", "--model", path, "--tokenizer", tokenizer_path,
                                              "--prompt", "x")
    absent = tmp_path / "absent.gguf"
    with pytest.raises(tracemark.Error) as caught:
        tracemark.Model(absent)
    assert str(caught.value) == cli_error(cli, "generate", "--model", absent, "--prompt", "x")


def test_bad_tokenizer_and_arguments(key, model, tmp_path):
    bad = tmp_path / "tok.bin"
    bad.write_bytes(b"\x00" * 3)
    with pytest.raises(tracemark.Error) as caught:
        tracemark.Detector(key, SCHEMES / "kgw-selfhash.yaml", bad)
    assert str(bad) in str(caught.value)
    with pytest.raises(tracemark.ArgumentError):
        tracemark.Detector([], SCHEMES / "kgw-selfhash.yaml", model)
    with pytest.raises(tracemark.ArgumentError):
        model.generate(PROMPT, watermark=SCHEMES / "gumbel.yaml", key=key, temperature=0)
    with pytest.raises(tracemark.ArgumentError):
        model.generate(PROMPT, watermark=SCHEMES / "gumbel.yaml")


# ---- lifetimes and threads ------------------------------------------------------------


def test_objects_close_once_and_refuse_use_after(key, tokenizer_path):
    with tracemark.Detector(key, SCHEMES / "unigram.yaml", tokenizer_path) as detector:
        detector.detect("some text")
    with pytest.raises(tracemark.ArgumentError, match="closed"):
        detector.detect("some text")
    detector.close()  # twice is harmless
    tok = tracemark.Tokenizer(tokenizer_path)
    assert tok.encode("Once upon a time") and tok.vocab_size == 512
    ref = weakref.ref(tok)
    del tok
    gc.collect()
    assert ref() is None  # collected: __del__ freed the C tokenizer


def test_detector_keeps_what_it_borrows_alive(keydir, model_path, tokenizer_path):
    """The C detector borrows its keys and tokenizer: dropping the caller's
    references must not free them under it."""
    text = "Once upon a time there was a dog. " * 5
    detector = tracemark.Detector(tracemark.Key.load(keydir / "wm.key"), SCHEMES / "kgw-selfhash.yaml",
                                  tracemark.Tokenizer(tokenizer_path))
    gc.collect()
    expected = detector.detect(text)
    assert expected.tokens["total"] > 0
    # Closing what it borrows only marks them closed while it lives.
    key, tok = tracemark.Key.load(keydir / "wm.key"), tracemark.Tokenizer(tokenizer_path)
    with tracemark.Detector(key, SCHEMES / "kgw-selfhash.yaml", tok) as second:
        key.close()
        tok.close()
        with pytest.raises(tracemark.ArgumentError, match="closed"):
            tok.encode("x")
        assert second.detect(text) == expected
        assert second.detect(text, window=True).tokens == expected.tokens  # a new C detector from borrowed handles
    assert key._handle is None and tok._handle is None  # freed with the detector
    detector.close()
    # A model's tokenizer outlives the model's close() while a detector uses it.
    model = tracemark.Model(model_path, tokenizer=tokenizer_path)
    with tracemark.Detector(tracemark.Key.load(keydir / "wm.key"), SCHEMES / "kgw-selfhash.yaml", model) as third:
        model.close()
        gc.collect()
        assert third.detect(text) == expected


def test_gil_released_during_generation(model):
    """While one thread generates, another keeps running Python. The worker
    makes nine generation calls and notes when each began and ended; the main
    thread notes the time as it loops (every millisecond at most). Were the
    GIL held inside generate(), no note could fall in the middle half of any
    call (checked by loading the library through ctypes.PyDLL: 0 or 1 of 9,
    the 1 where Python ran between the C calls of a slow first call); with it
    released, notes fall inside every call (9 of 9 at load average 16, with
    calls of 0.2-6 s). Five of nine are asked."""
    done = threading.Event()
    calls = []

    def generate():
        for i in range(9):
            start = time.perf_counter()
            model.generate(PROMPT, seed=3 + i, max_tokens=400)
            calls.append((start, time.perf_counter()))
        done.set()

    worker = threading.Thread(target=generate)
    notes, last = [], 0.0
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        if now - last > 0.001:
            notes.append(now)
            last = now
    worker.join()
    inside = sum(any(s + (e - s) / 4 < t < e - (e - s) / 4 for t in notes) for s, e in calls)
    assert inside >= 5, (inside, [round(e - s, 3) for s, e in calls])
