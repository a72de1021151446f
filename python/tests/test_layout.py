"""The ctypes structures in tracemark/_lib.py against the installed headers:
a small C program compiled with `pkg-config --cflags tracemark` prints the
size and every field's offset of each mirrored struct, and they must equal
what ctypes computes. A change to a struct in include/tracemark/ that the
binding does not follow fails here, before it can corrupt memory."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from tracemark import _lib

STRUCTS = {
    "tm_error": _lib.tm_error, "tm_normalize_options": _lib.tm_normalize_options,
    "tm_detect_options": _lib.tm_detect_options, "tm_detect_window": _lib.tm_detect_window,
    "tm_detection": _lib.tm_detection, "tm_wm_config": _lib.tm_wm_config,
    "tm_sampling_params": _lib.tm_sampling_params, "tm_generate_options": _lib.tm_generate_options,
    "tm_generation": _lib.tm_generation,
}


def test_structures_match_the_installed_headers(tmp_path):
    if not shutil.which("pkg-config") or not shutil.which("cc"):
        pytest.fail("needs pkg-config and cc")
    flags = subprocess.run(["pkg-config", "--cflags", "tracemark"], capture_output=True, text=True, check=True)
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <tracemark/detect.h>",
             "#include <tracemark/generator.h>", "int main(void) {"]
    expected = []
    for c_name, struct in STRUCTS.items():
        lines.append(f'    printf("%zu\\n", sizeof({c_name}));')
        expected.append(ctypes.sizeof(struct))
        for field, _type in struct._fields_:
            lines.append(f'    printf("%zu\\n", offsetof({c_name}, {field}));')
            expected.append(getattr(struct, field).offset)
    lines += ["    return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run(["cc", "-std=c11", "-o", str(tmp_path / "layout"), str(source), *flags.stdout.split()],
                   check=True)
    got = [int(x) for x in subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True,
                                          check=True).stdout.split()]
    labels = []
    for c_name, struct in STRUCTS.items():
        labels.append(f"sizeof({c_name})")
        labels += [f"offsetof({c_name}, {f})" for f, _ in struct._fields_]
    mismatches = [(label, c, py) for label, c, py in zip(labels, got, expected) if c != py]
    assert not mismatches, f"C vs ctypes (name, C, ctypes): {mismatches}"
    assert len(got) == len(expected)
