"""Fuzzing the input boundaries (issue 17) with hypothesis: the units-record parser, the
``--prompt-units`` reader, every numeric flag, the waveform forms of the API and the resampler.

Each property says what "fully correct" means for its input: either the value is accepted and
satisfies the documented bounds, or it is refused with the documented error type and a one-line
message; no other exception, ever. Derandomized, so CI sees the same cases every run (about
10 s on 2 cores). ``test_zz_fuzz_summary`` prints the count of cases tried and fully correct.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from speechlm.errors import DataError, SpeechLMError  # noqa: E402
from speechlm.units import from_record, parse_ids, read_units_json, to_record  # noqa: E402

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TRIED: Counter = Counter()
CORRECT: Counter = Counter()


def _count(name: str):
    TRIED[name] += 1

    class _Ok:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, *_):
            if exc_type is None:
                CORRECT[name] += 1
            return False

    return _Ok()


# ----------------------------------------------------------------------- units records

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)), max_leaves=12)


@st.composite
def records(draw):
    """Valid records, then a few fields replaced, dropped or added at random."""
    n_units = draw(st.integers(1, 200))
    n = draw(st.integers(0, 20))
    ids = draw(st.lists(st.integers(0, n_units - 1), min_size=n, max_size=n))
    dedup = draw(st.booleans())
    rec = {"format": "speechlm.units", "version": 1, "name": draw(st.text(max_size=5)),
           "unit_space": "mfcc-k-x", "n_units": n_units,
           "frame_rate": draw(st.floats(0.5, 1000.0)), "dedup": dedup, "ids": ids,
           "durations": draw(st.lists(st.integers(1, 500), min_size=n, max_size=n))
           if dedup else None}
    keys = sorted(rec)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "id", "duration"]))
        k = draw(st.sampled_from(keys))
        if action == "replace":
            rec[k] = draw(json_values)
        elif action == "drop":
            rec.pop(k, None)
        elif action == "add":
            rec[draw(st.text(max_size=6))] = draw(json_values)
        elif action == "id" and isinstance(rec.get("ids"), list) and rec["ids"]:
            rec["ids"][draw(st.integers(0, len(rec["ids"]) - 1))] = draw(json_values)
        elif action == "duration" and isinstance(rec.get("durations"), list) \
                and rec["durations"]:
            rec["durations"][draw(st.integers(0, len(rec["durations"]) - 1))] = draw(json_values)
    return rec


def _valid(rec) -> bool:
    """The schema, written independently of the parser (the oracle)."""
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    if not isinstance(rec, dict) or rec.get("format") != "speechlm.units":
        return False
    v = rec.get("version", 0)
    if not is_int(v) or not 0 <= v <= 1:
        return False
    if not all(k in rec for k in ("unit_space", "n_units", "frame_rate", "ids")):
        return False
    if rec.get("name") is not None and not isinstance(rec["name"], str):
        return False
    if not isinstance(rec["unit_space"], str) or not rec["unit_space"]:
        return False
    n = rec["n_units"]
    if not is_int(n) or not 1 <= n <= 1 << 20:
        return False
    fr = rec["frame_rate"]
    if isinstance(fr, bool) or not isinstance(fr, (int, float)) or not math.isfinite(fr) \
            or not 0 < fr <= 1000:
        return False
    ids = rec["ids"]
    if not isinstance(ids, list) or not all(is_int(i) and 0 <= i < n for i in ids):
        return False
    dur = rec.get("durations")
    dedup = rec.get("dedup", dur is not None)
    if not isinstance(dedup, bool) or dedup != (dur is not None):
        return False
    if dur is not None and (not isinstance(dur, list) or len(dur) != len(ids) or not all(
            is_int(d) and 1 <= d < 2**31 for d in dur)):
        return False
    return True


@settings(FUZZ, max_examples=1500)
@given(records())
def test_units_record_parser(rec):
    with _count("units record"):
        ok = _valid(rec)
        try:
            u = from_record(rec)
        except DataError as err:
            assert not ok, f"valid record refused: {err}"
            assert "\n" not in str(err)
        else:
            assert ok, f"invalid record accepted: {rec}"
            assert u.ids.dim() == 1 and u.ids.dtype == torch.long
            back = from_record(json.loads(json.dumps(to_record(u, rec.get("name")))))
            assert torch.equal(back.ids, u.ids) and back.frame_rate == u.frame_rate
            assert (back.durations is None) == (u.durations is None)
            assert u.durations is None or torch.equal(back.durations, u.durations)


@settings(FUZZ, max_examples=200)
@given(st.lists(st.one_of(st.text(max_size=40), records().map(json.dumps),
                          json_values.map(json.dumps)), max_size=4))
def test_units_file_reader(tmp_path_factory, lines):
    with _count("units file"):
        p = tmp_path_factory.mktemp("u", numbered=True) / "u.jsonl"
        p.write_text("\n".join(lines), encoding="utf-8")
        try:
            out = read_units_json(p)
        except DataError as err:
            assert str(err).startswith(str(p)) and "\n" not in str(err)
        else:
            assert all(isinstance(n, (str, type(None))) for n, _ in out)


@settings(FUZZ, max_examples=500)
@given(st.text(max_size=60))
def test_parse_ids(text):
    with _count("parse_ids"):
        try:
            ids = parse_ids(text)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert all(isinstance(i, int) and abs(i) < 10**12 for i in ids)


# ----------------------------------------------------------------------- --prompt-units


class _FakeLM:
    class model:  # noqa: N801 - stands in for the LM's network
        class cfg:  # noqa: N801
            unit_space, dedup, n_units = "x", True, 100


@settings(FUZZ, max_examples=500)
@given(st.one_of(st.text(max_size=300), st.lists(st.integers(0, 99), max_size=120).map(
    lambda xs: " ".join(map(str, xs)))))
def test_prompt_units_reader(spec):
    from speechlm.cli.generate import read_prompt

    with _count("--prompt-units"):
        if spec == "-":
            return
        try:
            ids = read_prompt(spec, _FakeLM)
        except SpeechLMError as err:
            assert "\n" not in str(err)
        else:
            assert isinstance(ids, list)


# ----------------------------------------------------------------------- numeric flags


def _parser():
    from speechlm.cli import build_parser

    return build_parser()


PARSER = None
FLAGS = {  # flag: (command prefix, predicate the parsed value must satisfy)
    "--seconds": (["continue", "p.wav"], lambda v: math.isfinite(v) and 0 < v <= 600),
    "--temperature": (["continue", "p.wav"], lambda v: math.isfinite(v) and 0 <= v <= 100),
    "--top-p": (["continue", "p.wav"], lambda v: math.isfinite(v) and 0 < v <= 1),
    "--top-k": (["continue", "p.wav"], lambda v: isinstance(v, int) and v >= 1),
    "--repetition-penalty": (["continue", "p.wav"], lambda v: math.isfinite(v) and 0 < v <= 100),
    "--num-samples": (["continue", "p.wav"], lambda v: isinstance(v, int) and 1 <= v <= 1000),
    "--seed": (["continue", "p.wav"], lambda v: -2**63 <= v < 2**63),
    "--max-units": (["generate-units", "--prompt-units", "1"],
                    lambda v: isinstance(v, int) and v >= 1),
    "--no-repeat-ngram": (["generate-units", "--prompt-units", "1"],
                          lambda v: v == 0 or 2 <= v <= 64),
}
DEST = {"--seconds": "seconds", "--temperature": "temperature", "--top-p": "top_p",
        "--top-k": "top_k", "--repetition-penalty": "repetition_penalty",
        "--num-samples": "num_samples", "--seed": "seed", "--max-units": "max_units",
        "--no-repeat-ngram": "no_repeat_ngram"}
numberish = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-2**80, 2**80).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-0", "1", "0.0", "1e-300", "", " ",
                     "0x10", "1_000", "١٢", "1.5", "--", "NaN", "Infinity"]),
    st.text(max_size=8))


@settings(FUZZ, max_examples=1000)
@given(st.sampled_from(sorted(FLAGS)), numberish)
def test_numeric_flags(capsys, flag, value):
    global PARSER
    PARSER = PARSER or _parser()
    with _count("numeric flags"):
        prefix, ok = FLAGS[flag]
        try:
            args = PARSER.parse_args([*prefix, f"{flag}={value}"])
        except SystemExit as e:
            err = capsys.readouterr().err
            assert e.code == 2 and flag in err and len(err.strip().splitlines()) == 1, err
        else:
            v = getattr(args, DEST[flag])
            assert ok(v), (flag, value, v)


# ----------------------------------------------------------------------- waveforms (the API)

dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32, np.int8,
                          np.uint8, np.int64, np.bool_, np.complex64])
shapes = st.one_of(st.tuples(st.integers(0, 3000)),
                   st.tuples(st.integers(0, 4), st.integers(0, 3000)),
                   st.tuples(st.integers(0, 3000), st.integers(0, 4)),
                   st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 50)))


@settings(FUZZ, max_examples=400)
@given(dtypes, shapes, st.booleans(), st.booleans())
def test_waveform_forms(dt, shape, as_tensor, poison):
    from speechlm.audio import FRAME_SIZE
    from speechlm.errors import AudioError
    from speechlm.pipeline import _as_wave

    with _count("API waveforms"):
        rng = np.random.default_rng(0)
        x = rng.normal(0, 0.3, shape)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            x = rng.integers(info.min, info.max, shape, endpoint=True)
        x = x.astype(dt)
        if poison and x.size and np.issubdtype(dt, np.floating):
            x.flat[0] = np.nan
        arg = torch.from_numpy(x) if as_tensor and dt not in (np.uint16,) else x
        try:
            w = _as_wave(arg, "the prompt")
        except AudioError as err:  # an AudioError is a ValueError
            assert isinstance(err, ValueError) and "\n" not in str(err)
        else:
            assert w.dim() == 1 and w.dtype == torch.float32 and w.numel() >= FRAME_SIZE
            assert torch.isfinite(w).all() and float(w.abs().max()) <= 1.0 + 1e-6 or \
                np.issubdtype(dt, np.floating)
            assert dt not in (np.bool_, np.complex64, np.int64)
            assert len(shape) == 1 or min(shape) <= 2


# ----------------------------------------------------------------------- the resampler


@settings(FUZZ, max_examples=200)
@given(st.integers(4000, 96000), st.integers(1, 4000))
def test_resampler_any_rate(orig, n):
    from speechlm.audio import resample

    with _count("resample"):
        x = torch.from_numpy(np.random.default_rng(n).normal(0, 0.3, n).astype(np.float32))
        y = resample(x, orig, 16000)
        assert y.shape == (math.ceil(n * 16000 / orig),) and torch.isfinite(y).all()
        assert float(y.abs().max()) < 4.0


def test_zz_fuzz_summary(capsys):
    tried, correct = sum(TRIED.values()), sum(CORRECT.values())
    with capsys.disabled():
        print(f"\nfuzz: {tried} cases tried, {correct} fully correct "
              + ", ".join(f"{k} {CORRECT[k]}/{v}" for k, v in sorted(TRIED.items())))
    assert tried == correct

