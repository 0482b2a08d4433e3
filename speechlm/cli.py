"""The ``speechlm`` command line: thin wrappers over the library.

Data goes to stdout, logs and progress bars to stderr. A user error (missing file, bad audio,
bad flag) prints one line and exits with code 2; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from speechlm.errors import SpeechLMError

log = logging.getLogger("speechlm")


class _Parser(argparse.ArgumentParser):
    """argparse that shows defaults and exits 2 with a one-line error."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- commands


def cmd_tokenize(args: argparse.Namespace) -> int:
    from speechlm.tokenizer import Tokenizer

    tok = Tokenizer.load(args.tokenizer)
    if args.manifest:
        return _tokenize_manifest(args, tok)
    if not args.files:
        raise SpeechLMError("give audio files to tokenize, or --manifest TSV")
    if args.output:
        raise SpeechLMError("-o/--output is for --manifest mode; single files print to stdout")
    from speechlm.units import format_ids, to_record

    for f in args.files:
        units = tok.tokenize_file(f, dedup=args.dedup)
        if args.format == "json":
            print(json.dumps(to_record(units, name=str(f))), flush=True)
        elif args.durations and units.durations is not None:
            print(f"{format_ids(units.ids)}\t{format_ids(units.durations)}", flush=True)
        else:
            print(format_ids(units.ids), flush=True)
    return 0


def _tokenize_manifest(args: argparse.Namespace, tok) -> int:
    import os

    from tqdm import tqdm

    from speechlm.manifest import read_manifest, resolve_manifest, shard
    from speechlm.units import unit_line

    if args.files:
        raise SpeechLMError("give either audio files or --manifest, not both")
    if not args.output:
        raise SpeechLMError("--manifest needs -o OUT (the 'name|u1 u2 ...' unit file)")
    items = shard(read_manifest(resolve_manifest(args.manifest, args.corpus)), args.shard)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise SpeechLMError(f"{out} exists; pass --force to overwrite")
    partial = out.with_name(out.name + ".partial")
    done: set[str] = set()
    if partial.exists():  # resume: keep complete lines, drop a torn last line
        text = partial.read_text(encoding="utf-8")
        keep = text[: text.rfind("\n") + 1]
        partial.write_text(keep, encoding="utf-8")
        done = {ln.split("|", 1)[0] for ln in keep.splitlines()}
        if done:
            log.info("resuming %s: %d of %d utterances already done", out, len(done), len(items))
    with partial.open("a", encoding="utf-8") as f:
        for u in tqdm(items, desc="tokenize", unit="utt", disable=args.quiet):
            if u.name in done:
                continue
            units = tok.tokenize_file(u.path, dedup=args.dedup)
            f.write(unit_line(u.name, units.ids) + "\n")
            f.flush()
    os.replace(partial, out)
    log.info("wrote %d utterances to %s", len(items), out)
    return 0


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    from speechlm.train.corpus import synth_corpus, voices_by_name

    voices = voices_by_name(args.voices.split(",")) if args.voices else None
    summary = synth_corpus(args.out, text=args.text, voices=voices, small=args.small,
                           limit=args.limit, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps({k: summary[k] for k in ("hours", "speakers")} |
                     {s: {k: v for k, v in d.items() if k != "hours_per_speaker"}
                      for s, d in summary["splits"].items()}, indent=2))
    return 0


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from speechlm.features import encoder_from_name
    from speechlm.manifest import read_manifest, resolve_manifest
    from speechlm.train.tokenizer import train_tokenizer

    out = Path(args.out)
    if out.exists() and not args.force:
        raise SpeechLMError(f"{out} exists; pass --force to overwrite")
    manifest = resolve_manifest(args.manifest, args.corpus)
    items = read_manifest(manifest)
    encoder = encoder_from_name(args.features, args.layer)
    tok = train_tokenizer(items, encoder, k=args.k, max_frames=args.max_frames, seed=args.seed,
                          progress=not args.quiet, source=manifest)
    tok.save(out)
    print(json.dumps({"out": str(out), "unit_space": tok.unit_space, **tok.training}, indent=2))
    return 0


def cmd_train_lm(args: argparse.Namespace) -> int:
    from speechlm.train.lm import load_config, train_lm

    cfg = load_config(args.config, args.overrides)
    out = train_lm(cfg, progress=not args.quiet, recipe=args.config)
    print(json.dumps({"run": str(out), "model": str(out / "model")}))
    return 0


def cmd_train_encoder(args: argparse.Namespace) -> int:
    from speechlm.train.encoder import load_config, train_encoder

    cfg = load_config(args.config, args.overrides)
    out = train_encoder(cfg, progress=not args.quiet, recipe=args.config)
    print(json.dumps({"run": str(out), "model": str(out / "model")}))
    return 0


def cmd_generate_units(args: argparse.Namespace) -> int:
    from speechlm.generate import SamplingOptions, generate
    from speechlm.lm import load_lm
    from speechlm.units import parse_ids, read_units_json

    model, info = load_lm(args.model)
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
    n_new = args.max_units or max(1, round(args.seconds * info["units_per_second"]))
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


def cmd_eval_tokenizer(args: argparse.Namespace) -> int:
    from speechlm.eval.tokenizer import evaluate_tokenizer, markdown_table
    from speechlm.manifest import resolve_manifest

    manifest = resolve_manifest(args.manifest, args.corpus)
    report = evaluate_tokenizer(args.tokenizer, manifest, max_utterances=args.max_utterances,
                                seed=args.seed, progress=not args.quiet)
    return _emit_report(args, report, markdown_table([report]))


def _emit_report(args: argparse.Namespace, report: dict, md: str) -> int:
    """Write ``--json`` / ``--markdown`` (atomically) and print the report in ``--format``."""
    from speechlm.io import write_json_atomic, write_text_atomic

    if args.json:
        write_json_atomic(args.json, report)
    if args.markdown:
        write_text_atomic(args.markdown, md + "\n")
    print(json.dumps(report, indent=2) if args.format == "json" else md)
    return 0


def _add_report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--markdown", help="also write the markdown table here")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown",
                        help="what to print on stdout")


def cmd_eval_lm(args: argparse.Namespace) -> int:
    from speechlm.eval.lm import evaluate_lm, lm_markdown

    report = evaluate_lm(args.model, units_dir=args.units_dir, corpus=args.corpus,
                         split=args.split, probes=args.probes, progress=not args.quiet)
    return _emit_report(args, report, lm_markdown(report))


def cmd_build_probes(args: argparse.Namespace) -> int:
    from speechlm.eval.probes import build_probe_set

    for kind in ("lexical", "syntactic"):
        path = build_probe_set(args.out, voices=tuple(args.voices.split(",")), kind=kind,
                               progress=not args.quiet)
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from speechlm.checkpoint import PRETRAINED_DIR, pretrained_names

    for name in pretrained_names():
        cfg = json.loads((PRETRAINED_DIR / name / "config.json").read_text())
        print(f"{name}\t{cfg['kind']}\t{cfg.get('unit_space', '')}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from speechlm import __version__, cli_audio
    from speechlm.tokenizer import DEFAULT_TOKENIZER

    # -v / -q are accepted before or after the command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", dest="verbose_sub",
                        help="debug logs and tracebacks")
    common.add_argument("-q", "--quiet", action="store_true", dest="quiet_sub",
                        help="no progress bars or info logs")
    p = _Parser(prog="speechlm", description="Textless spoken language modelling toolkit.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    p.add_argument("--version", action="version", version=f"speechlm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add_parser(sp, *a, **kw):
        kw.setdefault("parents", [common])
        return sp.add_parser(*a, **kw)
    sub.required = True

    t = add_parser(sub, "tokenize", help="speech -> units (one line per file on stdout)",
                       description="Turn speech into discrete units. Prints one line of "
                       "space-separated unit ids per file, or with --manifest writes a "
                       "'name|u1 u2 ...' unit file (resumable).")
    t.add_argument("files", nargs="*", help="audio files (wav, flac, ogg, ...)")
    t.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="bundled tokenizer name or tokenizer directory")
    t.add_argument("--dedup", action="store_true", help="collapse repeated units")
    t.add_argument("--durations", action="store_true",
                   help="with --dedup, add a TAB and the run length of each unit")
    t.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: ids per line; json: one versioned units record per line")
    t.add_argument("--manifest", help="batch mode: manifest .tsv or split name of --corpus")
    t.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    t.add_argument("--shard", default="0/1", help="batch mode: process shard I of N")
    t.add_argument("-o", "--output", help="batch mode: output unit file")
    t.add_argument("--force", action="store_true", help="overwrite an existing output")
    t.set_defaults(func=cmd_tokenize)

    c = add_parser(sub, "corpus", help="build a training corpus")
    csub = c.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=_Parser)
    csub.required = True
    cs = add_parser(csub, "synth", help="synthesize a multi-speaker corpus from CMU ARCTIC text",
                         description="Synthesize the CMU ARCTIC prompts with flite, festival and "
                         "espeak-ng voices into DIR (resumable), with manifests per split.")
    cs.add_argument("--out", required=True, help="output directory")
    cs.add_argument("--text", help="prompt file (default: ../shared/data/cmuarctic.data)")
    cs.add_argument("--small", action="store_true", help="a ~3 minute corpus for tests")
    cs.add_argument("--voices", help="comma-separated voice names (default: all 15)")
    cs.add_argument("--limit", type=int, help="use only the first N sentences")
    cs.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    cs.set_defaults(func=cmd_corpus_synth)

    tr = add_parser(sub, "train", help="train a stage")
    trsub = tr.add_subparsers(dest="train_command", metavar="STAGE", parser_class=_Parser)
    trsub.required = True
    tt = add_parser(trsub, "tokenizer", help="fit k-means units on features of a manifest")
    tt.add_argument("--manifest", default="train", help="manifest .tsv or split name")
    tt.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    tt.add_argument("--features", default="mfcc",
                    help="mfcc, logmel, or a HuBERT/wav2vec2 checkpoint path")
    tt.add_argument("--layer", type=int,
                    help="layer of a checkpoint: 0 = transformer input, L = output of block L")
    tt.add_argument("--k", type=int, default=100, help="number of units")
    tt.add_argument("--max-frames", type=int, default=1_000_000,
                    help="frames sampled for k-means")
    tt.add_argument("--seed", type=int, default=0, help="random seed")
    tt.add_argument("--out", required=True, help="output tokenizer directory")
    tt.add_argument("--force", action="store_true", help="overwrite an existing directory")
    tt.set_defaults(func=cmd_train_tokenizer)

    tl = add_parser(trsub, "lm", help="train the unit language model",
                    description="Train the unit LM from a recipe. Extra --section.key=value "
                    "arguments override it (e.g. --train.max_steps=500). For several processes: "
                    "torchrun --nproc_per_node=N -m speechlm.train.lm --config ...")
    tl.add_argument("--config", required=True, help="recipe TOML, e.g. configs/lm/cpu.toml")
    tl.set_defaults(func=cmd_train_lm, accepts_overrides=True)

    te = add_parser(trsub, "encoder", help="train a HuBERT-style encoder (masked prediction)",
                    description="Train a HuBERT-architecture encoder by masked prediction of the "
                    "frame-rate units of a target tokenizer (iteration 1: mfcc-k100; iteration 2: "
                    "a tokenizer on an iteration-1 layer). Extra --section.key=value arguments "
                    "override the recipe. For several processes: torchrun --nproc_per_node=N -m "
                    "speechlm.train.encoder --config ...")
    te.add_argument("--config", required=True,
                    help="recipe TOML, e.g. configs/encoder/cpu-mel.toml")
    te.set_defaults(func=cmd_train_encoder, accepts_overrides=True)

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

    ev = add_parser(sub, "eval", help="evaluate a stage")
    evsub = ev.add_subparsers(dest="eval_command", metavar="STAGE", parser_class=_Parser)
    evsub.required = True
    et = add_parser(evsub, "tokenizer", help="PNMI, purity, ABX and bitrate on held-out data",
                          description="Unit quality against phone alignments of held-out "
                          "utterances: PNMI, phone and cluster purity, ABX error within and "
                          "across speakers, unit rate after dedup and bitrate.")
    et.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="name or directory")
    et.add_argument("--manifest", default="test", help="manifest .tsv or split name")
    et.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    et.add_argument("--max-utterances", type=int, help="evaluate a random subset")
    et.add_argument("--seed", type=int, default=0, help="random seed for subsets and ABX")
    _add_report_args(et)
    et.set_defaults(func=cmd_eval_tokenizer)

    el = add_parser(evsub, "lm", help="held-out perplexity and spot-the-word accuracies",
                    description="Perplexity on the test split (per unit and bits per second) "
                    "and, where the probe sets exist, sWUGGY-style lexical and sBLIMP-style "
                    "syntactic accuracies with 95% confidence intervals.")
    el.add_argument("--model", default="unit-lm", help="bundled LM name or LM directory")
    el.add_argument("--split", default="test", help="split to score")
    el.add_argument("--units-dir", help="unit shards (default: the one the LM was trained on; "
                    "a missing split is tokenized from --corpus)")
    el.add_argument("--corpus", default="data/corpus", help="corpus directory")
    el.add_argument("--probes", default="data/probes",
                    help="probe sets from 'speechlm eval build-probes' (skipped if absent)")
    _add_report_args(el)
    el.set_defaults(func=cmd_eval_lm)

    bp = add_parser(evsub, "build-probes", help="synthesize the spot-the-word probe sets",
                    description="Synthesize the lexical (word / non-word) and syntactic "
                    "(sentence / broken sentence) probe pairs in three voices.")
    bp.add_argument("--out", default="data/probes", help="output directory")
    bp.add_argument("--voices", default="flite_slt,flite_rms,fest_kal",
                    help="comma-separated corpus voices")
    bp.set_defaults(func=cmd_build_probes)
    cli_audio.register_eval(evsub, add_parser, _add_report_args)

    cli_audio.register_top(sub, add_parser)
    cli_audio.register_train(trsub, add_parser)

    m = add_parser(sub, "models", help="list the bundled models")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides_ok = getattr(args, "accepts_overrides", False) and all(
        e.startswith("--") and "." in e.split("=")[0] and "=" in e for e in extra)
    if extra and not overrides_ok:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    args.quiet = args.quiet or getattr(args, "quiet_sub", False)
    args.verbose = args.verbose or getattr(args, "verbose_sub", False)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except SpeechLMError as err:
        if args.verbose:
            raise
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speechlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
