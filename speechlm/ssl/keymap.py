"""Renaming checkpoint weights to torchaudio's key names.

Each format has a list of rules that map a torchaudio ``state_dict`` key to the key the source
format uses; the loaders invert them (:func:`load_renamed`), the tiny-checkpoint writers apply
them (:func:`apply_rules`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torchaudio.models import Wav2Vec2Model

from speechlm.errors import ModelError
from speechlm.ssl.common import build_and_load, expected_shapes, raise_key_problems

_LG = logging.getLogger(__name__)

Rule = tuple[re.Pattern[str], str]

_WEIGHT_NORM_G = "parametrizations.weight.original0"
_WEIGHT_NORM_V = "parametrizations.weight.original1"


def compile_rules(pairs: Iterable[tuple[str, str]]) -> list[Rule]:
    """Compile ``(pattern, replacement)`` pairs; the first matching pattern applies."""
    return [(re.compile(p), r) for p, r in pairs]


def apply_rules(rules: list[Rule], key: str) -> str:
    """The source-format name of torchaudio weight ``key``."""
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key, count=1)
        if n:
            return new
    raise AssertionError(f"no key mapping for torchaudio weight {key}")  # a bug, not bad input


def _aliases(name: str) -> list[str]:
    """All spellings of a weight-norm key.

    Old ``weight_g``/``weight_v`` and torch parametrizations
    (``parametrizations.weight.original0``/``original1``).
    """
    for old, new in (("weight_g", _WEIGHT_NORM_G), ("weight_v", _WEIGHT_NORM_V)):
        if name.endswith("." + old):
            return [name, name[: -len(old)] + new]
    return [name]


def strip_prefix(key: str, prefixes: Iterable[str]) -> str:
    """``key`` without the first of ``prefixes`` it starts with (unchanged if none)."""
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _is_head(name: str, heads: Iterable[str]) -> bool:
    """Whether ``name`` is, or lies under, one of the (dotted) module names ``heads``."""
    return any((name + ".").startswith(head + ".") for head in heads)


def _remap(source: Mapping[str, Any], ta_keys: Iterable[str], rules: list[Rule],
           prefixes: Iterable[str], heads: Iterable[str],
           where: str) -> dict[str, torch.Tensor]:
    """Rename ``source`` weights to torchaudio keys; raise on missing or unexpected keys."""
    ta_keys = list(ta_keys)
    wanted: dict[str, str] = {}
    for ta_key in ta_keys:
        for name in _aliases(apply_rules(rules, ta_key)):
            wanted[name] = ta_key
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    skipped = 0
    for key, tensor in source.items():
        name = strip_prefix(key, prefixes)
        ta_key = wanted.get(name)
        if ta_key is None:
            if _is_head(name, heads):
                skipped += 1
            else:
                unexpected.append(key)
            continue
        if ta_key in out:
            raise ModelError(f"{where}: weight given twice, as {origin[ta_key]} and {key}")
        out[ta_key], origin[ta_key] = tensor, key
    missing = [apply_rules(rules, k) for k in ta_keys if k not in out]
    raise_key_problems(where, missing, unexpected)
    if skipped:
        _LG.debug("%s: skipped %d weights of heads outside the encoder", where, skipped)
    return out


def load_renamed(arch: dict[str, Any], source: Mapping[str, Any], rules: list[Rule], where: str,
                 *, prefixes: Iterable[str] = (), heads: Iterable[str] = ()) -> Wav2Vec2Model:
    """Build the model for ``arch`` and load ``source``, a state dict in a foreign format.

    A key of ``source`` loses the first of ``prefixes`` it starts with, is then renamed by
    inverting ``rules``, and is skipped if it belongs to one of the ``heads`` (modules outside
    the encoder); loading is strict otherwise.
    """
    ta_keys = expected_shapes(arch, where)
    state = _remap(source, ta_keys, rules, tuple(prefixes), tuple(heads), where)
    return build_and_load(arch, state, where)
