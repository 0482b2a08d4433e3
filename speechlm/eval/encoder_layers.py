"""Which layer of an SSL encoder makes the best units? PNMI of a quick k-means per layer.

    python -m speechlm.eval.encoder_layers --model outputs/encoder-cpu/model [--best]

One pass over a random subset of the train split collects frames of every layer (0: the
transformer input, L: the output of block L, as in :func:`speechlm.ssl.extract_layer`)
and fits a k-means per layer; a second pass over aligned valid utterances measures each layer's
PNMI against the frame phone labels (as ``speechlm eval tokenizer`` does for one tokenizer).
The k-means is smaller and cruder than ``speechlm train tokenizer``'s, so the numbers rank the
layers; the chosen layer's real tokenizer is then evaluated with ``speechlm eval tokenizer``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from speechlm.audio import FRAME_SIZE, load_audio
from speechlm.data.manifest import Utterance, read_manifest, read_phn, resolve_manifest
from speechlm.errors import DataError, SpeechLMError

log = logging.getLogger(__name__)


def _subset(items: list[Utterance], n: int, rng: np.random.Generator) -> list[Utterance]:
    if len(items) <= n:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]


def _all_layers(model: torch.nn.Module, path: Path, normalize: bool) -> list[torch.Tensor]:
    """Layer 0 (the transformer input) and the output of every block, ``[F, D]`` each, for
    one file."""
    from speechlm.ssl import extract_layer

    wav = load_audio(path, min_samples=FRAME_SIZE)[None]
    with torch.inference_mode():
        first, _ = extract_layer(model, wav, 0, normalize=normalize)
        if normalize:
            wav = torch.nn.functional.layer_norm(wav, wav.shape[-1:])
        outs, _ = model.extract_features(wav)
    return [first[0]] + [o[0] for o in outs]


def layer_pnmi(model_path: str | os.PathLike, corpus: str | os.PathLike = "data/corpus",
               k: int = 100, fit_utterances: int = 400, eval_utterances: int = 200,
               max_frames: int = 40_000, seed: int = 0, progress: bool = True) -> dict:
    """PNMI, phone purity and cluster purity of a K-means on each layer of ``model_path``.

    Args:
        model_path: Any checkpoint :func:`speechlm.ssl.load_ssl_model` reads.
        corpus: Corpus with ``train`` and ``valid`` manifests and ``.phn`` alignments.
        k: Clusters per layer.
        fit_utterances: Train utterances whose frames fit the k-means.
        eval_utterances: Aligned valid utterances the PNMI is measured on.
        max_frames: Frames per layer kept for fitting (sampled uniformly).

    Returns:
        ``{"model", "k", ..., "layers": [{"layer", "pnmi", "phone_purity",
        "cluster_purity"}, ...], "best_layer"}``.
    """
    from speechlm.eval.metrics import phone_unit_stats
    from speechlm.eval.tokenizer import frame_labels
    from speechlm.quantizer import fit_kmeans
    from speechlm.ssl import load_ssl_model

    model, info = load_ssl_model(model_path)
    rng = np.random.default_rng(seed)
    fit_items = _subset(read_manifest(resolve_manifest("train", corpus)), fit_utterances, rng)
    aligned = [u for u in read_manifest(resolve_manifest("valid", corpus)) if u.phn_path.exists()]
    if not aligned:
        raise DataError(f"no valid utterance of {corpus} has a phone alignment (.phn)")
    eval_items = _subset(aligned, eval_utterances, rng)

    total = sum(u.num_samples // 320 for u in fit_items)
    keep = min(1.0, max_frames / max(total, 1))
    n_layers = info.num_layers + 1  # layer 0 = transformer input, as extract_layer counts
    feats: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    for u in tqdm(fit_items, desc="layer features", unit="utt", disable=not progress):
        layers = _all_layers(model, u.path, info.normalize_waveform)
        pick = rng.random(layers[0].shape[0]) < keep
        for i, x in enumerate(layers):
            feats[i].append(x.numpy()[pick])
    quantizers = []
    for i in range(n_layers):
        q, _ = fit_kmeans(np.concatenate(feats[i]), k, seed=seed, n_init=1)
        quantizers.append(q)
        feats[i] = []

    phone_ids: dict[str, int] = {}
    units: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    phones = []
    for u in tqdm(eval_items, desc="layer PNMI", unit="utt", disable=not progress):
        layers = _all_layers(model, u.path, info.normalize_waveform)
        labels = frame_labels(read_phn(u.phn_path), layers[0].shape[0])
        phones.append(np.array([phone_ids.setdefault(lab, len(phone_ids)) if lab is not None else -1
                                for lab in labels]))
        for i, x in enumerate(layers):
            units[i].append(quantizers[i].encode(x).numpy())
    y = np.concatenate(phones)
    rows = []
    for i in range(n_layers):
        s = phone_unit_stats(np.concatenate(units[i]), y, k, max(1, len(phone_ids)))
        rows.append({"layer": i, "pnmi": round(s.pnmi, 4),
                     "phone_purity": round(s.phone_purity, 4),
                     "cluster_purity": round(s.cluster_purity, 4)})
    best = max(rows, key=lambda r: r["pnmi"])["layer"]
    return {"model": str(model_path), "k": k, "corpus": str(corpus),
            "fit_utterances": len(fit_items), "eval_utterances": len(eval_items),
            "layers": rows, "best_layer": best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m speechlm.eval.encoder_layers",
                                description="PNMI of a k-means on each layer of an SSL encoder; "
                                "the best layer is the one to tokenize.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="encoder directory or checkpoint")
    p.add_argument("--corpus", default="data/corpus", help="corpus with train/valid + .phn")
    p.add_argument("--k", type=int, default=100, help="clusters per layer")
    p.add_argument("--fit-utterances", type=int, default=400, help="train utterances to fit")
    p.add_argument("--eval-utterances", type=int, default=200, help="valid utterances to score")
    p.add_argument("--max-frames", type=int, default=40_000, help="frames per layer to fit")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--best", action="store_true",
                   help="print only the best layer's number (for scripts)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        report = layer_pnmi(args.model, args.corpus, k=args.k,
                            fit_utterances=args.fit_utterances,
                            eval_utterances=args.eval_utterances, max_frames=args.max_frames,
                            seed=args.seed, progress=not args.quiet)
    except SpeechLMError as err:
        print(f"speechlm: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        from speechlm.io import write_json_atomic

        write_json_atomic(args.json, report)
    if args.best:
        print(report["best_layer"])
    else:
        print(json.dumps(report, indent=2))
    for r in report["layers"]:
        log.info("layer %d: PNMI %.4f", r["layer"], r["pnmi"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
