"""What the benchmarks share: speech to run on (held-out corpus utterances when the corpus is
built, else the bundled samples, so every benchmark runs from a fresh clone; ``make corpus`` for
the full set) and the JSON result they print and optionally write."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def speech_files(data: str = "test", every: int = 1, limit: int | None = None,
                 corpus: str | Path | None = None) -> list[Path]:
    """Every ``every``-th utterance of split ``data`` of ``corpus`` (default ``data/corpus``;
    or a manifest), at most ``limit``; the bundled ``samples/*.wav`` when the corpus is not
    there."""
    corpus = Path(corpus) if corpus else REPO / "data" / "corpus"
    if data.endswith(".tsv") or (corpus / f"{data}.tsv").is_file():
        from speechlm.eval.harness import select_items

        paths = [it.path for it in select_items(data, corpus, 0, 0)][::every]
    else:
        paths = sorted((REPO / "samples").glob("*.wav"))
        print(f"note: {corpus}/{data}.tsv not found, so the benchmark uses the "
              f"{len(paths)} bundled samples (build the corpus with 'make corpus' for the "
              "held-out test split)", file=sys.stderr)
    return paths[:limit] if limit else paths


def emit(result: dict, json_path: str | None) -> int:
    """Print ``result`` as JSON and, with ``json_path``, write it there atomically; returns 0."""
    print(json.dumps(result, indent=2))
    if json_path:
        from speechlm.io import write_json_atomic

        write_json_atomic(json_path, result)
    return 0
