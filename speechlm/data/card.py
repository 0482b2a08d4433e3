"""The corpus card: ``docs/corpus.md``'s measured part, written from ``corpus.json``."""

from __future__ import annotations

from pathlib import Path

from speechlm.data.engines import ENGINES
from speechlm.data.voices import BASE_VOICES, HELD_OUT, IDENTITIES_PER_VOICE
from speechlm.io import write_text_atomic

BEGIN, END = "<!-- card:begin -->", "<!-- card:end -->"


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def card_markdown(s: dict) -> str:
    """The measured tables of the card for a ``world`` corpus summary."""
    lines = [f"Built with `--hours {s['budget_hours']}`" if s.get("budget_hours") else
             "Full build", "", f"* total: **{s['hours']:.2f} h**, {s['speakers']} identities "
             f"of {len(s['base_voices'])} base voices; phone alignments for "
             f"**{100 * s['aligned_share']:.1f} %** of the hours",
             f"* build time on this machine: {s['build_wall_hours'] * 60:.1f} min wall "
             "(all runs added up)", ""]
    rows = [[k, d["utterances"], f"{d['hours']:.3f}", d["words"], d["sentences"],
             d["identities"], d["base_voices"],
             f"{100 * d['aligned_hours'] / max(d['hours'], 1e-9):.0f} %"]
            for k, d in s["splits"].items()]
    lines += _table(["split", "utterances", "hours", "words", "distinct sentences",
                     "identities", "base voices", "aligned"], rows)
    lines += ["", "Per engine and split (hours / identities):", ""]
    engines = sorted({e for d in s["splits"].values() for e in d["per_engine"]})
    rows = [[e] + [f"{d['per_engine'][e]['hours']:.3f} / {d['per_engine'][e]['identities']}"
                   if e in d["per_engine"] else "-" for d in s["splits"].values()]
            for e in engines]
    lines += _table(["engine", *s["splits"]], rows)
    lines += ["", "Synthesis rate of one worker process, measured during the build (audio "
              "seconds per wall second of its chunks, niced; `--jobs N` runs N workers at once; "
              "includes perturbation, FLAC and alignment writing):", ""]
    rows = [[e, f"{r['x_real_time']}x", r["utterances"], f"{r['audio_hours']:.3f}"]
            for e, r in s["engine_rates"].items()]
    lines += _table(["engine", "x real time", "utterances", "audio hours"], rows)
    tp = s["text_pool"]
    lines += ["", f"Text pool: {tp['sentences']:,} distinct sentences, {tp['words']:,} words "
              f"(train/valid/test sentences: {tp['per_split']}).", ""]
    rows = [[k, f"{v.get('sentences', 0):,}", f"{v.get('words', 0):,}", v.get("licence", ""),
             v.get("package", "")] for k, v in tp["sources"].items()]
    lines += _table(["source", "sentences", "words", "licence", "Debian package"], rows)
    lines += ["", "Held-out voices (never in train or valid; they read the `heldout` split): "
              + ", ".join(f"`{v}`" for v in s["held_out_base_voices"]) + "."]
    if s.get("skipped_voices"):
        lines += ["", "Skipped (not installed): " + "; ".join(
            f"{k} ({v})" for k, v in s["skipped_voices"].items())]
    return "\n".join(lines)


def voices_markdown() -> str:
    """The static table of base voices, engines and licences."""
    said = {"engine": "yes", "predicted": "predicted durations"}
    rows = [[b.name, b.engine, b.voice, b.sex, said.get(b.alignment, "no"),
             "**held out**" if b.name in HELD_OUT else "", ENGINES[b.engine].licence]
            for b in BASE_VOICES]
    return "\n".join(_table(["base voice", "engine", "engine voice", "sex", "aligned",
                             "split", "licence"], rows)) + \
        f"\n\nEach base voice has {IDENTITIES_PER_VOICE} identities ({len(BASE_VOICES)} x " \
        f"{IDENTITIES_PER_VOICE} = {len(BASE_VOICES) * IDENTITIES_PER_VOICE})."


def write_card(summary: dict, path: Path) -> None:
    """Replace the measured block (between the card markers) of ``path``; create the file with
    just that block when it does not exist."""
    block = f"{BEGIN}\n{card_markdown(summary)}\n\n{voices_markdown()}\n{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Corpus card\n\n{block}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    write_text_atomic(path, text)
