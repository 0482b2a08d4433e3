"""Commands that produce speech: ``continue``, ``resynth``, ``vocode``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechlm.cli.common import (
    MAX_SAMPLES,
    add_input_args,
    apply_input_args,
    check_seed_range,
    guard_outputs,
    need_input,
    number,
    numbered,
    out_path,
    sampling_args,
)
from speechlm.errors import SpeechLMError
from speechlm.pipeline import TEMPO_LIMITS
from speechlm.vocoder import DEFAULT_VOCODER


def cmd_continue(args: argparse.Namespace) -> int:
    import logging

    from speechlm.audio import save_audio
    from speechlm.io import write_text_atomic
    from speechlm.pipeline import SpeechLM
    from speechlm.units import to_record

    prompt = need_input(args.prompt, "prompt")
    voice = need_input(args.voice, "voice reference") if args.voice else None
    out = out_path(args.output, Path(f"{prompt.stem}.continued.wav"), args.force)
    n = args.num_samples
    check_seed_range(args.seed, n)
    outputs = {("-o" if n == 1 else f"-o (sample {i + 1})"): numbered(out, i + 1, n)
               for i in range(n)}
    if args.units_out:
        outputs["--units-out"] = Path(args.units_out)
    guard_outputs(outputs, {"the prompt": prompt, "the voice reference": voice}, args.force)
    m = SpeechLM.load(args.model, tokenizer=args.tokenizer, lm=args.lm, vocoder=args.vocoder)
    m.tokenizer = apply_input_args(m.tokenizer, args.warp, args.band_limit, args.speeds)
    m.lm_weights = args.lm_weights
    _vocoder_settings(m.vocoder, args)
    # one sample at a time (sample i is drawn with seed + i either way): each file is written
    # as soon as it is ready, so a long run shows its progress and a crash loses one sample
    pipeline_log = logging.getLogger("speechlm.pipeline")
    level = pipeline_log.level
    pipeline_log.setLevel(logging.ERROR)  # the note below says it once, not once per sample
    first = None
    recs = []
    try:
        for i, path in enumerate(outputs[k] for k in outputs if k != "--units-out"):
            r = m.continue_audio(prompt, seconds=args.seconds, temperature=args.temperature,
                                 top_k=args.top_k, top_p=args.top_p,
                                 repetition_penalty=args.repetition_penalty, num_samples=1,
                                 seed=None if args.seed is None else args.seed + i,
                                 voice=args.voice, continuation_only=args.continuation_only,
                                 text=args.text, tempo=args.tempo,
                                 prompt_pitch=args.prompt_pitch)
            if first is None:
                first = r
                _note_truncation(r, m.lm.block_size - 1, args.seconds)
            save_audio(path, r.waveform, r.sample_rate)
            print(f"{path}\t{r.seconds:.2f} s (continuation from {r.prompt_seconds:.2f} s)",
                  flush=True)
            recs.append({**to_record(r.generated_units, name=f"sample-{i + 1}"), "seed": r.seed,
                         "tempo": round(r.tempo, 4)})
    except ValueError as err:
        if isinstance(err, SpeechLMError):
            raise
        raise SpeechLMError(str(err)) from None
    finally:
        pipeline_log.setLevel(level)
    if args.units_out:
        recs.insert(0, to_record(first.prompt_units, name="prompt"))
        write_text_atomic(args.units_out, "".join(json.dumps(x) + "\n" for x in recs))
    return 0


def _note_truncation(r, context: int, seconds: float) -> None:
    cut = r.prompt_truncated
    if not cut:
        return
    kept = len(r.prompt_units) - cut
    if len(r.prompt_units) > context:
        print(f"speechlm: note: the prompt is longer than the LM's context; it was conditioned "
              f"on its last {kept} units (and only those are in the output)", file=sys.stderr)
    else:
        print(f"speechlm: note: the {seconds:g} s continuation leaves room in the LM's context "
              f"for the last {kept} of the prompt's {len(r.prompt_units)} units; ask for fewer "
              "--seconds to condition on all of the prompt", file=sys.stderr)


def cmd_resynth(args: argparse.Namespace) -> int:
    from speechlm.audio import FRAME_SIZE, NO_SIGNAL_PEAK, f0_track, load_audio, save_audio
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder

    src = need_input(args.input)
    voice = need_input(args.voice, "voice reference") if args.voice else None
    out = out_path(args.output, Path(f"{src.stem}.resynth.wav"), args.force)
    guard_outputs({"-o": out}, {"the input": src, "the voice reference": voice}, args.force)
    voc = Vocoder.load(args.vocoder)
    _vocoder_settings(voc, args)
    if args.waveform:
        voc.use_waveform(args.waveform)
    elif args.method == "hn" and voc.waveform is None:
        raise SpeechLMError(f"--method hn needs --waveform DIR: {args.vocoder} has no waveform "
                            "stage of its own")
    tok = Tokenizer.load(args.tokenizer or voc.training.get("tokenizer") or "mfcc-k100")
    if tok.unit_space != voc.unit_space:
        raise SpeechLMError(f"the tokenizer's unit space is {tok.unit_space!r} but the "
                            f"vocoder's is {voc.unit_space!r}")
    tok = apply_input_args(tok, args.warp, args.band_limit, args.speeds)
    wav = load_audio(src, min_samples=FRAME_SIZE)
    if voice is None:
        if float(wav.abs().max()) < NO_SIGNAL_PEAK:
            raise SpeechLMError(f"{src} is silent (peak below -80 dBFS): there is no voice to "
                                "resynthesize; give speech, or a --voice to speak in")
        spk = voc.voice(wav, what=f"the input {src}", tokenizer=tok)
    else:
        spk = voc.voice(load_audio(voice, min_samples=FRAME_SIZE), what=f"--voice {voice}",
                        tokenizer=tok)
    units = tok.tokenize_wave(wav)
    f0 = None if args.no_f0 else f0_track(wav.numpy())
    y = voc.decode(units, spk, f0=f0, method=args.method)
    save_audio(out, y, voc.sample_rate)
    print(f"{out}\t{len(y) / voc.sample_rate:.2f} s")
    return 0


def cmd_vocode(args: argparse.Namespace) -> int:
    from speechlm.audio import FRAME_SIZE, load_audio, save_audio
    from speechlm.units import read_units_json
    from speechlm.vocoder import Vocoder

    src = need_input(args.units, "units file")
    voice = need_input(args.voice, "voice reference")
    out = out_path(args.output, Path(f"{src.stem}.wav"), args.force)
    recs = read_units_json(src)
    if args.name is not None:
        recs = [r for r in recs if r[0] == args.name]
        if not recs:
            raise SpeechLMError(f"{src} has no record named {args.name!r}")
    if len(recs) != 1:
        raise SpeechLMError(f"{src} holds {len(recs)} records; pick one with --name")
    guard_outputs({"-o": out}, {"the units file": src, "the voice reference": voice},
                  args.force)
    voc = Vocoder.load(args.vocoder)
    _vocoder_settings(voc, args)
    if args.waveform:
        voc.use_waveform(args.waveform)
    elif args.method == "hn" and voc.waveform is None:
        raise SpeechLMError(f"--method hn needs --waveform DIR: {args.vocoder} has no waveform "
                            "stage of its own")
    units = recs[0][1]
    voc.check_units(units, use_durations=not args.predict_durations)  # before the voice
    spk = voc.voice(load_audio(voice, min_samples=FRAME_SIZE), what=f"--voice {voice}")
    y = voc.decode(units, spk, method=args.method, use_durations=not args.predict_durations)
    save_audio(out, y, voc.sample_rate)
    print(f"{out}\t{len(y) / voc.sample_rate:.2f} s")
    return 0


def _vocoder_args(p: argparse.ArgumentParser) -> None:
    """--method, --waveform, --vocoder and the vocoder's settings (resynth, vocode)."""
    p.add_argument("--method", choices=("world", "griffinlim", "hn"),
                   help="waveform generation: WORLD, the Griffin-Lim baseline, or the harmonic-"
                   "plus-noise stage (default: the vocoder's own: hn for a mel-only vocoder "
                   "such as the bundled vocoders, else WORLD)")
    p.add_argument("--waveform", help="harmonic-plus-noise waveform stage directory for "
                   "--method hn (a mel-only vocoder carries its own)")
    p.add_argument("--vocoder", default=DEFAULT_VOCODER, help="vocoder name or directory")
    _vocoder_setting_args(p)


def _vocoder_setting_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timbre-match", type=number(float, 0.0, 1.0), metavar="X",
                   help="move the output's long-term average spectrum this share of the way to "
                   "the voice reference's, 0 (off) to 1 (default: the vocoder's own, 0.5 for "
                   "the bundled vocoders; log-mel methods only)")
    p.add_argument("--mel-contrast", type=number(float, 1.0, 2.0), metavar="X",
                   help="scale the output log-mel's deviations from its long-term average by X, "
                   "1 (off) to 2 (default: the vocoder's own; log-mel methods only)")
    p.add_argument("--voiced-noise-cut", type=number(float, 0.0, 4000.0), metavar="HZ",
                   help="mute the waveform stage's noise below HZ in voiced frames, 0 (off) to "
                   "4000 (default: the vocoder's own; method hn only)")
    p.add_argument("--voice-adapt-steps", type=number(int, 0, 200), metavar="N",
                   help="fit the voice to its reference in N steps (the speaker vector and the "
                   "decoder's FiLM offsets against the reference's own log-mel; ~0.04 s a step "
                   "for a 4 s reference on 2 cores), 0 (off) to 200 (default: the vocoder's own)")
    p.add_argument("--f0-spread", type=number(float, 0.0, 1.0), metavar="X",
                   help="how widely a drawn F0 contour strays from each frame's median, 0 (the "
                   "medians: the same intonation for every seed) to 1 (a draw from the "
                   "vocoder's distribution; default: the vocoder's own)")
    p.add_argument("--drawn-voicing-threshold", type=number(float, 0.05, 0.95), metavar="P",
                   help="where the F0 is drawn (no source F0), voice the frames whose predicted "
                   "voicing probability exceeds P, 0.05 to 0.95 (default: the vocoder's own, "
                   "0.35 for the bundled vocoders)")
    p.add_argument("--contour", metavar="DIR|none",
                   help="the intonation model the drawn F0 takes its pitch shape from (no source "
                   "F0: continue, vocode): a contour model directory (speechlm train vocoder "
                   "--config configs/vocoder/contour-cpu.toml), or none for the vocoder's "
                   "per-frame distributions (default: the vocoder's own)")
    p.add_argument("--source-f0-weight", type=number(float, 0.0, 1.0), metavar="W",
                   help="where a source F0 is given (resynthesis), the output's F0 in voiced "
                   "frames: 0 the decoder's estimate, 1 the source contour at the voice's level "
                   "and range, between them a mix (default: the vocoder's own)")
    p.add_argument("--drawn-f0-weight", type=number(float, 0.0, 1.0), metavar="W",
                   help="where the F0 is drawn (continue, vocode), the output's F0 in voiced "
                   "frames: 0 the decoder's estimate given the drawn contour, 1 the drawn "
                   "contour itself (the prompt's own F0 over the prompt), between them a mix "
                   "(default: the vocoder's own)")


def _vocoder_settings(voc, args: argparse.Namespace) -> None:
    """--timbre-match / --mel-contrast / --voiced-noise-cut / --voice-adapt-steps / --f0-spread /
    --drawn-voicing-threshold / --source-f0-weight / --drawn-f0-weight / --contour, where given,
    over the vocoder's own settings."""
    if args.timbre_match is not None:
        voc.set_timbre_match(args.timbre_match)
    if args.mel_contrast is not None:
        voc.set_mel_contrast(args.mel_contrast)
    if args.voiced_noise_cut is not None:
        voc.set_voiced_noise_cut(args.voiced_noise_cut)
    if args.voice_adapt_steps is not None:
        voc.set_voice_adapt_steps(args.voice_adapt_steps)
    if args.f0_spread is not None:
        voc.set_f0_spread(args.f0_spread)
    if args.drawn_voicing_threshold is not None:
        voc.set_drawn_voicing_threshold(args.drawn_voicing_threshold)
    if args.source_f0_weight is not None:
        voc.set_source_f0_weight(args.source_f0_weight)
    if args.drawn_f0_weight is not None:
        voc.set_drawn_f0_weight(args.drawn_f0_weight)
    if args.contour is not None:
        voc.use_contour(None if args.contour == "none" else args.contour)


def register(sub, add_parser) -> None:
    """``continue``, ``resynth``, ``vocode``."""
    c = add_parser(sub, "continue", help="continue a speech prompt in the same voice",
                   description="Tokenize the prompt, sample a continuation with the unit LM and "
                   "vocode prompt + continuation in the prompt's voice.")
    c.add_argument("prompt", help="prompt audio (wav, flac, ogg, mp3)")
    c.add_argument("-o", "--output", help="output audio (default: PROMPT.continued.wav); "
                   "with --num-samples N, OUT-1.wav ... OUT-N.wav")
    sampling_args(c)
    c.add_argument("--num-samples", type=number(int, 1, MAX_SAMPLES), default=1,
                   help="continuations to sample (each file is written when it is ready)")
    c.add_argument("--continuation-only", action="store_true",
                   help="write only the new speech (default: prompt + continuation)")
    c.add_argument("--model", default="default",
                   help="'default' (bundled) or a directory with tokenizer/, lm/, vocoder/")
    c.add_argument("--tokenizer", help="replace the model's tokenizer (name or directory)")
    add_input_args(c)
    c.add_argument("--lm", help="replace the model's LM (name or directory)")
    c.add_argument("--vocoder", help="replace the model's vocoder (name or directory)")
    c.add_argument("--voice", help="speak the continuation in the voice of this recording")
    _vocoder_setting_args(c)
    c.add_argument("--text", help="words the LM reads after the prompt; it goes on speaking "
                   "after them in the prompt's voice (an LM trained with text only)")
    c.add_argument("--tempo", type=number(float, TEMPO_LIMITS[0], TEMPO_LIMITS[1]),
                   help="multiply the continuation's unit durations by this (> 1: slower; "
                   "default: fitted to the prompt's pace; 1: the duration model as trained)")
    c.add_argument("--no-prompt-pitch", dest="prompt_pitch", action="store_false",
                   help="draw the whole F0 contour, the prompt's too (default: the prompt is "
                   "spoken with its own F0, and an intonation model that reads it carries it on)")
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
    _vocoder_args(r)
    r.add_argument("--tokenizer", help="tokenizer (default: the one the vocoder was trained on)")
    add_input_args(r)
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
    _vocoder_args(v)
    v.add_argument("--force", action="store_true", help="overwrite an existing output")
    v.set_defaults(func=cmd_vocode)
