"""A stage that takes a new phone tokenizer's units: the one case where two unit spaces mean
the same thing.

A unit space id names one tokenizer's vocabulary, and an LM or vocoder trained on one refuses
every other (:mod:`speechlm.stage`). For k-means units that is the only safe rule: unit 17 of
two codebooks are two different sounds. A CTC phone tokenizer's units are not a codebook but the
phone classes themselves (unit ``i`` is :data:`speechlm.data.phones.CLASSES` ``[i]``), so a
better phone head (the same phone list, new weights, hence a new id) spells the same symbols:
an LM or vocoder trained on the old head's units reads the new head's as they are meant. Only
its training distribution differs, as it does on any new voice.

:func:`adopt_units` writes a copy of such a stage directory (or rewrites it in place) whose
``unit_space`` fields name the new tokenizer's space and whose ``config.json`` records what it
was trained on (``adopted_units``: the old space, and an LM's training unit shards, whose
``training.units_dir`` / ``frames_dir`` then name the shards of the new space, which ``eval lm``
builds on first use). It refuses anything but phone-class spaces on both sides, so k-means units
can never be relabelled this way. The weights are copied byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from speechlm.errors import ModelError

CONFIG = "config.json"


def _rewrite(obj: Any, old: str, new: str) -> Any:
    """``obj`` (parsed JSON) with every ``unit_space`` value ``old`` replaced by ``new``."""
    if isinstance(obj, dict):
        return {k: (new if k == "unit_space" and v == old else _rewrite(v, old, new))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewrite(v, old, new) for v in obj]
    return obj


def _record(cfg: dict[str, Any], old: str, new: str, tokenizer: str,
            units_per_second: float | None = None) -> dict[str, Any]:
    """The ``adopted_units`` entry of a top-level ``config.json`` (an earlier adoption's
    origin kept); an LM's ``training.units_dir`` / ``frames_dir`` are pointed at shards of the
    new space (``data/units/<space>-dedup|frames``), the trained-on ones kept in the record;
    with ``units_per_second`` an LM's ``units_per_second`` (the rate ``generate`` sizes a
    continuation by) becomes it, the trained-on rate kept in the record."""
    prev = cfg.get("adopted_units") or {}
    rec: dict[str, Any] = {"from": prev.get("from", old), "tokenizer": tokenizer}
    if units_per_second is not None:
        rec["units_per_second"] = prev.get("units_per_second", cfg["units_per_second"])
        cfg["units_per_second"] = round(float(units_per_second), 3)
    elif "units_per_second" in prev:
        rec["units_per_second"] = prev["units_per_second"]
    training = cfg.get("training") or {}
    for key in ("units_dir", "frames_dir"):
        if training.get(key):
            rec[key] = prev.get(key, training[key])
            kind = "frames" if key == "frames_dir" else "dedup"
            training[key] = f"data/units/{new}-{kind}"
    return rec


def adopt_units(stage: str | os.PathLike, tokenizer: str | os.PathLike,
                out: str | os.PathLike, units_per_second: float | None = None
                ) -> dict[str, Any]:
    """Copy the stage directory ``stage`` (an LM or a vocoder, with its sub-models) to ``out``,
    speaking ``tokenizer``'s unit space instead of its own.

    Args:
        stage: a bundled stage's name or a stage directory.
        tokenizer: the tokenizer whose units the copy takes (name or directory).
        out: the new directory (written atomically; it must not exist), or ``stage``'s own
            directory to rewrite it in place.
        units_per_second: an LM's deduplicated units per second of speech in the new units
            (measured, e.g. by ``scripts/wphone_unit_rate.sh``); None keeps the one it has.

    Returns:
        ``{"from", "to", "tokenizer", "files"}``: the two spaces, the tokenizer as given and the
        number of files copied.

    Raises:
        ModelError: ``out`` exists, ``stage`` is no stage directory, or either side's units
            are not phone classes (:func:`speechlm.data.phone_text.is_phone_space`), or
            their counts differ, or ``units_per_second`` is given for a stage without one (a
            vocoder) or is not a positive number.
    """
    from speechlm.checkpoint import resolve
    from speechlm.data.phone_text import is_phone_space
    from speechlm.ssl.files import write_dir_atomic, write_json
    from speechlm.tokenizer import Tokenizer

    src, target = resolve(stage), Path(out)
    if target.exists() and target.resolve() != src.resolve():
        raise ModelError(f"{target} exists; give a new directory for the adopted copy (or the "
                         "stage's own to rewrite it in place)")
    cfg = json.loads((src / CONFIG).read_text())
    old = cfg.get("unit_space")
    n_old = (cfg.get("model") or {}).get("n_units", cfg.get("n_units"))
    if not isinstance(old, str) or not isinstance(n_old, int):
        raise ModelError(f"{src} names no unit space and unit count: not an LM or vocoder")
    if units_per_second is not None:
        if "units_per_second" not in cfg:
            raise ModelError(f"{src} has no units_per_second (not an LM): give the rate to an "
                             "LM only")
        if not (isinstance(units_per_second, (int, float)) and 0 < units_per_second < 1000):
            raise ModelError(f"units_per_second must be a positive rate (units a second), got "
                             f"{units_per_second}")
    tok = Tokenizer.load(tokenizer)
    for what, space, n in (("stage " + str(stage), old, n_old),
                           ("tokenizer " + str(tokenizer), tok.unit_space, tok.n_units)):
        if not is_phone_space(n, space):
            raise ModelError(f"the {what} works in {space} ({n} units), not phone classes: only "
                             "a CTC phone tokenizer's units can be adopted (k-means ids of two "
                             "codebooks mean different sounds)")
    copied = 0

    def write(tmp: Path) -> None:
        nonlocal copied
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            dst = tmp / rel
            if path.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if path.name == CONFIG:
                sub = _rewrite(json.loads(path.read_text()), old, tok.unit_space)
                if path.parent == src:
                    sub["adopted_units"] = _record(sub, old, tok.unit_space, str(tokenizer),
                                                   units_per_second)
                write_json(dst, sub)
            else:
                shutil.copyfile(path, dst)
            copied += 1

    write_dir_atomic(target, write)
    return {"from": old, "to": tok.unit_space, "tokenizer": str(tokenizer), "files": copied}


__all__ = ["adopt_units"]
