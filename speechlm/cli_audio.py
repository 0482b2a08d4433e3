"""CLI commands that produce speech: continue, resynth, vocode, train vocoder, eval resynth,
eval continue. Registered into the parser of :mod:`speechlm.cli`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechlm.errors import SpeechLMError


def _out_path(out: str | None, default: Path, force: bool) -> Path:
    path = Path(out) if out else default
    if path.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise SpeechLMError(f"output {path}: use a .wav, .flac or .ogg name")
    if path.is_dir():
        raise SpeechLMError(f"output {path} is a directory; give a file name")
    return path


def _need_input(path: str | Path, what: str = "input") -> Path:
    p = Path(path)
    if not p.exists():
        raise SpeechLMError(f"{what} not found: {p}")
    if p.is_dir():
        raise SpeechLMError(f"{what} {p} is a directory; give a file")
    return p


def _refuse_existing(paths: list[Path], force: bool) -> None:
    if force:
        return
    for p in paths:
        if p.exists():
            raise SpeechLMError(f"{p} exists; pass --force to overwrite it")


def _numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


# --------------------------------------------------------------------------- continue


def cmd_continue(args: argparse.Namespace) -> int:
    from speechlm.audio import save_audio
    from speechlm.io import write_text_atomic
    from speechlm.pipeline import SpeechLM
    from speechlm.units import to_record

    prompt = _need_input(args.prompt, "prompt")
    if args.voice:
        _need_input(args.voice, "voice reference")
    out = _out_path(args.output, Path(f"{prompt.stem}.continued.wav"), args.force)
    paths = [_numbered(out, i + 1, args.num_samples) for i in range(args.num_samples)]
    _refuse_existing(paths + ([Path(args.units_out)] if args.units_out else []), args.force)
    if args.num_samples < 1:
        raise SpeechLMError("--num-samples must be >= 1")
    m = SpeechLM.load(args.model, tokenizer=args.tokenizer, lm=args.lm, vocoder=args.vocoder)
    try:
        res = m.continue_audio(prompt, seconds=args.seconds, temperature=args.temperature,
                               top_k=args.top_k, top_p=args.top_p,
                               repetition_penalty=args.repetition_penalty,
                               num_samples=args.num_samples, seed=args.seed, voice=args.voice,
                               continuation_only=args.continuation_only)
    except ValueError as err:
        if isinstance(err, SpeechLMError):
            raise
        raise SpeechLMError(str(err)) from None
    res = res if isinstance(res, list) else [res]
    if res[0].prompt_truncated:
        print(f"speechlm: note: the prompt is longer than the LM's context; it was conditioned "
              f"on its last {len(res[0].prompt_units) - res[0].prompt_truncated} units",
              file=sys.stderr)
    for path, r in zip(paths, res):
        save_audio(path, r.waveform, r.sample_rate)
        print(f"{path}\t{r.seconds:.2f} s (continuation from {r.prompt_seconds:.2f} s)")
    if args.units_out:
        recs = [to_record(res[0].prompt_units, name="prompt")]
        recs += [{**to_record(r.generated_units, name=f"sample-{i + 1}"), "seed": r.seed}
                 for i, r in enumerate(res)]
        write_text_atomic(args.units_out, "".join(json.dumps(x) + "\n" for x in recs))
    return 0


# --------------------------------------------------------------------------- resynth / vocode


def cmd_resynth(args: argparse.Namespace) -> int:
    from speechlm.audio import load_audio, save_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder, f0_track

    src = _need_input(args.input)
    if args.voice:
        _need_input(args.voice, "voice reference")
    out = _out_path(args.output, Path(f"{src.stem}.resynth.wav"), args.force)
    _refuse_existing([out], args.force)
    voc = Vocoder.load(args.vocoder)
    tok = Tokenizer.load(args.tokenizer or voc.training.get("tokenizer") or "mfcc-k100")
    if tok.unit_space != voc.unit_space:
        raise SpeechLMError(f"the tokenizer's unit space is {tok.unit_space!r} but the "
                            f"vocoder's is {voc.unit_space!r}")
    wav = load_audio(src, min_samples=400)
    units = tok.tokenize_wave(wav)
    voice = voc.voice(load_audio(args.voice, min_samples=400) if args.voice else wav)
    f0 = None if args.no_f0 else f0_track(wav.numpy())
    y = voc.decode(units, voice, f0=f0, method=args.method)
    save_audio(out, y, voc.sample_rate)
    print(f"{out}\t{len(y) / voc.sample_rate:.2f} s")
    return 0


def cmd_vocode(args: argparse.Namespace) -> int:
    from speechlm.audio import load_audio, save_audio
    from speechlm.units import read_units_json
    from speechlm.vocoder import Vocoder

    src = _need_input(args.units, "units file")
    _need_input(args.voice, "voice reference")
    out = _out_path(args.output, Path(f"{src.stem}.wav"), args.force)
    recs = read_units_json(src)
    if args.name is not None:
        recs = [r for r in recs if r[0] == args.name]
        if not recs:
            raise SpeechLMError(f"{src} has no record named {args.name!r}")
    if len(recs) != 1:
        raise SpeechLMError(f"{src} holds {len(recs)} records; pick one with --name")
    _refuse_existing([out], args.force)
    voc = Vocoder.load(args.vocoder)
    units = recs[0][1]
    voice = voc.voice(load_audio(args.voice, min_samples=400))
    y = voc.decode(units, voice, method=args.method, use_durations=not args.predict_durations)
    save_audio(out, y, voc.sample_rate)
    print(f"{out}\t{len(y) / voc.sample_rate:.2f} s")
    return 0


def cmd_train_vocoder(args: argparse.Namespace) -> int:
    from speechlm.train.vocoder import load_config, train_vocoder

    cfg = load_config(args.config, args.overrides)
    out = train_vocoder(cfg, progress=not args.quiet, recipe=args.config)
    print(out / "model")
    return 0


# --------------------------------------------------------------------------- eval


def cmd_eval_resynth(args: argparse.Namespace) -> int:
    from speechlm.cli import _emit_report
    from speechlm.eval.resynth import evaluate_resynth, resynth_markdown

    report = evaluate_resynth(args.vocoder, args.data, corpus=args.corpus,
                              per_voice=args.per_voice, methods=tuple(args.methods.split(",")),
                              seed=args.seed, progress=not args.quiet,
                              audio_out=args.audio_out)
    return _emit_report(args, report, resynth_markdown(report))


def cmd_eval_continue(args: argparse.Namespace) -> int:
    from speechlm.cli import _emit_report
    from speechlm.eval.continue_report import continuation_markdown, evaluate_continuation

    report = evaluate_continuation(args.model, args.data, corpus=args.corpus,
                                   per_voice=args.per_voice, num_samples=args.num_samples,
                                   prompt_seconds=args.prompt_seconds, seconds=args.seconds,
                                   temperature=args.temperature, seed=args.seed,
                                   figures=args.figures, audio_out=args.audio_out,
                                   progress=not args.quiet, vocoder=args.vocoder,
                                   max_figures=args.max_figures)
    return _emit_report(args, report, continuation_markdown(report))


# --------------------------------------------------------------------------- parsers


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=5.0, help="length of the continuation")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, help="keep the k most likely units")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 discourages recently generated units")
    p.add_argument("--seed", type=int, help="random seed; sample i uses seed + i")


def register_top(sub, add_parser) -> None:
    """``continue``, ``resynth``, ``vocode``."""
    c = add_parser(sub, "continue", help="continue a speech prompt in the same voice",
                   description="Tokenize the prompt, sample a continuation with the unit LM and "
                   "vocode prompt + continuation in the prompt's voice.")
    c.add_argument("prompt", help="prompt audio (wav, flac, ogg, mp3)")
    c.add_argument("-o", "--output", help="output audio (default: PROMPT.continued.wav); "
                   "with --num-samples N, OUT-1.wav ... OUT-N.wav")
    _sampling_args(c)
    c.add_argument("--num-samples", type=int, default=1, help="continuations to sample")
    c.add_argument("--continuation-only", action="store_true",
                   help="write only the new speech (default: prompt + continuation)")
    c.add_argument("--model", default="default",
                   help="'default' (bundled) or a directory with tokenizer/, lm/, vocoder/")
    c.add_argument("--tokenizer", help="replace the model's tokenizer (name or directory)")
    c.add_argument("--lm", help="replace the model's LM (name or directory)")
    c.add_argument("--vocoder", help="replace the model's vocoder (name or directory)")
    c.add_argument("--voice", help="speak the continuation in the voice of this recording")
    c.add_argument("--units-out", help="write prompt and generated units here (JSON lines)")
    c.add_argument("--force", action="store_true", help="overwrite existing outputs")
    c.set_defaults(func=cmd_continue)

    r = add_parser(sub, "resynth", help="speech -> units -> speech in the same (or another) voice",
                   description="Tokenize IN and decode its units with the unit vocoder, keeping "
                   "the speaker's voice and F0 contour; --voice converts to another speaker.")
    r.add_argument("input", help="input audio")
    r.add_argument("-o", "--output", help="output audio (default: IN.resynth.wav)")
    r.add_argument("--voice", help="decode in the voice of this recording (voice conversion)")
    r.add_argument("--no-f0", action="store_true",
                   help="ignore the input's F0 contour and let the vocoder predict one")
    r.add_argument("--method", choices=("world", "griffinlim"), default="world",
                   help="waveform generation: WORLD (default) or the Griffin-Lim baseline")
    r.add_argument("--vocoder", default="unit-vocoder", help="vocoder name or directory")
    r.add_argument("--tokenizer", help="tokenizer (default: the one the vocoder was trained on)")
    r.add_argument("--force", action="store_true", help="overwrite an existing output")
    r.set_defaults(func=cmd_resynth)

    v = add_parser(sub, "vocode", help="units (JSON) -> speech in the voice of a recording",
                   description="Decode a units file (speechlm tokenize --format json, or "
                   "continue --units-out) in the voice of --voice.")
    v.add_argument("units", help="units JSON file (one record, or pick one with --name)")
    v.add_argument("-o", "--output", help="output audio (default: UNITS.wav)")
    v.add_argument("--voice", required=True, help="reference recording of the voice")
    v.add_argument("--name", help="record name to decode in a multi-record file")
    v.add_argument("--predict-durations", action="store_true",
                   help="ignore the durations in the file and use the duration model")
    v.add_argument("--method", choices=("world", "griffinlim"), default="world",
                   help="waveform generation: WORLD (default) or the Griffin-Lim baseline")
    v.add_argument("--vocoder", default="unit-vocoder", help="vocoder name or directory")
    v.add_argument("--force", action="store_true", help="overwrite an existing output")
    v.set_defaults(func=cmd_vocode)


def register_train(trsub, add_parser) -> None:
    tv = add_parser(trsub, "vocoder", help="train the unit vocoder",
                    description="Train the unit vocoder (decoder, reference encoder, duration "
                    "model) from a recipe; extra --section.key=value arguments override it.")
    tv.add_argument("--config", required=True, help="recipe TOML, e.g. configs/vocoder/cpu.toml")
    tv.set_defaults(func=cmd_train_vocoder, accepts_overrides=True)


def register_eval(evsub, add_parser, add_report_args) -> None:
    er = add_parser(evsub, "resynth", help="intelligibility, voice, quality and speed of "
                    "resynthesis", description="Resynthesize held-out speech and judge it: "
                    "pocketsphinx WER (next to the original's), Resemblyzer speaker similarity, "
                    "DNSMOS, F0 correlation / RMSE and the real-time factor.")
    er.add_argument("--data", default="test",
                    help="split name of --corpus, a manifest .tsv (with .wrd), or a folder of "
                    "wavs with same-name .txt transcripts")
    er.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    er.add_argument("--vocoder", default="unit-vocoder", help="vocoder name or directory")
    er.add_argument("--per-voice", type=int, default=10,
                    help="utterances per voice (0: all; the ASR runs at ~0.25x real time)")
    er.add_argument("--methods", default="world-f0,world,griffinlim",
                    help="comma-separated: world-f0 (source F0 in), world (F0 predicted), "
                    "griffinlim (baseline)")
    er.add_argument("--seed", type=int, default=0, help="utterance sampling seed")
    er.add_argument("--audio-out", help="also write the resynthesized audio here")
    add_report_args(er)
    er.set_defaults(func=cmd_eval_resynth)

    ec = add_parser(evsub, "continue", help="the continuation report: voice, quality, content, "
                    "loops, speaking rate", description="Continue held-out prompts (the first "
                    "seconds of each utterance) several times and judge the continuations.")
    ec.add_argument("--data", default="test",
                    help="split name of --corpus, a manifest .tsv, or a folder of wavs")
    ec.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    ec.add_argument("--model", default="default", help="model ('default' or a directory)")
    ec.add_argument("--vocoder", help="replace the model's vocoder (name or directory)")
    ec.add_argument("--per-voice", type=int, default=4, help="prompts per voice (0: all)")
    ec.add_argument("--num-samples", type=int, default=3, help="continuations per prompt")
    ec.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length")
    ec.add_argument("--seconds", type=float, default=5.0, help="continuation length")
    ec.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    ec.add_argument("--seed", type=int, default=0, help="seed of prompts and sampling")
    ec.add_argument("--figures", help="write a PNG per voice here (its first prompt)")
    ec.add_argument("--max-figures", type=int, default=0, help="at most this many (0: all)")
    ec.add_argument("--audio-out", help="also write the continuations here")
    add_report_args(ec)
    ec.set_defaults(func=cmd_eval_continue)
