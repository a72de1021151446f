"""tracemark for Python: watermark keys, watermarked generation on the local
inference engine, and model-free detection, over the installed C library
(libtracemark) through ctypes, with the standard library only.

    import tracemark
    key = tracemark.Key.load("wm.key")
    with tracemark.Detector(key, "kgw-selfhash.yaml", "tok512.bin") as detector:
        verdict = detector.detect(text)
        print(verdict.detected, verdict.p_value)

Every C object is owned by one Python object and freed by its close(), at
the end of a ``with`` block, or by the garbage collector, whichever comes
first. Library failures raise a subclass of :class:`Error` carrying the
library's own message. The GIL is released while the library generates or
detects (ctypes does so around each call), so ``detect_many`` runs on
several cores. The key's secret never enters Python."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import os
import secrets
import threading
from ctypes import byref, c_char_p, c_int32, c_size_t, c_void_p
from typing import Any, Dict, Iterable, List, Optional, Sequence, TypeVar, Union

from . import _lib

__all__ = ["Error", "FileError", "FormatError", "UnsupportedError", "OutOfMemoryError", "ArgumentError",
           "KeyPermissionError", "NotFoundError", "LimitError", "Key", "WatermarkConfig", "Tokenizer", "Model",
           "Generation", "Detector", "Verdict", "__version__"]
__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]

# ---- errors -------------------------------------------------------------------


class Error(Exception):
    """A failure reported by the library: ``message`` is the library's
    message, ``code`` its tm_status value (TM_ERR_IO = 1 ... TM_ERR_LIMIT = 8;
    0 for the binding's own checks) and ``status`` the library's name for
    it (tm_status_name: "not found", "malformed input", ...)."""

    def __init__(self, message: str, status: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class FileError(Error):
    """TM_ERR_IO: a file could not be opened, read or written."""


class FormatError(Error):
    """TM_ERR_FORMAT: the input is malformed (a key, scheme file, model, text)."""


class UnsupportedError(Error):
    """TM_ERR_UNSUPPORTED: well-formed, but a feature the library does not handle."""


class OutOfMemoryError(Error):
    """TM_ERR_NOMEM: allocation failed or a size overflowed."""


class ArgumentError(Error, ValueError):
    """TM_ERR_ARGUMENT: a bad value was passed (also raised by the binding's own checks)."""


class KeyPermissionError(Error):
    """TM_ERR_PERMISSION: e.g. a key file that group or others can read."""


class NotFoundError(Error):
    """TM_ERR_NOT_FOUND: a file, key or tensor that is not there."""


class LimitError(Error):
    """TM_ERR_LIMIT: a configured limit was reached (the context is full)."""


_ERRORS = {1: FileError, 2: FormatError, 3: UnsupportedError, 4: OutOfMemoryError, 5: ArgumentError,
           6: KeyPermissionError, 7: NotFoundError, 8: LimitError}


def _raise(status: int, err: _lib.tm_error) -> None:
    message = err.message.decode("utf-8", "replace") or "unknown error"
    name = (_lib.lib.tm_status_name(status) or b"").decode()
    raise _ERRORS.get(status, Error)(message, name, status)


def _check(status: int, err: _lib.tm_error) -> None:
    if status != 0:
        _raise(status, err)


def _path(path: PathLike) -> bytes:
    return os.fsencode(os.fspath(path))


def _text(text: Union[str, bytes]) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


_T = TypeVar("_T", bound="_Owner")


class _Owner:
    """One C object behind a pointer, released once by close(), ``with`` or GC.
    An object that a C detector borrows (a key, a tokenizer) counts its
    borrowers: closing it then only marks it closed, and the C object goes
    when the last borrower is released, never under a detector's feet."""

    _handle: Optional[int] = None
    _closed = False
    _borrowers = 0
    _owner_lock = threading.Lock()  # guards the borrow counts (rarely taken)

    def _release(self, handle: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Free the C object now, or once nothing borrows it; using this
        object afterwards raises ArgumentError."""
        with _Owner._owner_lock:
            self._closed = True
            if self._borrowers:
                return
            handle, self._handle = self._handle, None
        if handle:
            self._release(handle)

    def _borrow(self) -> int:
        with _Owner._owner_lock:
            handle = self._live()
            self._borrowers += 1
            return handle

    def _give_back(self) -> None:
        with _Owner._owner_lock:
            self._borrowers -= 1
            if self._borrowers or not self._closed:
                return
            handle, self._handle = self._handle, None
        if handle:
            self._release(handle)

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to report to
            pass

    def _live(self) -> int:
        if not self._handle or self._closed:
            raise ArgumentError(f"this {type(self).__name__} is closed")
        return self._handle


# ---- keys -----------------------------------------------------------------------


class Key(_Owner):
    """A watermark key. The 256-bit secret stays inside the library; Python
    only sees its ``key_id`` (a fingerprint safe to store with outputs)."""

    def __init__(self, handle: int) -> None:
        self._handle = handle
        self.key_id: str = _lib.lib.tm_wm_key_id(handle).decode()

    @classmethod
    def generate(cls, path: PathLike) -> "Key":
        """Make a new key from OpenSSL's RNG and write it to ``path`` (mode
        0600, atomically); refuses to overwrite an existing file."""
        err, handle = _lib.tm_error(), c_void_p()
        _check(_lib.lib.tm_wm_key_generate(byref(handle), byref(err)), err)
        key = cls(handle.value)
        status = _lib.lib.tm_wm_key_write(handle, _path(path), byref(err))
        if status:
            key.close()
            _raise(status, err)
        return key

    @classmethod
    def load(cls, path: PathLike) -> "Key":
        """Read a key file (refused when group or others can read it)."""
        err, handle = _lib.tm_error(), c_void_p()
        _check(_lib.lib.tm_wm_key_read(byref(handle), _path(path), byref(err)), err)
        return cls(handle.value)

    def _release(self, handle: int) -> None:
        _lib.lib.tm_wm_key_free(handle)

    def __repr__(self) -> str:
        return f"tracemark.Key(key_id={self.key_id!r})"


# ---- scheme settings ----------------------------------------------------------


class WatermarkConfig:
    """A scheme's settings, as in configs/schemes/*.yaml."""

    def __init__(self, config: _lib.tm_wm_config) -> None:
        self._config = config

    @classmethod
    def load(cls, path: PathLike) -> "WatermarkConfig":
        """Load a YAML scheme file; errors name the file, line and field."""
        err, config = _lib.tm_error(), _lib.tm_wm_config()
        _check(_lib.lib.tm_wm_config_load(byref(config), _path(path), byref(err)), err)
        return cls(config)

    @classmethod
    def of(cls, value: Union["WatermarkConfig", PathLike]) -> "WatermarkConfig":
        return value if isinstance(value, WatermarkConfig) else cls.load(value)

    @property
    def scheme(self) -> str:
        """The scheme's name: "kgw", "unigram", "gumbel", "synthid", "dipmark" or "exp-edit"."""
        return _lib.lib.tm_wm_kind_name(self._config.kind).decode()

    @property
    def parameters(self) -> str:
        """The canonical one-line description, e.g. "kgw;seeding=selfhash;h=4;gamma=0.25;delta=2"."""
        buffer = ctypes.create_string_buffer(256)
        _lib.lib.tm_wm_config_describe(byref(self._config), buffer, len(buffer))
        return buffer.value.decode()

    def __repr__(self) -> str:
        return f"tracemark.WatermarkConfig({self.parameters!r})"


# ---- tokenizer ------------------------------------------------------------------


class Tokenizer(_Owner):
    """A tokenizer: a model GGUF, a vocab-only GGUF, or a llama2.c tokenizer.bin."""

    def __init__(self, path: PathLike) -> None:
        err, handle = _lib.tm_error(), c_void_p()
        _check(_lib.lib.tm_tokenizer_load(byref(handle), _path(path), byref(err)), err)
        self._handle = handle.value
        self.path = os.fspath(path)

    @classmethod
    def _adopt(cls, handle: int, path: str) -> "Tokenizer":
        tokenizer = cls.__new__(cls)
        tokenizer._handle, tokenizer.path = handle, path
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return int(_lib.lib.tm_tokenizer_vocab_size(self._live()))

    def encode(self, text: Union[str, bytes], add_bos: bool = False) -> List[int]:
        """Token ids of UTF-8 text (no special-token parsing)."""
        data, err = _text(text), _lib.tm_error()
        ids, n = ctypes.POINTER(c_int32)(), c_size_t()
        _check(_lib.lib.tm_tokenizer_encode(self._live(), data, len(data), add_bos, byref(ids), byref(n), byref(err)),
               err)
        try:
            return ids[:n.value]
        finally:
            _lib.libc.free(ctypes.cast(ids, c_void_p))

    def _release(self, handle: int) -> None:
        _lib.lib.tm_tokenizer_free(handle)


# ---- generation ---------------------------------------------------------------


@dataclasses.dataclass
class Generation:
    """What Model.generate returns. ``record`` holds the same fields as
    ``tracemark generate --json`` (model, prompt, seed, prompt_ids, ids, text,
    stop_reason, timing, sampling, and watermark when one was used)."""

    text: str
    ids: List[int]
    prompt_ids: List[int]
    stop_reason: str
    seed: int
    watermark: Optional[Dict[str, str]]  # {"scheme", "parameters", "key_id"}; never the key
    record: Dict[str, Any]


class Model(_Owner):
    """A Llama-family model (GGUF or llama2.c checkpoint) with an inference
    context. ``path`` None resolves the default model as the CLI does
    ($TRACEMARK_MODEL, ./models/, ../shared/models/); ``tokenizer`` is needed
    for llama2.c checkpoints without a tokenizer.bin beside them. One
    generation runs at a time per Model (calls from threads wait their turn)."""

    def __init__(self, path: Optional[PathLike] = None, tokenizer: Optional[PathLike] = None, *, n_ctx: int = 0,
                 threads: int = 0) -> None:
        if not _lib.HAS_GENERATOR:
            raise UnsupportedError("the loaded library is libtracemark-detect, which has no forward pass; "
                                   "install libtracemark to generate")
        lib, err = _lib.lib, _lib.tm_error()
        model_path, tokenizer_path = ctypes.create_string_buffer(4096), ctypes.create_string_buffer(4096)
        _check(lib.tm_model_resolve(_path(path) if path is not None else None, model_path, 4096, tokenizer_path,
                                    4096, byref(err)), err)
        model, tok, context = c_void_p(), c_void_p(), c_void_p()
        try:
            _check(lib.tm_model_load(byref(model), model_path.value, byref(err)), err)
            tok_path = _path(tokenizer) if tokenizer is not None else (tokenizer_path.value or None)
            _check(lib.tm_model_tokenizer(byref(tok), model, tok_path, byref(err)), err)
            _check(lib.tm_context_create(byref(context), model, n_ctx, threads, byref(err)), err)
        except Error:
            lib.tm_context_free(context)
            lib.tm_tokenizer_free(tok)
            lib.tm_model_free(model)
            raise
        self._handle = model.value
        self._context = context.value
        self.path = model_path.value.decode()
        self.tokenizer = Tokenizer._adopt(tok.value, (tok_path or model_path.value).decode())
        self._lock = threading.Lock()

    def close(self) -> None:
        """Free the model and its context now (waits for a generation under
        way). The tokenizer is a separate object (it copies what it needs from
        the model): it goes when nothing refers to it, or with
        ``model.tokenizer.close()``."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return super().close()
        with lock:
            super().close()

    def _release(self, handle: int) -> None:
        _lib.lib.tm_context_free(self._context)
        _lib.lib.tm_model_free(handle)

    def generate(self, prompt: str, *, watermark: Union[WatermarkConfig, PathLike, None] = None,
                 key: Optional[Key] = None, seed: Optional[int] = None, max_tokens: int = 256,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                 stop: Sequence[str] = ()) -> Generation:
        """Generate a continuation of ``prompt``, watermarked when ``watermark``
        (a scheme file or WatermarkConfig) and ``key`` are given. ``seed``
        None draws a fresh one (recorded in the result); the same seed, key,
        model and prompt repeat the same tokens, as with the CLI."""
        lib, err = _lib.lib, _lib.tm_error()
        if (watermark is None) != (key is None):
            raise ArgumentError("watermark and key go together")
        if seed is None:
            seed = secrets.randbits(53)
        if not 0 <= seed < 2 ** 63:
            raise ArgumentError("seed must be in [0, 2^63)")
        if max_tokens < 0:
            raise ArgumentError("max_tokens must not be negative")
        if "\0" in prompt or any("\0" in s for s in stop):
            raise ArgumentError("the prompt and stop strings must not contain NUL characters")
        params = _lib.tm_sampling_params()
        lib.tm_sampling_params_default(byref(params))
        params.temperature, params.top_k, params.top_p, params.min_p = temperature, top_k, top_p, min_p
        params.seed = seed
        config = WatermarkConfig.of(watermark) if watermark is not None else None
        scheme, chain = c_void_p(), None
        stops = [_text(s) for s in stop]
        stop_array = (c_char_p * max(1, len(stops)))(*stops)
        options = _lib.tm_generate_options(max_tokens=max_tokens, stop_strings=stop_array, n_stop_strings=len(stops))
        result = _lib.tm_generation()
        with self._lock:
            self._live()  # refuses a closed model
            try:
                if config is not None:
                    key_handle = key._borrow()  # the scheme copies what it needs from the key
                    try:
                        _check(lib.tm_wm_scheme_create(byref(scheme), byref(config._config), key_handle, byref(err)),
                               err)
                    finally:
                        key._give_back()
                    biases = lib.tm_wm_scheme_stage(scheme) == 0  # TM_WM_STAGE_LOGITS
                    if not biases and temperature <= 0:
                        raise ArgumentError(f"{config.scheme} selects among sampled tokens and cannot mark greedy "
                                            "output: use temperature > 0, or a KGW/Unigram scheme")
                    stage = lib.tm_wm_sampler(scheme, seed)
                    chain = lib.tm_sampler_chain_build(byref(params), stage if biases else None,
                                                       None if biases else stage) if stage else None
                else:
                    chain = lib.tm_sampler_chain_from_params(byref(params))
                if not chain:
                    raise OutOfMemoryError("out of memory building the sampler chain (or invalid sampling values)")
                lib.tm_context_reset(self._context)
                _check(lib.tm_generate(self._context, self.tokenizer._live(), chain, _text(prompt), byref(options),
                                       byref(result), byref(err)), err)
                text = ctypes.string_at(result.text, result.text_size).decode("utf-8", "replace")
                ids, prompt_ids = result.ids[:result.n_ids], result.prompt_ids[:result.n_prompt]
                reason = result.stop_reason.decode()
                marked = None
                if config is not None:
                    marked = {"scheme": config.scheme, "parameters": config.parameters,
                              "key_id": lib.tm_wm_scheme_key_id(scheme).decode()}
                decode_rate = (len(ids) - 1) / result.decode_seconds if result.decode_seconds > 0 and len(ids) > 1 else 0
                record: Dict[str, Any] = {
                    "model": self.path, "prompt": prompt, "seed": seed, "prompt_ids": prompt_ids, "ids": ids,
                    "text": text, "stop_reason": reason,
                    "timing": {"prompt_seconds": result.prompt_seconds, "decode_seconds": result.decode_seconds,
                               "prompt_tokens_per_second": len(prompt_ids) / result.prompt_seconds
                               if result.prompt_seconds > 0 else 0, "decode_tokens_per_second": decode_rate}}
                if marked:
                    record["watermark"] = marked
                # Floats as the CLI writes them: 0.8, not 0.800000011920929.
                short = getattr(lib, "tm_float_shortest", None) or (lambda x: x)
                record["sampling"] = {"temperature": short(params.temperature), "top_k": params.top_k,
                                      "top_p": short(params.top_p), "min_p": short(params.min_p),
                                      "repeat_penalty": short(params.repeat_penalty),
                                      "frequency_penalty": short(params.frequency_penalty),
                                      "presence_penalty": short(params.presence_penalty),
                                      "penalty_window": params.penalty_window}
                return Generation(text, ids, prompt_ids, reason, seed, marked, record)
            finally:
                lib.tm_generation_free(byref(result))
                if chain:
                    lib.tm_sampler_chain_free(chain)
                lib.tm_wm_scheme_free(scheme)


# ---- detection ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One detection, with the fields of ``tracemark detect --json`` (same
    names, same values: the library encodes both, tm_detection_json).
    to_dict() gives exactly that object; fields the detector leaves out for
    a scheme are None here."""

    detected: bool
    scheme: str
    parameters: str
    key_id: str
    normalization: str
    tokens: Dict[str, int]  # total, scored, ignored_context, ignored_repeated, prompt
    statistic_name: str
    statistic: Optional[float]
    expected: Optional[float]
    z: Optional[float]
    p_value: float
    log_p_value: Optional[float]
    p_normal_approximation: Optional[float]
    p_decision: float
    fpr: float
    p_resolution: Optional[float] = None  # permutation tests (EXP/ITS-edit)
    p_at_floor: Optional[bool] = None
    permutations_done: Optional[int] = None
    p_sequential: Optional[bool] = None
    weighted_mean_g: Optional[float] = None  # SynthID
    weighted_p_value: Optional[float] = None
    keys: Optional[Dict[str, Any]] = None  # several keys: tested, best_index, family_p_value
    window: Optional[Dict[str, Any]] = None  # detect(text, window=True)
    _fields_json: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        """The verdict as ``tracemark detect --json`` prints it."""
        return json.loads(json.dumps(self._fields_json))

    @classmethod
    def _from_c(cls, d: _lib.tm_detection, fpr: float) -> "Verdict":
        text = _lib.lib.tm_detection_json_text(ctypes.byref(d), fpr)
        if not text:
            raise OutOfMemoryError("out of memory encoding a verdict")
        try:
            return cls._from_fields(json.loads(ctypes.string_at(text).decode("utf-8")))
        finally:
            _lib.lib.tm_detection_json_free(text)

    @classmethod
    def _from_fields(cls, fields: Dict[str, Any]) -> "Verdict":
        # Filled in directly rather than through __init__: detect_many builds
        # tens of thousands of these, and the keyword call costs more than
        # the detection of a short text.
        # Every key the library writes is one of the fields above.
        verdict = cls.__new__(cls)
        state = _VERDICT_DEFAULTS.copy()
        state.update(fields)
        state["_fields_json"] = fields
        object.__setattr__(verdict, "__dict__", state)  # frozen: set once, here
        return verdict


_VERDICT_DEFAULTS = {f.name: None for f in dataclasses.fields(Verdict) if f.name != "_fields_json"}


class Detector(_Owner):
    """A model-free detector for one scheme and one or more keys (with several
    keys the best is reported, its p-value corrected for their number).

    ``scheme_config`` is a scheme file or a WatermarkConfig; ``tokenizer`` a
    path, a Tokenizer or a Model (its tokenizer). The keyword options are
    those of ``tracemark detect``. Thread-safe: detect() may be called from
    several threads at once."""

    def __init__(self, key_or_keys: Union[Key, Iterable[Key]], scheme_config: Union[WatermarkConfig, PathLike],
                 tokenizer: Union[Tokenizer, Model, PathLike], *, fpr: float = 1e-3, min_window: int = 25,
                 keep_repeated: bool = False, nfc: bool = True, homoglyphs: bool = True, whitespace: bool = True,
                 permutations: int = 0, full_permutations: bool = False) -> None:
        keys = [key_or_keys] if isinstance(key_or_keys, Key) else list(key_or_keys)
        if not keys or not all(isinstance(k, Key) for k in keys):
            raise ArgumentError("Detector needs a Key or a non-empty list of Keys")
        self._config = WatermarkConfig.of(scheme_config)
        if isinstance(tokenizer, Model):
            tokenizer = tokenizer.tokenizer
        tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
        # The C detector borrows the keys and the tokenizer: they stay alive
        # (even if closed meanwhile) until this detector is released.
        self._borrowed: List[_Owner] = []
        try:
            for owner in [*keys, tokenizer]:
                owner._borrow()
                self._borrowed.append(owner)
        except Error:
            self._return_borrowed()
            raise
        self._keys, self._tokenizer = keys, tokenizer
        options = _lib.tm_detect_options()
        _lib.lib.tm_detect_options_default(byref(options))
        options.fpr, options.min_window, options.ignore_repeated = fpr, min_window, not keep_repeated
        options.normalize.nfc, options.normalize.fold_homoglyphs = nfc, homoglyphs
        options.normalize.normalize_whitespace, options.permutations = whitespace, permutations
        options.sequential = not full_permutations
        self._options = options
        self.fpr = fpr
        self._windowed: Optional[int] = None  # made on the first detect(window=True)
        self._windowed_lock = threading.Lock()
        try:
            self._handle = self._create(windows=False)
        except Error:
            self._return_borrowed()
            raise

    def _return_borrowed(self) -> None:
        borrowed, self._borrowed = self._borrowed, []
        for owner in borrowed:
            owner._give_back()

    def _create(self, windows: bool) -> int:
        options = _lib.tm_detect_options.from_buffer_copy(self._options)
        options.windows = windows
        # Borrowed handles: valid while this detector lives, even if closed.
        handles = (c_void_p * len(self._keys))(*[k._handle for k in self._keys])
        err, handle = _lib.tm_error(), c_void_p()
        _check(_lib.lib.tm_detector_create(byref(handle), self._tokenizer._handle, byref(self._config._config),
                                           handles, len(self._keys), byref(options), byref(err)), err)
        return handle.value

    def _release(self, handle: int) -> None:
        _lib.lib.tm_detector_free(handle)
        windowed, self._windowed = self._windowed, None
        if windowed:
            _lib.lib.tm_detector_free(windowed)
        self._return_borrowed()

    def _detector(self, window: bool) -> int:
        plain = self._live()
        if not window:
            return plain
        with self._windowed_lock:
            if self._windowed is None:
                self._windowed = self._create(windows=True)
            return self._windowed

    def detect(self, text: Union[str, bytes], window: bool = False, prompt: Optional[str] = None) -> Verdict:
        """Normalise, tokenize and score ``text`` (``prompt``, when given, is
        context only); ``window`` also searches the best window (text pasted
        into other text)."""
        if prompt is not None and "\0" in prompt:
            raise ArgumentError("the prompt must not contain NUL characters")
        detector, data = self._detector(window), _text(text)
        out, err = _lib.tm_detection(), _lib.tm_error()
        _check(_lib.lib.tm_detect_text(detector, data, len(data), _text(prompt) if prompt is not None else None,
                                       byref(out), byref(err)), err)
        return Verdict._from_c(out, self.fpr)

    def detect_many(self, texts: Sequence[Union[str, bytes]], threads: Optional[int] = None, window: bool = False,
                    errors: str = "raise",
                    prompts: Optional[Sequence[Optional[str]]] = None) -> List[Union[Verdict, Error]]:
        """detect() over many texts on ``threads`` threads (default: all
        cores), results in input order; ``prompts``, when given, holds each
        text's prompt (or None). ``errors="raise"`` raises the first failure;
        ``errors="return"`` puts the Error in its text's place."""
        if errors not in ("raise", "return"):
            raise ArgumentError('errors must be "raise" or "return"')
        texts = list(texts)
        if prompts is not None and len(prompts) != len(texts):
            raise ArgumentError("prompts must hold one entry per text")
        threads = threads or os.cpu_count() or 1
        if threads < 1:
            raise ArgumentError("threads must be at least 1")
        data = [_text(t) for t in texts]
        n = len(data)
        text_array, size_array = (c_char_p * n)(*data), (c_size_t * n)(*map(len, data))
        prompt_array = None
        if prompts is not None:
            prompt_array = (c_char_p * n)(*(None if p is None else _text(p) for p in prompts))
        batch, err = c_void_p(), _lib.tm_error()
        lib = _lib.lib
        _check(lib.tm_detect_batch_start(byref(batch), self._detector(window), n, text_array, size_array,
                                         prompt_array, self.fpr, threads, byref(err)), err)
        # The C threads go on detecting while Python decodes the verdicts
        # before them, a run at a time: decoding costs about half as much as
        # detecting a short text, and would otherwise add to it.
        run = max(256, -(-n // 16))
        results: List[Union[Verdict, Error]] = []
        try:
            for _ in range(0, n, run):
                out = c_void_p()
                _check(lib.tm_detect_batch_next(batch, run, byref(out), byref(err)), err)
                try:
                    encoded = json.loads(ctypes.string_at(out))
                finally:
                    lib.tm_detection_json_free(out)
                for fields in encoded:
                    if "error" in fields:
                        failure = _ERRORS.get(fields["code"], Error)(fields["error"], fields["status"], fields["code"])
                        if errors == "raise":
                            raise failure
                        results.append(failure)
                    else:
                        results.append(Verdict._from_fields(fields))
        finally:
            lib.tm_detect_batch_free(batch)  # the arrays above stay alive until here
        return results

    @property
    def key_ids(self) -> List[str]:
        return [k.key_id for k in self._keys]
