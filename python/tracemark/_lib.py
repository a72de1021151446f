"""The C library as ctypes sees it: finding and loading libtracemark, the
structures of the public headers field for field, and the prototypes of the
functions the binding calls. Nothing here owns a C object; the classes in
__init__ do. The structures mirror include/tracemark/*.h exactly: a change
to a struct there must be made here too (tests/test_binding.py compares
verdicts with the CLI's and fails when they drift apart).

ctypes releases the GIL around every call through a CDLL, so generation and
detection run while other Python threads go on."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from ctypes import (POINTER, Structure, c_bool, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_size_t,
                    c_uint64, c_void_p)
from typing import List

ERROR_MESSAGE_MAX = 512
KEY_ID_SIZE = 17
SONAME_MAJOR = 0


class tm_error(Structure):
    _fields_ = [("code", c_int), ("message", c_char * ERROR_MESSAGE_MAX)]


class tm_normalize_options(Structure):
    _fields_ = [("nfc", c_bool), ("fold_homoglyphs", c_bool), ("normalize_whitespace", c_bool)]


class tm_detect_options(Structure):
    _fields_ = [("normalize", tm_normalize_options), ("fpr", c_double), ("windows", c_bool),
                ("min_window", c_int32), ("ignore_repeated", c_bool), ("permutations", c_int32),
                ("sequential", c_bool), ("permutation_seed", c_uint64)]


class tm_detect_window(Structure):
    _fields_ = [("start_token", c_size_t), ("end_token", c_size_t), ("start_byte", c_size_t),
                ("end_byte", c_size_t), ("start_char", c_size_t), ("end_char", c_size_t), ("n_scored", c_size_t),
                ("statistic", c_double), ("z", c_double), ("log_p", c_double), ("log_p_corrected", c_double),
                ("n_windows", c_uint64)]


class tm_detection(Structure):
    _fields_ = [("kind", c_int), ("key_id", c_char * KEY_ID_SIZE), ("parameters", c_char * 256),
                ("normalization", c_char * 64), ("n_tokens", c_size_t), ("n_scored", c_size_t),
                ("n_ignored_context", c_size_t), ("n_ignored_repeated", c_size_t), ("n_prompt", c_size_t),
                ("statistic_name", c_char_p), ("statistic", c_double), ("expected", c_double), ("z", c_double),
                ("log_p", c_double), ("p", c_double), ("p_normal", c_double), ("p_resolution", c_double),
                ("p_at_floor", c_bool), ("permutations_done", c_uint64), ("p_sequential", c_bool),
                ("weighted_score", c_double), ("weighted_log_p", c_double),
                ("has_window", c_bool), ("window", tm_detect_window), ("log_p_decision", c_double),
                ("detected", c_bool), ("n_keys", c_size_t), ("best_key", c_size_t), ("log_p_family", c_double),
                ("weighted_log_p_family", c_double)]


class tm_wm_config(Structure):
    _fields_ = [("kind", c_int), ("context_width", c_int32), ("skip_repeated_context", c_bool),
                ("gamma", c_double), ("delta", c_double), ("seeding", c_int), ("layers", c_int32),
                ("alpha", c_double), ("sequence_length", c_int32), ("decoder", c_int)]


class tm_sampling_params(Structure):
    _fields_ = [("temperature", c_float), ("top_k", c_int32), ("top_p", c_float), ("min_p", c_float),
                ("repeat_penalty", c_float), ("frequency_penalty", c_float), ("presence_penalty", c_float),
                ("penalty_window", c_int32), ("seed", c_uint64)]


TEXT_CALLBACK = ctypes.CFUNCTYPE(None, c_void_p, c_size_t, c_void_p)


class tm_generate_options(Structure):
    _fields_ = [("max_tokens", c_int32), ("stop_strings", POINTER(c_char_p)), ("n_stop_strings", c_size_t),
                ("on_text", TEXT_CALLBACK), ("user", c_void_p)]


class tm_generation(Structure):
    _fields_ = [("prompt_ids", POINTER(c_int32)), ("n_prompt", c_size_t), ("ids", POINTER(c_int32)),
                ("n_ids", c_size_t), ("text", c_void_p), ("text_size", c_size_t), ("prompt_seconds", c_double),
                ("decode_seconds", c_double), ("stop_reason", c_char_p)]


def _candidates() -> List[str]:
    """Where to look for the library, in order: $TRACEMARK_LIBRARY (a file or
    a folder), the libdir that pkg-config gives for tracemark (honouring
    PKG_CONFIG_PATH), this Python's prefix, then the loader's own search."""
    names = [f"libtracemark.so.{SONAME_MAJOR}", f"libtracemark-detect.so.{SONAME_MAJOR}"]
    found: List[str] = []
    explicit = os.environ.get("TRACEMARK_LIBRARY")
    if explicit:
        if os.path.isdir(explicit):
            found += [os.path.join(explicit, n) for n in names]
        else:
            return [explicit]  # an explicit file is the only choice: no silent fallback
    pkg_config = shutil.which("pkg-config")
    if pkg_config:
        for module in ("tracemark", "tracemark-detect"):
            try:
                libdir = subprocess.run([pkg_config, "--variable=libdir", module], capture_output=True, text=True,
                                        timeout=10).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                libdir = ""
            if libdir:
                found += [os.path.join(libdir, n) for n in names]
    for prefix in dict.fromkeys([sys.prefix, "/usr/local"]):
        found += [os.path.join(prefix, "lib", n) for n in names]
    found += names
    util = ctypes.util.find_library("tracemark")
    if util:
        found.append(util)
    return found


def _load() -> ctypes.CDLL:
    tried = []
    for candidate in _candidates():
        if os.path.isabs(candidate) and not os.path.exists(candidate):
            tried.append(candidate)
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError as exc:
            tried.append(f"{candidate} ({exc})")
    raise ImportError("tracemark: cannot find libtracemark.so.%d (install the C library with cmake --install, or "
                      "set TRACEMARK_LIBRARY to the library file or its folder); tried: %s"
                      % (SONAME_MAJOR, "; ".join(tried)))


lib = _load()
#: True when the loaded library has the forward pass (libtracemark rather
#: than libtracemark-detect): Model needs it, Detector does not.
HAS_GENERATOR = hasattr(lib, "tm_context_create")

_E = POINTER(tm_error)


def _proto(name: str, restype, *argtypes, optional: bool = False) -> None:
    try:
        function = getattr(lib, name)
    except AttributeError:
        if optional:
            return
        raise
    function.restype = restype
    function.argtypes = list(argtypes)


_proto("tm_status_name", c_char_p, c_int)
_proto("tm_float_shortest", c_double, c_float, optional=True)
_proto("tm_stat_p_from_log", c_double, c_double)
_proto("tm_wm_key_generate", c_int, POINTER(c_void_p), _E)
_proto("tm_wm_key_write", c_int, c_void_p, c_char_p, _E)
_proto("tm_wm_key_read", c_int, POINTER(c_void_p), c_char_p, _E)
_proto("tm_wm_key_id", c_char_p, c_void_p)
_proto("tm_wm_key_free", None, c_void_p)
_proto("tm_wm_kind_name", c_char_p, c_int)
_proto("tm_wm_config_load", c_int, POINTER(tm_wm_config), c_char_p, _E)
_proto("tm_wm_config_validate", c_int, POINTER(tm_wm_config), _E)
_proto("tm_wm_config_describe", c_size_t, POINTER(tm_wm_config), c_char_p, c_size_t)
_proto("tm_wm_config_default", None, POINTER(tm_wm_config), c_int)
_proto("tm_tokenizer_load", c_int, POINTER(c_void_p), c_char_p, _E)
_proto("tm_tokenizer_free", None, c_void_p)
_proto("tm_tokenizer_vocab_size", c_int32, c_void_p)
_proto("tm_tokenizer_encode", c_int, c_void_p, c_char_p, c_size_t, c_bool, POINTER(POINTER(c_int32)),
       POINTER(c_size_t), _E)
_proto("tm_tokenizer_adds_bos", c_bool, c_void_p)
_proto("tm_detect_options_default", None, POINTER(tm_detect_options))
_proto("tm_detector_create", c_int, POINTER(c_void_p), c_void_p, POINTER(tm_wm_config), POINTER(c_void_p), c_size_t,
       POINTER(tm_detect_options), _E)
_proto("tm_detector_free", None, c_void_p)
_proto("tm_detection_json_text", c_void_p, POINTER(tm_detection), c_double)
_proto("tm_detection_json_free", None, c_void_p)
_proto("tm_detect_text", c_int, c_void_p, c_char_p, c_size_t, c_char_p, POINTER(tm_detection), _E)
_proto("tm_detect_batch_start", c_int, POINTER(c_void_p), c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_size_t),
       POINTER(c_char_p), c_double, c_size_t, _E)
_proto("tm_detect_batch_next", c_int, c_void_p, c_size_t, POINTER(c_void_p), _E)
_proto("tm_detect_batch_free", None, c_void_p)
_proto("tm_model_load", c_int, POINTER(c_void_p), c_char_p, _E, optional=True)
_proto("tm_model_free", None, c_void_p, optional=True)
_proto("tm_model_resolve", c_int, c_char_p, c_char_p, c_size_t, c_char_p, c_size_t, _E, optional=True)
_proto("tm_model_tokenizer", c_int, POINTER(c_void_p), c_void_p, c_char_p, _E, optional=True)
_proto("tm_context_create", c_int, POINTER(c_void_p), c_void_p, c_int32, c_int32, _E, optional=True)
_proto("tm_context_free", None, c_void_p, optional=True)
_proto("tm_context_reset", None, c_void_p, optional=True)
_proto("tm_context_size", c_int32, c_void_p, optional=True)
_proto("tm_wm_scheme_create", c_int, POINTER(c_void_p), POINTER(tm_wm_config), c_void_p, _E, optional=True)
_proto("tm_wm_scheme_free", None, c_void_p, optional=True)
_proto("tm_wm_scheme_stage", c_int, c_void_p, optional=True)
_proto("tm_wm_scheme_key_id", c_char_p, c_void_p, optional=True)
_proto("tm_wm_sampler", c_void_p, c_void_p, c_uint64, optional=True)
_proto("tm_sampling_params_default", None, POINTER(tm_sampling_params), optional=True)
_proto("tm_sampler_chain_from_params", c_void_p, POINTER(tm_sampling_params), optional=True)
_proto("tm_sampler_chain_build", c_void_p, POINTER(tm_sampling_params), c_void_p, c_void_p, optional=True)
_proto("tm_sampler_chain_free", None, c_void_p, optional=True)
_proto("tm_generate", c_int, c_void_p, c_void_p, c_void_p, c_char_p, POINTER(tm_generate_options),
       POINTER(tm_generation), _E, optional=True)
_proto("tm_generation_free", None, POINTER(tm_generation), optional=True)

# libc's free() for the arrays the library hands over (tm_tokenizer_encode).
libc = ctypes.CDLL(None)
libc.free.restype = None
libc.free.argtypes = [c_void_p]
