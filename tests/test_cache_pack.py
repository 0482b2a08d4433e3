"""The vocoder cache pack: what unpacks is what the trainer read, within the quantization step."""

import json
from pathlib import Path

import numpy as np
import pytest

from speechlm.errors import DataError
from speechlm.train.cache_pack import FLOOR, main, merge, pack, read_pack, unpack
from speechlm.train.vocoder import BATCH_DEFAULTS, CacheSplit, make_batch


def _cache(d: Path, voices=("a", "b", "c"), per_voice=4, seed=0, unit_space="test-k100",
           tokenizer="t") -> Path:
    """A small mel-only vocoder cache in the trainer's format (50 Hz units, 100 Hz frames)."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    for split, k in (("train", per_voice), ("valid", 1)):
        utts, units, feats, f0, off = [], [], [], [], 0
        for v in voices:
            for j in range(k):
                n = int(rng.integers(20, 60))
                utts.append([f"{v}/{split}{j}", v, off, n])
                units.append(rng.integers(0, 100, n).astype(np.int16))
                # smooth in time like a spectrogram, with floor frames (silence)
                x = np.cumsum(rng.normal(0, 0.3, (2 * n, 80)), axis=0) - 4.0
                x[:3] = np.log(1e-5)
                feats.append(np.clip(x, np.log(1e-5), 2.0).astype(np.float16))
                f = rng.uniform(80, 300, 2 * n).astype(np.float32)
                f[rng.random(2 * n) < 0.3] = 0
                f0.append(f)
                off += n
        np.save(d / f"{split}.units.npy", np.concatenate(units))
        np.save(d / f"{split}.feats.npy", np.concatenate(feats))
        np.save(d / f"{split}.f0.npy", np.concatenate(f0))
        (d / f"{split}.json").write_text(json.dumps({
            "format": "speechlm.vocoder-cache", "version": 1, "unit_space": unit_space,
            "n_units": 100, "frame_rate": 50.0, "sp_dim": 0, "n_mels": 80,
            "tokenizer": tokenizer, "utterances": utts}))
    return d


def test_roundtrip_within_half_a_step_and_trains(tmp_path):
    src = _cache(tmp_path / "cache")
    desc = pack(src, tmp_path / "pack", step=0.2, progress=False)
    assert read_pack(tmp_path / "pack")["bytes"] == desc["bytes"] > 0
    out = unpack(tmp_path / "pack", tmp_path / "restored")
    for split in ("train", "valid"):
        a, b = CacheSplit(src, split), CacheSplit(out, split)
        assert a.meta == b.meta
        assert b.feats.dtype == a.feats.dtype and b.f0.dtype == a.f0.dtype
        assert np.array_equal(a.units, b.units)
        err = np.abs(a.feats.astype(np.float32) - b.feats.astype(np.float32))
        # half a step, plus float16's rounding of values up to ~12 in magnitude
        assert err.max() <= 0.1 + 0.01
        assert desc["splits"][split]["mel_abs_error_max"] <= 0.1 + 1e-6
        assert 0 < err.mean() < 0.06
        assert np.allclose(a.f0, b.f0, rtol=1e-3, atol=0)
        assert np.array_equal(a.f0 == 0, b.f0 == 0)
        assert b.feats.min() >= FLOOR
    t = dict(BATCH_DEFAULTS, batch_size=4, crop_frames=16)
    x, y = make_batch(CacheSplit(src, "train"), 0, 3, t, 0, 0), \
        make_batch(CacheSplit(out, "train"), 0, 3, t, 0, 0)
    assert np.array_equal(x["units"], y["units"])
    assert float((x["feats"] - y["feats"]).abs().max()) <= 0.11


def test_a_finer_step_is_closer_and_a_split_already_there_is_kept(tmp_path):
    src = _cache(tmp_path / "cache")
    errs = [pack(src, tmp_path / f"p{s}", step=s, progress=False)["splits"]["train"]
            ["mel_abs_error_mean"] for s in (0.06, 0.2)]
    assert errs[0] < errs[1]
    out = tmp_path / "restored"
    unpack(tmp_path / "p0.2", out)
    before = (out / "train.feats.npy").stat().st_mtime_ns
    unpack(tmp_path / "p0.06", out)  # present: kept, not overwritten
    assert (out / "train.feats.npy").stat().st_mtime_ns == before


def test_max_utterances_draws_every_voice_and_rewrites_offsets(tmp_path):
    src = _cache(tmp_path / "cache", voices=("a", "b", "c", "d"), per_voice=5)
    desc = pack(src, tmp_path / "pack", max_utterances=6, seed=3, progress=False)
    assert desc["splits"]["train"]["utterances"] == 6 and desc["splits"]["train"]["of"] == 20
    assert desc["splits"]["valid"]["utterances"] == 4  # valid is never drawn
    out = unpack(tmp_path / "pack", tmp_path / "restored")
    a, b = CacheSplit(src, "train"), CacheSplit(out, "train")
    assert {u[1] for u in b.utts} == {"a", "b", "c", "d"}
    names = {u[0]: i for i, u in enumerate(a.utts)}
    off = 0
    for j, (name, _, o, n) in enumerate(b.utts):
        assert o == off
        off += n
        ua, fa, _ = a.item(names[name])
        ub, fb, _ = b.item(j)
        assert np.array_equal(ua, ub)
        assert np.abs(fa.astype(np.float32) - fb.astype(np.float32)).max() <= 0.11
    assert len(b.units) == off
    # the same seed draws the same utterances
    again = pack(src, tmp_path / "again", max_utterances=6, seed=3, progress=False)
    assert again["splits"] == desc["splits"]
    assert (tmp_path / "again" / "train.json").read_text() == \
        (tmp_path / "pack" / "train.json").read_text()


def test_refusals_and_cli(tmp_path, capsys):
    with pytest.raises(DataError, match="not a vocoder cache"):
        pack(tmp_path, tmp_path / "p", progress=False)
    src = _cache(tmp_path / "cache")
    with pytest.raises(DataError, match="step must be in"):
        pack(src, tmp_path / "p", step=0, progress=False)
    with pytest.raises(DataError, match="use a larger step"):
        pack(src, tmp_path / "p", step=0.01, progress=False)  # 255 levels reach -8.97 only
    with pytest.raises(DataError, match="no pack.json"):
        unpack(tmp_path, tmp_path / "x")
    assert main(["pack", str(src), str(tmp_path / "cli"), "--step", "0.25"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["step"] == 0.25
    f = tmp_path / "cli" / "train.feats.xz"
    f.write_bytes(f.read_bytes()[:100])
    assert main(["unpack", str(tmp_path / "cli"), str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cache_pack: ") and "damaged" in err and "\n" not in err
    assert not (tmp_path / "bad" / "train.json").exists()  # nothing half-restored counts


def test_merge_joins_train_splits_and_keeps_the_first_valid(tmp_path, capsys):
    a = _cache(tmp_path / "a", voices=("a", "b"), per_voice=3, seed=1)
    b = _cache(tmp_path / "b", voices=("real",), per_voice=2, seed=2)
    out = merge(tmp_path / "ab", [a, b])
    m, ca, cb = CacheSplit(out, "train"), CacheSplit(a, "train"), CacheSplit(b, "train")
    assert len(m) == len(ca) + len(cb) == 8
    assert sorted(m.by_speaker) == ["a", "b", "real"]
    for i in range(len(m)):  # every utterance reads the frames it read in its own cache
        src, j = (ca, i) if i < len(ca) else (cb, i - len(ca))
        for x, y in zip(m.item(i), src.item(j)):
            assert np.array_equal(x, y)
    va, vm = CacheSplit(a, "valid"), CacheSplit(out, "valid")
    assert vm.meta == va.meta and np.array_equal(vm.feats, va.feats)
    assert m.meta["merged_from"] == [a.as_posix(), b.as_posix()]
    make_batch(m, 0, 0, {**BATCH_DEFAULTS, "batch_size": 4, "crop_frames": 20}, 0, 0)
    # refused: another unit space, a repeated utterance, a lone cache; one line from the CLI
    c = _cache(tmp_path / "c", voices=("z",), unit_space="other-k100")
    with pytest.raises(DataError, match="differs .* in unit_space"):
        merge(tmp_path / "ac", [a, c])
    with pytest.raises(DataError, match="share utterance names"):
        merge(tmp_path / "aa", [a, a])
    assert not (tmp_path / "ac").exists() and not (tmp_path / "aa").exists()
    assert main(["merge", str(tmp_path / "x"), str(a)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cache_pack: ") and "at least two" in err and "\n" not in err
