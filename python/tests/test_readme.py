"""The README's C and Python snippets, run verbatim: each is cut out of
README.md between its markers and run in a folder laid out as the README
says (models/, configs/, wm.key)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def snippet(name: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- snippet:%s -->\s*```[a-z]*\n(.*?)```" % re.escape(name), readme, re.S)
    assert found, f"README.md has no snippet:{name}"
    return found.group(1)


@pytest.fixture
def workdir(tmp_path, fixtures):
    (tmp_path / "models").symlink_to(fixtures / "models")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    return tmp_path


def test_python_snippet_generates_then_detects(workdir):
    done = subprocess.run([sys.executable, "-c", snippet("python")], cwd=workdir, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (workdir / "wm.key").exists() and (workdir / "story.txt").exists()
    assert re.search(r"^detected: (True|False) p = \S+$", done.stdout, re.M), done.stdout


def python_verdict(stdout: str):
    found = re.search(r"^detected: (True|False) p = (\S+)$", stdout, re.M)
    return found.group(1) == "True", float(found.group(2))


def test_c_snippet_detects_what_python_generated(workdir):
    python = subprocess.run([sys.executable, "-c", snippet("python")], cwd=workdir, check=True, capture_output=True,
                            text=True)
    detected, p = python_verdict(python.stdout)
    if not shutil.which("pkg-config") or subprocess.run(["pkg-config", "--exists", "tracemark-detect"]).returncode:
        pytest.fail("pkg-config cannot find tracemark-detect (set PKG_CONFIG_PATH to the installed prefix)")
    (workdir / "detect.c").write_text(snippet("c"), encoding="utf-8")
    build = snippet("c-build").strip()
    libdir = subprocess.run(["pkg-config", "--variable=libdir", "tracemark-detect"], capture_output=True,
                            text=True).stdout.strip()
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)  # a temporary prefix is not on the loader's path
    done = subprocess.run(build, shell=True, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    run = subprocess.run(["./detect"], cwd=workdir, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    # The C program reads what Python wrote and reaches the same verdict.
    assert run.stdout == "%s (p = %.3g)\n" % ("watermarked" if detected else "not watermarked", p), run.stdout
