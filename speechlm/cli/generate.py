"""``speechlm generate-units``: continue a unit sequence with the unit LM."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from speechlm.cli.common import (
    MAX_SAMPLES,
    check_seed_range,
    ngram_size,
    number,
    sampling_args,
)
from speechlm.errors import SpeechLMError
from speechlm.lm import DEFAULT_LM

_IDS_TEXT = re.compile(r"[\s,\-0-9]*")


def read_prompt(spec: str, lm) -> list[int]:
    """``--prompt-units``: inline ids, ``-`` (first line of stdin), a units .json/.jsonl record
    or a ``name|ids`` file. Text made of digits, spaces, commas and minus signs is always ids;
    anything else must be a file."""
    from speechlm.units import parse_ids, read_units_json

    model = lm.model
    if not spec.strip():
        raise SpeechLMError("--prompt-units is empty: give unit ids ('12 7 33'), a units file "
                            "or - for stdin")
    if spec == "-":
        line = sys.stdin.readline()
        if not line.strip():
            raise SpeechLMError("--prompt-units -: stdin is empty; pipe in a line of unit ids")
        return parse_ids(line.split("\t")[0].split("|")[-1])
    if _IDS_TEXT.fullmatch(spec):
        return parse_ids(spec)
    p = Path(spec)
    try:
        is_file = p.is_file()
    except OSError:  # a name too long, a symlink loop...
        is_file = False
    if not is_file and any(c.isspace() or c == "," for c in spec):
        return parse_ids(spec)  # ids with a typo: name the bad token
    if not is_file:
        raise SpeechLMError(f"--prompt-units {spec[:40]!r}{'...' if len(spec) > 40 else ''} is "
                            "neither unit ids ('12 7 33') nor a readable file")
    if p.suffix in (".json", ".jsonl"):
        recs = read_units_json(p)
        if len(recs) != 1:
            raise SpeechLMError(f"{p} holds {len(recs)} records; give one prompt")
        units = recs[0][1]
        if units.unit_space != model.cfg.unit_space:
            raise SpeechLMError(f"prompt unit space {units.unit_space} != the LM's "
                                f"{model.cfg.unit_space}")
        if model.cfg.dedup:
            units = units.dedup()
        return units.ids.tolist()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpeechLMError(f"cannot read --prompt-units file {p}: {err}") from None
    return parse_ids(text.split("\n", 1)[0].split("|")[-1])


def cmd_generate_units(args: argparse.Namespace) -> int:
    from speechlm.decode import decoder_for
    from speechlm.generate import SamplingOptions, generate
    from speechlm.lm import LanguageModel

    lm = LanguageModel.load(args.model)
    model = lm.model
    ids = read_prompt(args.prompt_units, lm)
    if ids and (min(ids) < 0 or max(ids) >= model.cfg.n_units):
        raise SpeechLMError(f"prompt unit ids must lie in [0, {model.cfg.n_units})")
    check_seed_range(args.seed, 1)
    if args.max_units is not None:
        n_new = args.max_units
    else:
        n_new = max(1, round(args.seconds * lm.units_per_second))
    try:
        opts = SamplingOptions(max_new_tokens=n_new, temperature=args.temperature,
                               top_k=args.top_k, top_p=args.top_p,
                               repetition_penalty=args.repetition_penalty,
                               no_repeat_ngram=args.no_repeat_ngram,
                               num_samples=args.num_samples, seed=args.seed,
                               stop_at_eos=args.stop_at_eos)
        out = generate(decoder_for(lm, args.lm_weights), torch_tensor(ids), opts)
    except ValueError as err:
        raise SpeechLMError(str(err)) from None
    from speechlm.units import format_ids

    for i in range(opts.num_samples):
        units = out.sample(i)
        if args.format == "json":
            print(json.dumps({"sample": i, "prompt": ids, "ids": units.tolist(),
                              "logprobs": [round(x, 4) for x in
                                           out.logprobs[i, : len(units)].tolist()],
                              "ended": bool(out.ended[i]), "unit_space": model.cfg.unit_space}))
        else:
            print(format_ids(units))
    return 0


def torch_tensor(ids: list[int]):
    import torch

    return torch.tensor(ids, dtype=torch.long)


def register(sub, add_parser) -> None:
    """``generate-units``."""
    g = add_parser(sub, "generate-units", help="continue a unit sequence with the unit LM",
                   description="Sample continuations of a unit prompt; one line of units per "
                   "sample on stdout (or JSON records with log-probabilities).")
    g.add_argument("--prompt-units", required=True,
                   help="'12 7 33' (digits, spaces and commas are always read as ids), a units "
                   ".json record, a file with one 'name|ids' line, or - to read the first line "
                   "of stdin (e.g. piped from 'tokenize --dedup')")
    g.add_argument("--model", default=DEFAULT_LM, help="bundled LM name or LM directory")
    sampling_args(g, seconds_help="length of the continuation, via the LM's units per second",
                  seed_help="random seed (same seed, same units)")
    g.add_argument("--max-units", type=number(int, 1, 100_000),
                   help="length in units (overrides --seconds)")
    g.add_argument("--no-repeat-ngram", type=ngram_size, default=0,
                   help="forbid repeated n-grams of this size (0 = off, else >= 2)")
    g.add_argument("--num-samples", type=number(int, 1, MAX_SAMPLES), default=1,
                   help="samples, as one batch")
    g.add_argument("--stop-at-eos", action="store_true",
                   help="let a sample end early when the LM predicts the end of an utterance "
                   "(default: always generate the requested length)")
    g.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    g.set_defaults(func=cmd_generate_units)
