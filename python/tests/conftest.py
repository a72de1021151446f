"""Shared fixtures of the binding's tests: where the fixtures, the installed
CLI and the scheme files are, a key in a temporary folder, the small model,
and a runner for the CLI. scripts/test-python.sh sets the environment; run by
hand, set TRACEMARK_CLI (the installed tracemark command) and make the
library findable (PKG_CONFIG_PATH or TRACEMARK_LIBRARY)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

import tracemark

ROOT = Path(__file__).resolve().parents[2]
SCHEMES = ROOT / "configs" / "schemes"
NOTES: List[str] = []  # measurements, printed after pytest's summary


def pytest_terminal_summary(terminalreporter) -> None:
    for note in NOTES:
        terminalreporter.write_line(f"tracemark: {note}")


def _fixtures() -> Path:
    env = os.environ.get("TRACEMARK_FIXTURES")
    path = Path(env) if env else ROOT.parent / "shared"
    if not (path / "models" / "stories260K.bin").exists():
        pytest.skip(f"fixtures not found in {path} (set TRACEMARK_FIXTURES; scripts/fixtures.sh fetches them)")
    return path


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return _fixtures()


@pytest.fixture(scope="session")
def model_path(fixtures: Path) -> Path:
    return fixtures / "models" / "stories260K.bin"


@pytest.fixture(scope="session")
def tokenizer_path(fixtures: Path) -> Path:
    return fixtures / "models" / "tok512.bin"


@pytest.fixture(scope="session")
def cli() -> str:
    path = os.environ.get("TRACEMARK_CLI") or shutil.which("tracemark")
    if not path:
        pytest.fail("set TRACEMARK_CLI to the installed tracemark command")
    return path


@pytest.fixture(scope="session")
def keydir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


# The example key of docs/watermark-spec.md (bytes 00..1f): a fixed key makes the
# detections below the same on every run (Key.generate is tested on its own).
FIXED_KEY = ("tracemark-watermark-key v1\nid: fda1a304fcd9862d\n"
             "key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")


@pytest.fixture(scope="session")
def key(keydir: Path) -> tracemark.Key:
    path = keydir / "wm.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(FIXED_KEY)
    return tracemark.Key.load(path)


@pytest.fixture(scope="session")
def model(model_path: Path, tokenizer_path: Path) -> tracemark.Model:
    with tracemark.Model(model_path, tokenizer=tokenizer_path) as m:
        yield m


def run_cli(cli: str, *args: str, input: str = None) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *map(str, args)], input=input, capture_output=True, text=True, timeout=300)


def cli_json(cli: str, *args: str, input: str = None) -> dict:
    done = run_cli(cli, *args, input=input)
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)


def cli_error(cli: str, *args: str) -> str:
    """The message of a failing CLI run ("tracemark: error: MESSAGE")."""
    done = run_cli(cli, *args)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("tracemark: error: "), done.stderr
    return line[len("tracemark: error: "):]


def lines(text: str) -> List[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
