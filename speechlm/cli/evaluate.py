"""``speechlm eval tokenizer|lm|scaling|build-probes|resynth|compare-resynth|continue|
compare-continue|compare-lm``."""

from __future__ import annotations

import argparse
import json

from speechlm.cli.common import (
    Parser,
    add_input_args,
    add_report_args,
    apply_input_args,
    emit_report,
    need_input,
    number,
)
from speechlm.errors import SpeechLMError
from speechlm.lm import DEFAULT_LM
from speechlm.tokenizer import DEFAULT_TOKENIZER, PRECISIONS
from speechlm.vocoder import DEFAULT_VOCODER


def rates(text: str) -> list[float]:
    """``--phone-noise``: comma-separated rates in [0, 1]."""
    one = number(float, 0, 1)
    try:
        return [one(x) for x in text.split(",") if x.strip()] or [one("")]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} (a comma-separated list of rates)") from None


def cmd_eval_tokenizer(args: argparse.Namespace) -> int:
    from speechlm.data.manifest import resolve_manifest
    from speechlm.eval.tokenizer import PAIRED, evaluate_tokenizer, markdown_table, paired_errors

    tokenizers = args.tokenizer or [DEFAULT_TOKENIZER]
    manifests = [(m, resolve_manifest(m, args.corpus)) for m in (args.manifest or ["test"])]
    # the test-time settings (--precision x --warp x --band-limit x --speeds), each named in
    # the row's label
    inputs = [(p, w, b, s) for p in (args.precision or [None]) for w in (args.warp or [None])
              for b in (args.band_limit or [None]) for s in (args.speeds or [None])]
    reports = []
    for name, manifest in manifests:  # check every input before the first long evaluation
        for tok in tokenizers:
            for precision, warp, band, speeds in inputs:
                reports.append((name, tok, manifest, precision, warp, band, speeds))
    out = []
    for name, tok, manifest, precision, warp, band, speeds in reports:
        t = tok
        if args.smoothing is not None or any(x is not None
                                             for x in (precision, warp, band, speeds)):
            from speechlm.tokenizer import Tokenizer

            t = Tokenizer.load(tok).with_precision(precision or "fp32")
            if args.smoothing is not None:
                t = t.with_smoothing(args.smoothing)
            t = apply_input_args(t, warp, band, speeds)
        r = evaluate_tokenizer(t, manifest, max_utterances=args.max_utterances,
                               seed=args.seed, progress=not args.quiet,
                               ued_utterances=0 if args.no_ued else args.ued_utterances)
        shown = [precision if args.precision else "",
                 f"warp {warp or 'none'}" if args.warp else "",
                 f"band limit {band:g} Hz" if band else
                 "full band" if args.band_limit else "",
                 ("speeds " + ",".join(f"{x:g}" for x in speeds) if speeds else "no speed "
                  "ensemble") if args.speeds else ""]
        shown = [x for x in shown if x]
        label = f"{tok} ({', '.join(shown)})" if shown else str(tok)
        out.append({**r, "tokenizer": label, "data": name,
                    **({"smoothing": args.smoothing} if args.smoothing is not None else {}),
                    **({"precision": precision} if precision is not None else {}),
                    **({"warp": warp} if warp is not None else {}),
                    **({"band_limit": band} if band else {}),
                    **({"speeds": list(speeds)} if speeds else {})})
    for measure, rows in PAIRED.items():
        first: dict[str, dict] = {}  # per manifest: the first tokenizer with those errors
        for r in out:
            if not r.get(rows):
                continue
            base = first.setdefault(r["data"], r)
            if base is not r:
                pairs = paired_errors(base, r, measure, seed=args.seed)
                if pairs:
                    r[f"{measure}_vs_first"] = {"base": base["tokenizer"], "voices": pairs}
    if len(out) == 1:
        return emit_report(args, out[0], markdown_table(out))
    return emit_report(args, {"reports": out}, markdown_table(out))


def cmd_eval_lm(args: argparse.Namespace) -> int:
    from speechlm.eval.lm import evaluate_lm, lm_markdown

    report = evaluate_lm(args.model, units_dir=args.units_dir, corpus=args.corpus,
                         split=args.split, probes=args.probes, progress=not args.quiet,
                         decode_weights=args.lm_weights, frames_dir=args.frames_dir,
                         phone_noise=tuple(args.phone_noise or ()), tokenizer=args.tokenizer,
                         probe_beam=args.probe_beam)
    return emit_report(args, report, lm_markdown(report))


def cmd_eval_scaling(args: argparse.Namespace) -> int:
    from speechlm.eval.scaling import plot_scaling, scaling_markdown, scaling_report

    report = scaling_report(args.runs)
    if args.figure:
        plot_scaling(args.figure, report)
    return emit_report(args, report, scaling_markdown(report))


def cmd_build_probes(args: argparse.Namespace) -> int:
    from speechlm.data.probes import build_probe_set

    for kind in ("lexical", "syntactic"):
        path = build_probe_set(args.out, voices=tuple(args.voices.split(",")), kind=kind,
                               progress=not args.quiet, corpus=args.corpus)
        print(path)
    return 0


def _data(args: argparse.Namespace) -> str:
    """``--wav-dir`` (a folder of the user's recordings) or ``--data``."""
    from pathlib import Path

    from speechlm.errors import DataError

    if args.wav_dir is None:
        return args.data
    if not Path(args.wav_dir).is_dir():
        raise DataError(f"--wav-dir {args.wav_dir} is not a folder")
    return args.wav_dir


def cmd_eval_resynth(args: argparse.Namespace) -> int:
    from speechlm.eval.resynth import evaluate_resynth, resynth_markdown

    report = evaluate_resynth(args.vocoder, _data(args), corpus=args.corpus,
                              per_voice=args.per_voice, methods=tuple(args.methods.split(",")),
                              seed=args.seed, progress=not args.quiet,
                              audio_out=args.audio_out, asrs=tuple(args.asr.split(",")),
                              waveform=args.waveform, reference_perturb=args.reference_perturb,
                              voice_from=args.voice_from, warp=args.warp, speeds=args.speeds,
                              band_limit=args.band_limit, tokenizer=args.tokenizer,
                              unit_oracle=args.unit_oracle,
                              reference_voices=args.reference_voices)
    return emit_report(args, report, resynth_markdown(report))


def _two_reports(args: argparse.Namespace, command: str, key: str) -> list[dict]:
    """BASE and OTHER of a compare command: JSON reports of ``eval COMMAND`` holding ``key``."""
    from speechlm.cli.common import need_input
    from speechlm.errors import DataError

    reports = []
    for flag, path in (("BASE", args.base), ("OTHER", args.other)):
        p = need_input(path, flag)
        try:
            reports.append(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as err:
            raise DataError(f"{p} is not a JSON report of 'speechlm eval {command}' ({err})") \
                from None
        if not isinstance(reports[-1], dict) or key not in reports[-1]:
            raise DataError(f"{p} is not a report of 'speechlm eval {command}' (no {key})")
    return reports


def cmd_eval_compare_resynth(args: argparse.Namespace) -> int:
    from speechlm.eval.compare import compare_markdown, compare_resynth

    reports = _two_reports(args, "resynth", "utterances")
    report = compare_resynth(*reports, samples=args.samples, seed=args.seed)
    return emit_report(args, report, compare_markdown(report))


def cmd_eval_compare_continue(args: argparse.Namespace) -> int:
    from speechlm.eval.compare import compare_continue, compare_continue_markdown

    reports = _two_reports(args, "continue", "prompts")
    report = compare_continue(*reports, samples=args.samples, seed=args.seed)
    return emit_report(args, report, compare_continue_markdown(report))


def cmd_eval_compare_lm(args: argparse.Namespace) -> int:
    from speechlm.eval.compare import compare_lm, compare_lm_markdown

    reports = _two_reports(args, "lm", "perplexity")
    report = compare_lm(*reports, samples=args.samples, seed=args.seed)
    return emit_report(args, report, compare_lm_markdown(report))


def cmd_eval_speaker(args: argparse.Namespace) -> int:
    from speechlm.errors import DataError
    from speechlm.eval.speaker import evaluate_speaker

    if args.per_voice < 2 or args.trials < 10:
        raise DataError("--per-voice must be >= 2 and --trials >= 10")
    report = evaluate_speaker(args.model, args.corpus, tuple(args.splits.split(",")),
                              args.per_voice, args.trials, args.seed,
                              judges=not args.no_judge, progress=not args.quiet)
    lines = ["| split | voices | utterances | EER | EER Resemblyzer (judge) | "
             "EER mean log-mel (trivial) |", "|---|---|---|---|---|---|"]
    for split, r in report["splits"].items():
        lines.append(f"| {split} | {r['voices']} | {r['utterances']} | {r['eer']:.4f} | "
                     f"{r.get('eer_resemblyzer_judge', float('nan')):.4f} | "
                     f"{r['eer_mean_logmel_baseline']:.4f} |")
    return emit_report(args, report, "\n".join(lines))


def cmd_eval_continue(args: argparse.Namespace) -> int:
    from speechlm.eval.continue_report import (
        continuation_markdown,
        evaluate_continuation,
        rescore_report,
    )

    if args.rescore:
        path = need_input(args.rescore, "report")
        try:
            report = rescore_report(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpeechLMError(f"{path} is not a JSON report ({e})") from e
        except ValueError as e:
            raise SpeechLMError(f"{path}: {e}") from e
        return emit_report(args, report, continuation_markdown(report))
    report = evaluate_continuation(args.model, _data(args), corpus=args.corpus,
                                   per_voice=args.per_voice, num_samples=args.num_samples,
                                   prompt_seconds=args.prompt_seconds, seconds=args.seconds,
                                   temperature=args.temperature, seed=args.seed,
                                   figures=args.figures, audio_out=args.audio_out,
                                   progress=not args.quiet, vocoder=args.vocoder,
                                   max_figures=args.max_figures,
                                   prompt_perturb=args.prompt_perturb,
                                   reference_voices=args.reference_voices)
    return emit_report(args, report, continuation_markdown(report))


REFERENCE_VOICES_HELP = ("more voices (a folder as --wav-dir, a split or a manifest) used only "
                         "as the speaker calibration's other voices, never evaluated: e.g. other "
                         "real speakers beside one real voice (data/real/others of "
                         "scripts/build_real_voice.sh)")


def register(sub, add_parser) -> None:
    """``eval tokenizer``, ``eval lm``, ``eval build-probes``, ``eval resynth``,
    ``eval continue``."""
    ev = add_parser(sub, "eval", help="evaluate a stage")
    evsub = ev.add_subparsers(dest="eval_command", metavar="STAGE", parser_class=Parser)
    evsub.required = True
    et = add_parser(evsub, "tokenizer", help="PNMI, purity, ABX, bitrate and UED on held-out "
                    "data", description="Unit quality against phone alignments of held-out "
                    "utterances: PNMI, phone and cluster purity, ABX error within and "
                    "across speakers, unit rate after dedup and bitrate; and robustness: the "
                    "unit edit distance (UED) under pitch shift (+-3, +-4 semitones), tempo "
                    "+-10 %%, reverberation and white noise at 20 dB SNR (needs sox).")
    et.add_argument("--tokenizer", action="append",
                    help=f"name or directory (default {DEFAULT_TOKENIZER}); repeat it to compare "
                    "tokenizers in one table")
    et.add_argument("--manifest", action="append",
                    help="manifest .tsv or split name (default test); repeat it for more rows, "
                    "e.g. --manifest test --manifest heldout (the held-out voices)")
    et.add_argument("--corpus", default="data/corpus-v2", help="corpus directory for split names")
    et.add_argument("--max-utterances", type=int, help="evaluate a random subset")
    et.add_argument("--seed", type=int, default=0, help="random seed for subsets and ABX")
    et.add_argument("--ued-utterances", type=int, default=50,
                    help="utterances (a seeded subset) perturbed for the UED columns")
    et.add_argument("--no-ued", action="store_true", help="skip the UED robustness measurement")
    et.add_argument("--precision", choices=PRECISIONS, action="append",
                    help="what the encoder computes in (see 'tokenize --precision'; default "
                    "fp32). Repeat it to compare (the first setting is the paired base).")
    add_input_args(et, repeat=True)
    et.add_argument("--smoothing", type=number(float, 0, 1000),
                    help="evaluate with this unit-change cost instead of the tokenizer's own "
                    "(see 'train tokenizer --smoothing')")
    add_report_args(et)
    et.set_defaults(func=cmd_eval_tokenizer)

    el = add_parser(evsub, "lm", help="held-out perplexity and spot-the-word accuracies",
                    description="Perplexity on the test split (per unit and bits per second) "
                    "and, where the probe sets exist, sWUGGY-style lexical and sBLIMP-style "
                    "syntactic accuracies with 95% confidence intervals.")
    el.add_argument("--model", default=DEFAULT_LM, help="bundled LM name or LM directory")
    el.add_argument("--split", default="test", help="split to score")
    el.add_argument("--tokenizer", help="tokenizer for missing shards and the probes' units "
                    "(default: the LM's own; where that name now holds other units, the "
                    "tokenizer/ beside the LM in a stage bundle); must have the LM's unit space")
    el.add_argument("--lm-weights", choices=("native", "native-int8", "int8", "fp32"),
                    help="also score the split with this decoder (the perplexity cost of what "
                    "sampling runs on; default: the one sampling uses, when it is not the "
                    "network's own fp32 in torch)")
    el.add_argument("--units-dir", help="unit shards (default: the one the LM was trained on; "
                    "a missing split is tokenized from --corpus)")
    el.add_argument("--frames-dir", help="frame-rate unit shards (word times) for the text "
                    "context test of an LM trained with text (default: its training's)")
    el.add_argument("--corpus", default="data/corpus-v2", help="corpus directory")
    el.add_argument("--probes", default="data/probes",
                    help="probe sets from 'speechlm eval build-probes' (skipped if absent)")
    el.add_argument("--probe-beam", type=number(int, 0, 4096), default=0, metavar="K",
                    help="score each probe item by the LM's expectation over the K most likely "
                    "unit strings of a CTC tokenizer's posteriors (log sum_s P(s|audio) "
                    "P_LM(s)), the n-gram baselines alike, instead of by its one unit string "
                    "(default 0: the unit string)")
    el.add_argument("--phone-noise", type=rates,
                    help="for an LM trained on reference phones (the phone oracle): also score "
                    "the probes with random phone errors at these comma-separated rates, e.g. "
                    "0.05,0.1,0.2: the phone error rate a tokenizer must stay under")
    add_report_args(el)
    el.set_defaults(func=cmd_eval_lm)

    sc = add_parser(evsub, "scaling", help="validation loss against compute of LM runs",
                    description="The scaling table of LM training runs (run directories of "
                    "'speechlm train lm'): parameters, tokens, compute (6 N D), wall time and "
                    "the best validation loss, with the loss curves drawn against compute.")
    sc.add_argument("runs", nargs="+", help="LM run directories")
    sc.add_argument("--figure", help="draw validation loss against compute into this PNG")
    add_report_args(sc)
    sc.set_defaults(func=cmd_eval_scaling)

    bp = add_parser(evsub, "build-probes", help="synthesize the spot-the-word probe sets",
                    description="Synthesize the lexical (word / non-word) and syntactic "
                    "(sentence / broken sentence) probe pairs in three voices.")
    bp.add_argument("--out", default="data/probes", help="output directory")
    bp.add_argument("--voices", default="flite_slt,flite_rms,fest_kal",
                    help="comma-separated voices: of the first corpus, or base voices of the "
                    "world corpus (its held-out engines: pico_us,piper_joe,mbrola_us3,pico_gb)")
    bp.add_argument("--corpus", default=None,
                    help="a world corpus: keep the pairs in its training vocabulary and refuse "
                    "its training / validation sentences (default: the ARCTIC check)")
    bp.set_defaults(func=cmd_build_probes)
    er = add_parser(evsub, "resynth", help="intelligibility, voice, quality and speed of "
                    "resynthesis", description="Resynthesize held-out speech and judge it: "
                    "Whisper and pocketsphinx WER (next to the original's), what Whisper hears, "
                    "calibrated Resemblyzer speaker similarity, DNSMOS, F0 correlation / RMSE "
                    "and the real-time factor; per voice, with the held-out voices apart.")
    er.add_argument("--data", default="test",
                    help="split name of --corpus, a manifest .tsv (with .wrd), or a folder of "
                    "wavs with same-name .txt transcripts")
    er.add_argument("--corpus", default="data/corpus-v2", help="corpus directory for split names")
    er.add_argument("--wav-dir", help="judge your own recordings instead: a folder of audio "
                    "files (DIR/*.wav for one speaker, DIR/SPEAKER/*.wav for several), with "
                    "transcripts in DIR/texts.tsv (file<TAB>text[<TAB>speaker]) or FILE.txt")
    er.add_argument("--reference-voices", metavar="DATA", help=REFERENCE_VOICES_HELP)
    er.add_argument("--vocoder", default=DEFAULT_VOCODER, help="vocoder name or directory")
    er.add_argument("--tokenizer", help="tokenizer to read the audio with (default: the one the "
                    "vocoder was trained on, by name); must have the vocoder's unit space "
                    "unless every method is copy synthesis (copy-runs / copy-unit-means / "
                    "copy-voice-* then average over this tokenizer's units: any unit space)")
    er.add_argument("--per-voice", type=int, default=10,
                    help="utterances per voice (0: all; the ASR runs at ~0.25x real time)")
    er.add_argument("--methods", default="world-f0,world,griffinlim,floor",
                    help="comma-separated: world-f0 (source F0 in), world (F0 predicted), "
                    "griffinlim (baseline), floor (the utterance's units shuffled: a trivial "
                    "baseline), hn-f0 / hn (as world-f0 / world through --waveform), and copy "
                    "synthesis of the original's own features: copy-hn, copy-world, copy-gl, "
                    "copy-runs and copy-unit-means (the original's log-mel averaged over each "
                    "run of equal units / over all frames of each unit, through --waveform), "
                    "copy-voice-means / copy-voice-context (each unit's spectrum, or each unit's "
                    "between its neighbouring runs' units, pooled over the voice's other "
                    "utterances of --data); the drawn F0 split (a vocoder that draws its F0): "
                    "hn-drawn-f0 (the drawn contour through the source-F0 path), hn-src-voicing "
                    "(drawn pitch, source voicing), hn-src-pitch (source pitch, drawn voicing)")
    er.add_argument("--waveform", help="harmonic-plus-noise waveform stage directory (RUN/model "
                    "of 'train vocoder --config configs/vocoder/hn-cpu.toml') for the hn methods")
    er.add_argument("--asr", default="whisper,pocketsphinx",
                    help="ASR judges, comma-separated; the first is the main WER column")
    er.add_argument("--seed", type=int, default=0, help="utterance sampling seed")
    er.add_argument("--audio-out", help="also write the resynthesized audio here")
    er.add_argument("--reference-perturb", metavar="NAME",
                    help="compute each voice from a perturbed copy of the utterance (units, "
                    "source F0 and judges keep the clean one): noise<SNR>dB (white noise, e.g. "
                    "noise10dB), reverb, pitch+300, ... (speechlm.eval.robustness)")
    er.add_argument("--voice-from", choices=("self", "other"), default="self",
                    help="the voice reference: the utterance itself (default), or another "
                    "utterance of the same voice (the fair test of --voice-adapt-steps)")
    er.add_argument("--unit-oracle", choices=("corrected", "phones"),
                    help="a diagnostic: the units corrected by each utterance's reference phones "
                    "(.phn; utterances without one are left out) before the vocoder speaks them: "
                    "'corrected' replaces the frames whose unit belongs to another phone, "
                    "'phones' gives every frame its phone's most frequent unit "
                    "(speechlm.eval.unit_oracle; the table is fitted on 300 aligned train "
                    "utterances of --corpus)")
    add_input_args(er)
    add_report_args(er)
    er.set_defaults(func=cmd_eval_resynth)

    def compare_parser(name: str, what: str, help_: str, description: str, func) -> None:
        c = add_parser(evsub, name, help=help_, description=description)
        c.add_argument("base", help=f"the reference report (eval {what} --json)")
        c.add_argument("other", help="the report compared with it")
        c.add_argument("--samples", type=number(int, 100, 100_000), default=2000,
                       help="bootstrap resamples")
        c.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        add_report_args(c)
        c.set_defaults(func=func)

    compare_parser("compare-resynth", "resynth", "paired differences between two resynthesis "
                   "reports", "Two 'eval resynth' JSON reports of the same utterances (two "
                   "vocoders, or two exports of one): OTHER - BASE of WER, speaker similarity "
                   "and DNSMOS per method and voice group, with 95%% paired bootstrap intervals.",
                   cmd_eval_compare_resynth)
    compare_parser("compare-continue", "continue", "paired differences between two "
                   "continuation reports", "Two 'eval continue' JSON reports of the same prompts "
                   "and seeds (two vocoders, LMs or settings): OTHER - BASE of speaker "
                   "similarity, its margin over the closest other voice, the share of voices "
                   "kept, DNSMOS and dictionary words per second, with 95%% bootstrap intervals "
                   "over prompts.", cmd_eval_compare_continue)
    compare_parser("compare-lm", "lm", "paired differences between two LM reports' probes",
                   "Two 'eval lm --probes' JSON reports of the same probe sets (two LMs): "
                   "OTHER - BASE of the spot-the-word and acceptability accuracies over the "
                   "trials both scored, with 95%% bootstrap intervals over pairs, per voice, "
                   "and each one's test perplexity.", cmd_eval_compare_lm)

    es = add_parser(evsub, "speaker", help="equal error rate of a speaker encoder on held-out "
                    "voices", description="Verification trials (same voice vs different voices, "
                    "seeded) on the world corpus's held-out engines and on known voices' "
                    "held-out sentences: the EER of the speaker encoder, of Resemblyzer (the "
                    "judge) and of a trivial baseline (mean log-mel cosine).")
    es.add_argument("--model", required=True, help="speaker encoder directory (RUN/model)")
    es.add_argument("--corpus", default="data/corpus-v2", help="corpus directory")
    es.add_argument("--splits", default="heldout,test", help="comma-separated splits")
    es.add_argument("--per-voice", type=int, default=4, help="utterances per voice")
    es.add_argument("--trials", type=int, default=1000, help="target (and impostor) trials")
    es.add_argument("--seed", type=int, default=0)
    es.add_argument("--no-judge", action="store_true", help="skip the Resemblyzer column")
    add_report_args(es)
    es.set_defaults(func=cmd_eval_speaker)

    ec = add_parser(evsub, "continue", help="the continuation report: voice, quality, content, "
                    "loops, speaking rate", description="Continue held-out prompts (the first "
                    "seconds of each utterance) several times and judge the continuations.")
    ec.add_argument("--data", default="test",
                    help="split name of --corpus, a manifest .tsv, or a folder of wavs")
    ec.add_argument("--corpus", default="data/corpus-v2", help="corpus directory for split names")
    ec.add_argument("--wav-dir", help="judge your own recordings instead: a folder of audio "
                    "files (DIR/*.wav for one speaker, DIR/SPEAKER/*.wav for several), with "
                    "transcripts in DIR/texts.tsv (file<TAB>text[<TAB>speaker]) or FILE.txt")
    ec.add_argument("--reference-voices", metavar="DATA", help=REFERENCE_VOICES_HELP)
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
    ec.add_argument("--prompt-perturb", metavar="NAME",
                    help="the model hears a perturbed copy of each prompt (its units and voice); "
                    "the judges compare with the clean one: noise<SNR>dB (white noise, e.g. "
                    "noise20dB), reverb, ... (speechlm.eval.robustness)")
    ec.add_argument("--rescore", metavar="REPORT.json", help="run nothing: summarise a saved "
                    "report (--json of an earlier run) again from its per-prompt records, "
                    "with this version's intervals")
    add_report_args(ec)
    ec.set_defaults(func=cmd_eval_continue)
