"""``speechlm corpus synth``: build a synthetic training corpus (``world`` or ``arctic15``);
``speechlm corpus align``: phone labels by forced alignment for the voices without any;
``speechlm corpus real``: a real human voice to judge on (the Asterisk prompts);
``speechlm corpus words``: isolated words spoken by the training voices."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechlm.cli.common import Parser, number


def cmd_corpus_synth(args: argparse.Namespace) -> int:
    if args.preset == "world":
        from speechlm.data.build import synth_world
        from speechlm.data.card import write_card

        voices = args.voices.split(",") if args.voices else None
        summary = synth_world(args.out, hours=args.hours, small=args.small, shard=args.shard,
                              jobs=args.jobs, voices=voices, text_pool_file=args.text_pool,
                              arctic_text=args.text, progress=not args.quiet)
        if not summary.get("complete"):
            print(json.dumps(summary))
            return 0
        if args.card:
            write_card(summary, Path(args.card))
        print(json.dumps({k: summary[k] for k in ("hours", "speakers", "aligned_share")} |
                         {s: {k: v for k, v in d.items() if k != "per_engine"}
                          for s, d in summary["splits"].items()}, indent=2))
        return 0
    from speechlm.data.corpus import synth_corpus, voices_by_name

    voices = voices_by_name(args.voices.split(",")) if args.voices else None
    summary = synth_corpus(args.out, text=args.text, voices=voices, small=args.small,
                           limit=args.limit, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps({k: summary[k] for k in ("hours", "speakers")} |
                     {s: {k: v for k, v in d.items() if k != "hours_per_speaker"}
                      for s, d in summary["splits"].items()}, indent=2))
    return 0


def _phone_encoder(name: str) -> Path:
    """A phone encoder directory, or a tokenizer (a bundled name or a path) holding one."""
    from speechlm.checkpoint import resolve
    from speechlm.errors import DataError, ModelError
    from speechlm.ssl.phone import is_phone_encoder

    path = Path(name)
    if not is_phone_encoder(path):
        try:
            path = resolve(name) / "encoder"
        except ModelError:
            pass
    if not is_phone_encoder(path):
        raise DataError(f"--encoder {name}: not a phone encoder, nor a tokenizer with one")
    return path


def cmd_corpus_align(args: argparse.Namespace) -> int:
    from speechlm.data.align import MIN_SCORE, align_corpus
    from speechlm.data.manifest import read_manifest, resolve_manifest

    encoder = _phone_encoder(args.encoder)
    items = []
    for m in args.manifest or ["train"]:
        items += read_manifest(resolve_manifest(m, args.corpus))
    if args.max_utterances:
        items = items[: args.max_utterances]
    min_score = MIN_SCORE if args.min_score is None else args.min_score
    summary = align_corpus(items, encoder, args.out, min_score=min_score,
                           include_aligned=args.all, progress=not args.quiet,
                           name=args.encoder)
    if args.markdown:
        from speechlm.data.align import markdown
        from speechlm.io import write_text_atomic

        write_text_atomic(args.markdown, markdown(summary, f"Forced alignment: "
                                                  f"{', '.join(args.manifest or ['train'])}"))
    print(json.dumps(summary, indent=1))
    return 0


def cmd_corpus_real(args: argparse.Namespace) -> int:
    from speechlm.data.real import build_real_voice

    summary = build_real_voice(args.sounds, args.texts, args.out, fmt=args.format,
                               min_words=args.min_words, max_utterances=args.max_utterances,
                               progress=not args.quiet)
    print(json.dumps(summary, indent=1))
    return 0


def cmd_corpus_words(args: argparse.Namespace) -> int:
    from speechlm.data.words import build_words

    card = build_words(args.corpus, args.out, count=args.count, pseudo=args.pseudo,
                       seed=args.seed, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps(card, indent=1))
    return 0


def register(sub, add_parser) -> None:
    """``corpus synth``, ``corpus align``, ``corpus real``, ``corpus words``."""
    c = add_parser(sub, "corpus", help="build a training corpus")
    csub = c.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=Parser)
    csub.required = True
    cs = add_parser(csub, "synth", help="synthesize a multi-speaker corpus",
                         description="Synthesize a multi-speaker corpus into DIR (resumable, "
                         "deterministic), with manifests per split. 'arctic15': the CMU ARCTIC "
                         "prompts in 15 voices (the bundled models' corpus). 'world': a million "
                         "words in 248 voice identities of 7 engines (docs/corpus.md).")
    cs.add_argument("--out", required=True, help="output directory")
    cs.add_argument("--preset", choices=("arctic15", "world"), default="arctic15",
                    help="which corpus to build")
    cs.add_argument("--text", help="ARCTIC prompt file (default: ../shared/data/cmuarctic.data)")
    cs.add_argument("--small", action="store_true", help="a corpus of a few minutes for tests")
    cs.add_argument("--voices", help="comma-separated voice names (arctic15: voices; world: "
                    "base voices; default: all)")
    cs.add_argument("--limit", type=int, help="arctic15: use only the first N sentences")
    cs.add_argument("--hours", type=float, help="world: about this many hours of train "
                    "(a hash-ordered subset of the full corpus; default: everything)")
    cs.add_argument("--shard", help="world: synthesize only shard I/N (0-based); run again "
                    "without --shard to write the manifests")
    cs.add_argument("--text-pool", help="world: a file of sentences to use instead of the "
                    "Debian text sources")
    cs.add_argument("--card", help="world: write the corpus card (markdown) here")
    cs.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    cs.set_defaults(func=cmd_corpus_synth)

    ca = add_parser(csub, "align", help="phone labels by forced alignment",
                    description="Label the utterances whose engine reports no phone times "
                    "(espeak-ng, RHVoice): the text read by espeak-ng in the voice's dialect, "
                    "Viterbi-aligned to a phone encoder's frames. Writes OUT/<utterance>.phn, "
                    "OUT/align.tsv (a row per utterance) and OUT/align.json (per voice: kept, "
                    "mean score, and with --all the frame agreement of the forced and the "
                    "argmax labels with the engine's). Resumable. The phone trainer reads "
                    "OUT with data.forced_alignments=OUT.")
    ca.add_argument("--corpus", default="data/corpus-v2", help="corpus directory")
    ca.add_argument("--manifest", action="append", default=None,
                    help="split name or manifest path (repeatable; none: train)")
    ca.add_argument("--encoder", default="phone-k100",
                    help="phone encoder directory, or a tokenizer holding one")
    ca.add_argument("--out", required=True, help="output directory")
    ca.add_argument("--min-score", type=float,
                    help="mean log-probability per frame below which an alignment is dropped "
                    "(none: -2.5)")
    ca.add_argument("--all", action="store_true",
                    help="align utterances with engine labels too (to measure the labels)")
    ca.add_argument("--max-utterances", type=int, default=0, help="only the first N")
    ca.add_argument("--markdown", help="also write the summary as a markdown table here")
    ca.set_defaults(func=cmd_corpus_align)

    cr = add_parser(csub, "real", help="a real human voice to judge on (Asterisk prompts)",
                    description="Write the Asterisk PBX's English prompts (Allison Smith, "
                    "CC BY-SA 3.0; Debian asterisk-core-sounds-en-g722 or -wav, transcripts "
                    "in asterisk-core-sounds-en) as a folder of 16 kHz wavs with texts.tsv, "
                    "for --wav-dir of eval resynth / eval continue, with a manifest and "
                    "pocketsphinx's forced phone labels for eval tokenizer. Keeps prompts of "
                    "--min-words or more words without digits or bracketed sounds. "
                    "scripts/build_real_voice.sh fetches the packages and runs this.")
    cr.add_argument("--sounds", required=True,
                    help="the unpacked package's usr/share/asterisk/sounds/en_US_f_Allison")
    cr.add_argument("--texts", help="core-sounds-en.txt[.gz]; none: a voice without "
                    "transcripts, a reference for eval's --reference-voices only (the "
                    "--max-utterances largest files)")
    cr.add_argument("--out", required=True, help="output folder (replaced when complete)")
    cr.add_argument("--format", choices=("g722", "wav"), default="g722",
                    help="g722: 16 kHz wideband (needs PyAV); wav: the 8 kHz telephone band, "
                    "resampled")
    cr.add_argument("--min-words", type=int, default=3, help="shortest prompt kept, in words")
    cr.add_argument("--max-utterances", type=int, default=0,
                    help="keep at most N (without --texts: the largest files; 0: all)")
    cr.set_defaults(func=cmd_corpus_real)

    cw = add_parser(csub, "words", help="isolated words spoken by the training voices",
                    description="Synthesize --count isolated items into DIR for the phone "
                    "head's training (data.words): words of the corpus's training transcripts "
                    "and --pseudo of them pseudo-words (one consonant letter changed), never a "
                    "probe item, each spoken by one training identity of an engine that reports "
                    "phone times (flite, festival, MBROLA), as a corpus utterance is. Writes "
                    "audio/, train.tsv (.spk, .wrd) and words.json; resumable.")
    cw.add_argument("--corpus", default="data/corpus-v2", help="the world corpus whose "
                    "transcripts and training voices are used")
    cw.add_argument("--out", required=True, help="output directory")
    cw.add_argument("--count", type=number(int, 1, 1_000_000), default=4000,
                    help="items to synthesize")
    cw.add_argument("--pseudo", type=number(float, 0, 1), default=0.3,
                    help="share of pseudo-words")
    cw.add_argument("--seed", type=int, default=0, help="seed of the items and their voices")
    cw.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    cw.set_defaults(func=cmd_corpus_words)
