"""``speechlm generate-units``: continue a unit sequence with the unit LM."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechlm.errors import SpeechLMError


def cmd_generate_units(args: argparse.Namespace) -> int:
    from speechlm.generate import SamplingOptions, generate
    from speechlm.lm import LanguageModel
    from speechlm.units import parse_ids, read_units_json

    lm = LanguageModel.load(args.model)
    model = lm.model
    p = Path(args.prompt_units)
    if args.prompt_units == "-":
        ids = parse_ids(sys.stdin.readline().split("\t")[0].split("|")[-1])
    elif p.exists():
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
            ids = units.ids.tolist()
        else:
            ids = parse_ids(p.read_text().split("|")[-1])
    else:
        ids = parse_ids(args.prompt_units)
    if ids and (min(ids) < 0 or max(ids) >= model.cfg.n_units):
        raise SpeechLMError(f"prompt unit ids must lie in [0, {model.cfg.n_units})")
    n_new = args.max_units or max(1, round(args.seconds * lm.units_per_second))
    opts = SamplingOptions(max_new_tokens=n_new, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                           no_repeat_ngram=args.no_repeat_ngram, num_samples=args.num_samples,
                           seed=args.seed, stop_at_eos=args.stop_at_eos)
    try:
        out = generate(model, torch_tensor(ids), opts)
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
                   help="'12 7 33', a units .json record, a file with one 'name|ids' line, "
                   "or - to read the first line of stdin (e.g. piped from 'tokenize --dedup')")
    g.add_argument("--model", default="unit-lm", help="bundled LM name or LM directory")
    g.add_argument("--seconds", type=float, default=5.0,
                   help="length of the continuation, via the LM's units per second")
    g.add_argument("--max-units", type=int, help="length in units (overrides --seconds)")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int, help="sample among the k most likely units")
    g.add_argument("--top-p", type=float, help="nucleus sampling mass")
    g.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 discourages recently generated units")
    g.add_argument("--no-repeat-ngram", type=int, default=0, help="forbid repeated n-grams")
    g.add_argument("--num-samples", type=int, default=1, help="samples, as one batch")
    g.add_argument("--seed", type=int, help="random seed (same seed, same units)")
    g.add_argument("--stop-at-eos", action="store_true",
                   help="let a sample end early when the LM predicts the end of an utterance "
                   "(default: always generate the requested length)")
    g.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    g.set_defaults(func=cmd_generate_units)
