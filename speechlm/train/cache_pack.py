"""Pack a vocoder analysis cache small enough to travel, and unpack it to a cache again.

A lent GPU machine receives at most 64 MiB of files with the working tree and has no speech
engines to rebuild the corpus, while the bundled vocoder's cache holds ~330 MB of float16 log-mel.
The pack keeps what ``speechlm train vocoder`` reads (units, F0, log-mel, the split's JSON) and
loses only log-mel precision:

- log-mel: quantized to ``step`` (nats) above ``floor`` (the analysis' log floor), as uint8, each
  frame stored as its difference from the frame before (modulo 256, so decoding is exact), then
  LZMA; a value rounds to its nearest level, so the error is at most ``step / 2`` (the pack
  records the measured mean and maximum);
- F0 (Hz): float16 (relative error below 0.05 %), then LZMA;
- units: as they are (int16), then LZMA.

``max_utterances`` keeps a seeded draw of a split's utterances (every voice keeps at least one
while there is room), with their offsets rewritten.

``merge`` joins the train splits of several caches of one unit space into a new cache (e.g. the
bundled vocoder's and the real voices' of ``scripts/vocoder_real.sh``), whose valid split is the
first cache's: a run on it is validated as the first cache's runs are.

    python -m speechlm.train.cache_pack pack data/vocoder/v2-phone-k100-8b1f9cc1 PACK --step 0.2
    python -m speechlm.train.cache_pack unpack PACK data/vocoder/CACHE
    python -m speechlm.train.cache_pack merge OUT CACHE1 CACHE2 ...
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import DataError, SpeechLMError
from speechlm.io import atomic_path, write_json_atomic

FORMAT, VERSION = "speechlm.vocoder-cache-pack", 1
SPLITS = ("train", "valid")
FLOOR = -11.52  # just below log(speechlm.mel.LOG_FLOOR) = log 1e-5 = -11.513, the lowest value


def _split_meta(cache: Path, split: str) -> dict[str, Any]:
    path = cache / f"{split}.json"
    if not path.exists():
        raise DataError(f"{cache} is not a vocoder cache (no {split}.json)")
    meta = json.loads(path.read_text())
    if meta.get("format") != "speechlm.vocoder-cache":
        raise DataError(f"{path} is not a vocoder cache's split (format {meta.get('format')!r})")
    return meta


def _draw(utts: list, n: int, seed: int) -> list[int]:
    """Indices of ``n`` utterances, in cache order: one per voice first (while n allows), then a
    seeded draw of the rest."""
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(utts))]
    first: dict[str, int] = {}
    for i in order:
        first.setdefault(utts[i][1], i)
    keep = list(first.values())[:n]
    chosen = set(keep)
    keep += [i for i in order if i not in chosen][: n - len(keep)]
    return sorted(keep)


def _write_xz(path: Path, data: bytes) -> int:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(lzma.compress(data, preset=6))
    return path.stat().st_size


def pack(cache: Path, out: Path, step: float = 0.2, max_utterances: int = 0, seed: int = 0,
         progress: bool = True) -> dict[str, Any]:
    """Pack ``cache`` into the directory ``out``; returns the pack's description."""
    cache, out = Path(cache), Path(out)
    if not 0 < step <= 0.5:
        raise DataError(f"step must be in (0, 0.5] nats, got {step}")
    metas = {s: _split_meta(cache, s) for s in SPLITS}
    if metas["train"].get("sp_dim") or metas["train"].get("ap_dim"):
        raise DataError(f"{cache} holds WORLD parameters (sp_dim {metas['train'].get('sp_dim')}):"
                        " only mel-only caches (sp_dim = 0) pack")
    out.mkdir(parents=True, exist_ok=True)
    desc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": str(cache),
                            "step": step, "floor": FLOOR, "seed": seed, "splits": {}}
    for split in SPLITS:
        meta = metas[split]
        units = np.load(cache / f"{split}.units.npy", mmap_mode="r")
        feats = np.load(cache / f"{split}.feats.npy", mmap_mode="r")
        f0 = np.load(cache / f"{split}.f0.npy", mmap_mode="r")
        utts = meta["utterances"]
        keep = list(range(len(utts)))
        if max_utterances and split == "train" and len(utts) > max_utterances:
            keep = _draw(utts, max_utterances, seed)
        new_utts, u_parts, f_parts, p_parts, off = [], [], [], [], 0
        for i in keep:
            name, spk, o, n = utts[i]
            u_parts.append(np.asarray(units[o : o + n]))
            f_parts.append(np.asarray(feats[2 * o : 2 * (o + n)], dtype=np.float32))
            p_parts.append(np.asarray(f0[2 * o : 2 * (o + n)]))
            new_utts.append([name, spk, off, n])
            off += n
        u = np.concatenate(u_parts) if u_parts else np.zeros(0, units.dtype)
        x = (np.concatenate(f_parts) if f_parts
             else np.zeros((0, feats.shape[1]), np.float32))
        p = np.concatenate(p_parts) if p_parts else np.zeros(0, np.float32)
        if x.size and (x.min() < FLOOR or x.max() > FLOOR + 255 * step):
            raise DataError(f"{cache}/{split}.feats.npy spans [{x.min():.2f}, {x.max():.2f}], "
                            f"outside what step {step} covers from {FLOOR} "
                            f"({FLOOR + 255 * step:.2f}): use a larger step")
        q = np.rint((x - FLOOR) / step).astype(np.uint8)
        err = np.abs(q.astype(np.float32) * step + FLOOR - x)
        delta = np.diff(q, axis=0, prepend=np.zeros((1, q.shape[1]), np.uint8))  # wraps mod 256
        sizes = {
            "feats": _write_xz(out / f"{split}.feats.xz", np.ascontiguousarray(delta).tobytes()),
            "f0": _write_xz(out / f"{split}.f0.xz", p.astype(np.float16).tobytes()),
            "units": _write_xz(out / f"{split}.units.xz", u.tobytes()),
        }
        write_json_atomic(out / f"{split}.json", {**meta, "utterances": new_utts})
        desc["splits"][split] = {
            "utterances": len(new_utts), "of": len(utts), "frames": int(len(x)),
            "n_mels": int(feats.shape[1]), "units_dtype": str(units.dtype),
            "feats_dtype": str(feats.dtype), "f0_dtype": str(f0.dtype),
            "mel_abs_error_mean": round(float(err.mean()), 5) if err.size else 0.0,
            "mel_abs_error_max": round(float(err.max()), 5) if err.size else 0.0,
            "bytes": sizes}
        if progress:
            print(f"pack: {split}: {len(new_utts)} of {len(utts)} utterances, "
                  f"{sum(sizes.values()) / 2**20:.1f} MiB", file=sys.stderr)
    desc["bytes"] = sum(sum(s["bytes"].values()) for s in desc["splits"].values())
    write_json_atomic(out / "pack.json", desc)
    return desc


def read_pack(pack_dir: Path) -> dict[str, Any]:
    path = Path(pack_dir) / "pack.json"
    if not path.exists():
        raise DataError(f"{pack_dir} is not a cache pack (no pack.json)")
    desc = json.loads(path.read_text())
    if desc.get("format") != FORMAT or desc.get("version") != VERSION:
        raise DataError(f"{path}: format {desc.get('format')!r} version {desc.get('version')!r}, "
                        f"not {FORMAT} {VERSION}")
    return desc


def _read_xz(path: Path, dtype: str, count: int) -> np.ndarray:
    if not path.exists():
        raise DataError(f"{path} is missing from the pack")
    try:
        a = np.frombuffer(lzma.decompress(path.read_bytes()), dtype=dtype)
    except lzma.LZMAError as err:
        raise DataError(f"{path} is damaged ({err})") from None
    if a.size != count:
        raise DataError(f"{path} holds {a.size} values, the pack says {count}")
    return a


def unpack(pack_dir: Path, cache: Path) -> Path:
    """Restore the cache ``cache`` (the files ``speechlm train vocoder`` reads) from a pack;
    a split already there is kept."""
    pack_dir, cache = Path(pack_dir), Path(cache)
    desc = read_pack(pack_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if (cache / f"{split}.json").exists():
            continue
        s = desc["splits"][split]
        n, m = s["frames"], s["n_mels"]
        delta = _read_xz(pack_dir / f"{split}.feats.xz", "uint8", n * m).reshape(n, m)
        q = np.cumsum(delta, axis=0, dtype=np.uint8)  # modulo 256, as packed
        feats = (q.astype(np.float32) * desc["step"] + desc["floor"]).astype(s["feats_dtype"])
        f0 = _read_xz(pack_dir / f"{split}.f0.xz", "float16", n).astype(s["f0_dtype"])
        units = _read_xz(pack_dir / f"{split}.units.xz", s["units_dtype"], n // 2)
        for name, arr in (("feats", feats), ("f0", f0), ("units", units)):
            with atomic_path(cache / f"{split}.{name}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, arr)
        # the JSON last: a split counts as present once it is there
        write_json_atomic(cache / f"{split}.json",
                          json.loads((pack_dir / f"{split}.json").read_text()))
    return cache


MERGE_KEYS = ("unit_space", "n_units", "frame_rate", "sp_dim", "n_mels")  # must agree to merge


def merge(out: Path, caches: list[Path]) -> Path:
    """A cache ``out`` whose train split is the train splits of ``caches`` in order (offsets
    rewritten) and whose valid split is the first cache's. Refused when the caches differ in
    unit space or features, or an utterance name repeats; ``out`` is kept when complete."""
    out, caches = Path(out), [Path(c) for c in caches]
    if len(caches) < 2:
        raise DataError("merge needs at least two caches")
    metas = [_split_meta(c, "train") for c in caches]
    first = _split_meta(caches[0], "valid")
    for c, m in zip(caches[1:], metas[1:]):
        bad = [k for k in MERGE_KEYS if m.get(k) != metas[0].get(k)]
        if bad:
            raise DataError(f"{c} differs from {caches[0]} in {', '.join(bad)}: not one "
                            "unit space")
    names = [u[0] for m in metas for u in m["utterances"]]
    if len(set(names)) != len(names):
        raise DataError("the caches share utterance names: merged, they would be one twice")
    if (out / "train.json").exists() and (out / "valid.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    utts, off = [], 0
    for c, m in zip(caches, metas):
        for name, spk, o, n in m["utterances"]:
            utts.append([name, spk, off + o, n])
        off += len(np.load(c / "train.units.npy", mmap_mode="r"))  # offsets count unit frames
    for name in ("units", "feats", "f0"):
        arr = np.concatenate([np.load(c / f"train.{name}.npy", mmap_mode="r") for c in caches])
        with atomic_path(out / f"train.{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr)
        with atomic_path(out / f"valid.{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.load(caches[0] / f"valid.{name}.npy", mmap_mode="r"))
    write_json_atomic(out / "valid.json", first)
    # the train JSON last: a split counts as present once it is there
    write_json_atomic(out / "train.json", {**metas[0], "utterances": utts,
                                           "merged_from": [c.as_posix() for c in caches]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speechlm.train.cache_pack",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack a vocoder cache into a directory")
    a.add_argument("cache")
    a.add_argument("out")
    a.add_argument("--step", type=float, default=0.2, help="log-mel quantization step (nats)")
    a.add_argument("--max-utterances", type=int, default=0,
                   help="keep a seeded draw of this many training utterances (0: all)")
    a.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("unpack", help="restore a vocoder cache from a pack")
    b.add_argument("pack")
    b.add_argument("cache")
    c = sub.add_parser("merge", help="join the train splits of caches (valid: the first's)")
    c.add_argument("out")
    c.add_argument("caches", nargs="+")
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            d = pack(Path(args.cache), Path(args.out), args.step, args.max_utterances, args.seed)
            print(json.dumps({k: d[k] for k in ("bytes", "step")}
                             | {s: {k: v for k, v in x.items() if k != "bytes"}
                                for s, x in d["splits"].items()}))
        elif args.cmd == "merge":
            print(merge(Path(args.out), [Path(c) for c in args.caches]))
        else:
            print(unpack(Path(args.pack), Path(args.cache)))
    except (SpeechLMError, OSError) as err:
        print(f"cache_pack: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
