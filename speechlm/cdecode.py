"""The unit LM's decode loop compiled: :class:`NativeLM`, the ``"native"`` decoder.

:class:`speechlm.decode.PackedLM` cut a step to the operators the maths needs, but a batch-1
step of the bundled LM still costs ~150 torch operator calls of a few microseconds each, about
four times its matrix products. ``speechlm/csrc/lmdecode.c`` does the same step (PackedLM's
folded float32 weights: rotary folded into the QKV matrix, norm gains into the next matrix)
with no operator boundaries, and samples in the same loop, so one ``generate`` is one call.

The C file is compiled on first use with the system C compiler (``cc``, or ``$CC``) for this
CPU (``-march=native``) into a cache directory (``$SPEECHLM_CACHE``, default
``~/.cache/speechlm``), keyed by the source, the flags, the compiler and the CPU, and loaded with
ctypes: no Python headers, no build step at install (``make setup`` builds it once ahead). Where
no compiler works, or ``SPEECHLM_NATIVE=0``, :func:`available` is False and
:func:`speechlm.decode.default_weights` picks a torch decoder instead.

Sampling follows :func:`speechlm.generate.generate` (temperature, top-k, top-p, repetition
penalty, ``<eos>``), with its own random generator (xoshiro256+) seeded from the call's
``torch.Generator``: a seed reproduces a result on this decoder, but it draws other samples
than the torch decoders do from the same seed. ``no_repeat_ngram`` is left to the torch loop.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from speechlm.errors import SpeechLMError
from speechlm.lm import LMConfig

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "lmdecode.c"
ABI_VERSION = 7  # lmdecode.c's ABI_VERSION
CFLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros",
          "-shared", "-fPIC", "-pthread")
# tuned for this CPU, tried in order until one compiles (512-bit vectors halved the prefill on
# an AVX-512 Xeon; other compilers or CPUs may not know the flags)
ARCH_FLAGS = (("-march=native", "-mprefer-vector-width=512"), ("-march=native",), ())

# a step shares its work over threads only when each gets at least this many multiply-adds:
# below it the barriers between phases (five per layer) cost about what the split saves. The
# bundled 4 x 128 LM (0.93M per step) ran 1.7x faster on two threads than on one (AMD EPYC,
# 2 cores); benchmarks/bench_lm.py measures both.
MIN_MACS_PER_THREAD = 1_000_000

_f32p = ctypes.POINTER(ctypes.c_float)
_i64p = ctypes.POINTER(ctypes.c_int64)
_i32p = ctypes.POINTER(ctypes.c_int32)
_u8p = ctypes.POINTER(ctypes.c_uint8)
_i8p = ctypes.POINTER(ctypes.c_int8)
_vp = ctypes.c_void_p


class NativeUnavailable(SpeechLMError, RuntimeError):
    """The C decoder could not be built or loaded here (no compiler, or it failed); asked for
    by name (``--lm-weights native``) it is a one-line error, exit code 2."""


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$SPEECHLM_CACHE`` or ``~/.cache/speechlm``."""
    return Path(os.environ.get("SPEECHLM_CACHE") or Path.home() / ".cache" / "speechlm")


def _cpu_id() -> str:
    """The CPU's model and flags: a ``-march=native`` build is only valid on such a CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc) or shutil.which("gcc") or shutil.which("clang")


def build(force: bool = False) -> Path:
    """Compile ``lmdecode.c`` for this CPU into :func:`cache_dir` (once; atomic) and return the
    library's path.

    Raises:
        NativeUnavailable: no C compiler, or it failed (its first error line is in the message).
    """
    cc = _compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler (cc, gcc or clang) on PATH")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"{cc} --version failed: {e}") from e
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), repr((CFLAGS, ARCH_FLAGS)).encode(), cc.encode(),
                 "".join(version).encode(), _cpu_id().encode(), platform.machine().encode()):
        key.update(part)
    out = cache_dir() / f"lmdecode-{key.hexdigest()[:16]}.so"
    if out.exists() and not force:
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".lmdecode-", suffix=".so")
        os.close(fd)
    except OSError as e:
        raise NativeUnavailable(f"cannot write to {out.parent}: {e}") from e
    try:
        error = ""
        for arch in ARCH_FLAGS:
            r = subprocess.run([cc, *CFLAGS, *arch, "-o", tmp, str(SOURCE), "-lm"],
                               capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                break
            error = next((ln for ln in r.stderr.splitlines() if "error" in ln),
                         r.stderr.strip()[:200])
        else:
            raise NativeUnavailable(f"compiling {SOURCE.name} with {cc} failed: {error}; "
                                    "use --lm-weights int8 or fp32")
        os.replace(tmp, out)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"compiling {SOURCE.name} with {cc} failed: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("compiled the C decoder: %s", out)
    return out


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded C decoder (built on first use).

    Raises:
        NativeUnavailable: disabled (``SPEECHLM_NATIVE=0``), not buildable or not loadable.
    """
    if os.environ.get("SPEECHLM_NATIVE", "1") == "0":
        raise NativeUnavailable("disabled by SPEECHLM_NATIVE=0")
    path = build()
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise NativeUnavailable(f"cannot load {path}: {e}") from e
    if lib.slm_abi_version() != ABI_VERSION:
        raise NativeUnavailable(f"{path}: ABI {lib.slm_abi_version()}, expected {ABI_VERSION}")
    lib.slm_cache_len.restype = ctypes.c_int
    lib.slm_cache_len.argtypes = [ctypes.c_int]
    lib.slm_forward.restype = ctypes.c_int
    lib.slm_kv_bytes.restype = ctypes.c_int
    lib.slm_kv_bytes.argtypes = [ctypes.c_int]
    lib.slm_forward.argtypes = [_i32p, _f32p, _i8p, ctypes.c_float, _vp, _vp, ctypes.c_int,
                                ctypes.c_int, _i64p, ctypes.c_int, _f32p, ctypes.c_int]
    lib.slm_bare_matmuls.restype = None
    lib.slm_bare_matmuls.argtypes = [_i32p, _f32p, _i8p, ctypes.c_int, ctypes.c_int, _f32p,
                                     _f32p, ctypes.c_int]
    lib.slm_generate.restype = ctypes.c_int
    lib.slm_generate.argtypes = [
        _i32p, _f32p, _i8p, ctypes.c_float, _vp, _vp, ctypes.c_int, ctypes.c_int,  # net, N
        _i64p, ctypes.c_int, _i64p, ctypes.c_int, _f32p,  # prefix, history, allowed
        ctypes.c_int, ctypes.c_float, ctypes.c_int, ctypes.c_float, ctypes.c_float,
        ctypes.c_int, ctypes.c_int, ctypes.c_uint64,  # window, eos id, seed
        _i64p, _f32p, _i64p, _u8p, ctypes.c_int]  # outputs, threads
    return lib


@functools.cache
def available() -> bool:
    """Whether the C decoder builds and loads here (logs why not, once)."""
    try:
        library()
    except NativeUnavailable as e:
        log.info("the C decoder is unavailable (%s); decoding with torch", e)
        return False
    return True


def _ptr(t: torch.Tensor, kind):
    return ctypes.cast(t.data_ptr(), kind)


class NativeLM:
    """An LM for decoding with the C loop: the folded float32 weights of a
    :class:`speechlm.decode.PackedLM` (``"fp32"``; :func:`speechlm.decode.native_decoder`
    makes one from a :class:`~speechlm.lm.UnitLM`) in the C kernel's layout, kept in float32
    (``quantize=None``: the network's numbers) or as int8 with one scale per output channel
    (``quantize``: :func:`speechlm.decode.quantize_int8`, ``[out, in]`` -> (int8 ``[out, in]``,
    scales ``[out]``); a quarter of the bytes a step reads, converted to float in registers;
    activations stay float32).

    Answers the network's call for scoring (``native(idx) -> (logits [N, T, V], None)``) and
    :meth:`generate` for sampling, which :func:`speechlm.generate.generate` hands over to.

    Raises:
        NativeUnavailable: the C decoder is not available here.
    """

    def __init__(self, packed, quantize=None, threads: int | None = None):
        int8 = quantize is not None
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if packed.weights != "fp32":
            raise ValueError(f"NativeLM takes a float32 PackedLM, got {packed.weights!r}")
        self.lib = library()
        self.packed = packed  # what generate falls back on (no_repeat_ngram)
        self.weights = "native-int8" if int8 else "native"
        cfg: LMConfig = packed.cfg
        self.cfg = cfg
        C = cfg.n_embd
        if C % cfg.n_head or cfg.n_layer > 64:
            raise ValueError("the C decoder needs n_embd divisible by n_head and <= 64 layers")
        hd = C // cfg.n_head
        mats = [lin.w for layer in packed.layers
                for lin in (layer.qkv, layer.proj, layer.fc, layer.out)] + [packed.head.w]
        floats, q8 = [packed.embed], []
        for w in mats:  # [out, in], stored transposed: [in, out]
            if int8:
                q, scale = quantize(w)
                q8.append(q.t().contiguous().flatten())
                floats.append(scale)
            else:
                floats.append(w.t())
        floats += [packed.cos[:, 0, 0], packed.sin[:, 0, 0]]
        self.buf = torch.cat([p.float().contiguous().flatten() for p in floats])
        self.qbuf = torch.cat(q8) if int8 else torch.zeros(1, dtype=torch.int8)
        self.ffn = packed.layers[0].fc.w.shape[0]
        self.dims = torch.tensor([cfg.n_layer, cfg.n_head, hd, C, cfg.vocab_size,
                                  cfg.block_size, cfg.n_units, self.ffn, int(int8)],
                                 dtype=torch.int32)
        self.floor = float(packed.norm_floor)
        self.weight_bytes = sum(w.numel() * (1 if int8 else 4) + (4 * w.shape[0] if int8 else 0)
                                for w in mats)
        self.step_macs = sum(w.numel() for w in mats)  # multiply-adds of a batch-1 step
        # bytes per cached key or value: 2 (half floats) with int8 weights where the C build
        # has them, else 4 (float32: the network's numbers)
        self.kv_bytes = int(self.lib.slm_kv_bytes(int(int8)))
        self.threads = threads

    def num_threads(self, batch: int = 1) -> int:
        """The threads a call of ``batch`` samples runs on: ``threads`` if given, else torch's
        thread count where a step has work enough to share (:data:`MIN_MACS_PER_THREAD` per
        thread), else one."""
        if self.threads is not None:
            return self.threads
        cap = max(1, (self.step_macs * batch) // MIN_MACS_PER_THREAD)
        return int(max(1, min(torch.get_num_threads(), os.cpu_count() or 1, cap)))

    def _net(self) -> tuple:
        """The network arguments every kernel entry point starts with."""
        return _ptr(self.dims, _i32p), _ptr(self.buf, _f32p), _ptr(self.qbuf, _i8p)

    def parameters(self):
        yield self.buf

    def eval(self) -> NativeLM:
        return self

    def _cache(self, samples: int, maxlen: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values, uninitialised: the C code zeroes a tile of keys when it starts one and
        writes a position before any query reads it. Room for ``maxlen`` rounded up to the C
        code's tile of keys (``slm_cache_len``) per sample, layer and head, in float32 or (int8
        weights, where the C build has half floats: :attr:`kv_bytes` 2) IEEE half floats."""
        n = samples * self.cfg.n_layer * self.cfg.n_embd * self.lib.slm_cache_len(maxlen)
        dtype = torch.float16 if self.kv_bytes == 2 else torch.float32
        return torch.empty(n, dtype=dtype), torch.empty(n, dtype=dtype)

    def __call__(self, idx: torch.Tensor, targets=None, cache=None) -> tuple[torch.Tensor, None]:
        """Float32 logits of every position of ``idx`` ``[N, T]`` (scoring; no cache)."""
        if targets is not None or cache is not None:
            raise ValueError("NativeLM scores whole sequences: no targets, no cache")
        N, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds the context {self.cfg.block_size}")
        out = torch.empty(N, T, self.cfg.vocab_size)
        for n in range(N):
            tok = idx[n].to(torch.int64).contiguous()
            if tok.numel() and (tok.min() < 0 or tok.max() >= self.cfg.vocab_size):
                raise ValueError(f"token ids must lie in [0, {self.cfg.vocab_size})")
            k, v = self._cache(1, T)
            rc = self.lib.slm_forward(*self._net(), self.floor,
                                      _ptr(k, _vp), _ptr(v, _vp), T, 0, _ptr(tok, _i64p), T,
                                      _ptr(out[n], _f32p), self.num_threads(T))
            if rc:
                raise MemoryError(f"the C decoder failed ({rc})")
        return out, None

    def generate(self, prefix: torch.Tensor, history: torch.Tensor, allowed: torch.Tensor,
                 options, seed: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample after ``prefix`` ``[P]`` (<bos>, prompt, then-tokens) as
        :func:`speechlm.generate.generate` does (``options``: its ``SamplingOptions``);
        ``history``: the prompt's units (the repetition penalty's start), ``allowed`` ``[V]``:
        0 for what may be sampled, -inf elsewhere.

        Returns:
            ``Generation``'s fields: tokens ``[N, L]`` (-1 past the end), lengths ``[N]``,
            logprobs ``[N, L]``, ended ``[N]`` bool.
        """
        from speechlm.units import special_id

        N, L = options.num_samples, options.max_new_tokens
        prefix = prefix.to(torch.int64).contiguous()
        history = history.to(torch.int64).contiguous()
        allowed = allowed.float().contiguous()
        maxlen = prefix.numel() + L
        k, v = self._cache(N, maxlen)
        tokens = torch.empty(N, L, dtype=torch.int64)
        logprobs = torch.empty(N, L)
        lengths = torch.empty(N, dtype=torch.int64)
        ended = torch.empty(N, dtype=torch.uint8)
        eos = special_id("<eos>", self.cfg.n_units)
        rc = self.lib.slm_generate(
            *self._net(), self.floor, _ptr(k, _vp),
            _ptr(v, _vp), maxlen, N, _ptr(prefix, _i64p), prefix.numel(),
            _ptr(history, _i64p), history.numel(), _ptr(allowed, _f32p), L,
            float(options.temperature), int(options.top_k or 0),
            float(options.top_p if options.top_p is not None else 1.0),
            float(options.repetition_penalty), int(options.penalty_window),
            eos, seed & (2**64 - 1),
            _ptr(tokens, _i64p), _ptr(logprobs, _f32p), _ptr(lengths, _i64p),
            _ptr(ended, _u8p), self.num_threads(N))
        if rc:
            raise MemoryError(f"the C decoder failed ({rc})")
        return tokens, lengths, logprobs, ended.bool()

    def bare_matmul_seconds(self, batch: int = 1, steps: int = 200, repeats: int = 3,
                            threads: int | None = None) -> float:
        """The floor of one step of ``batch`` samples in this kernel: its matrix products
        alone (split over ``threads``, default :meth:`num_threads`, with the barrier each
        product needs), the best mean over ``repeats`` runs of ``steps`` steps, in seconds per
        step."""
        import time

        threads = threads or self.num_threads(batch)
        n = batch * max(5 * self.cfg.n_embd, self.ffn, self.cfg.vocab_size)
        x, y = torch.randn(n), torch.zeros(n)
        args = (*self._net(), batch)
        self.lib.slm_bare_matmuls(*args, 5, _ptr(x, _f32p), _ptr(y, _f32p), threads)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            self.lib.slm_bare_matmuls(*args, steps, _ptr(x, _f32p), _ptr(y, _f32p), threads)
            best = min(best, (time.perf_counter() - t) / steps)
        return best


__all__ = ["NativeLM", "NativeUnavailable", "available", "build", "cache_dir", "library"]
