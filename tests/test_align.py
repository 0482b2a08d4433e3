"""Forced alignment (speechlm.data.align): the Viterbi path, its segments, espeak-ng's phones,
a corpus aligned and resumed, and the phone trainer reading the labels."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechlm.audio import FRAME_SIZE, HOP_SIZE
from speechlm.data.align import (
    CLASS_ID,
    alignment_states,
    dialect_of,
    frame_labels,
    path_segments,
    phonemize,
    viterbi_align,
)
from speechlm.data.manifest import Utterance, read_manifest
from speechlm.data.phones import CLASSES
from speechlm.errors import DataError

REPO = Path(__file__).resolve().parents[1]
ENCODER = REPO / "speechlm" / "pretrained" / "phone-k100" / "encoder"
TINY = REPO / "configs" / "encoder" / "phone-tiny.toml"
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng missing")
pytestmark = pytest.mark.usefixtures("one_thread")


def _frames_for(ids: np.ndarray, durations: list[int], sharp: float = 8.0) -> np.ndarray:
    """Log-probabilities [F, C] that favour state k's class for durations[k] frames."""
    labels = np.repeat(ids, durations)
    logits = np.random.default_rng(0).normal(0, 1, (len(labels), len(CLASSES)))
    logits[np.arange(len(labels)), labels] += sharp
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_viterbi_recovers_the_path_and_skips_absent_silences():
    ids, optional = alignment_states([["HH", "AH"], ["L", "OW"]])
    assert [CLASSES[i] for i in ids] == ["SIL", "HH", "AH", "SIL", "L", "OW", "SIL"]
    assert optional.tolist() == [True, False, False, True, False, False, True]
    # no leading silence, a pause between the words, none at the end
    keep = np.array([1, 2, 3, 4, 5])
    durations = [3, 5, 4, 6, 7]
    logp = _frames_for(ids[keep], durations)
    path, score = viterbi_align(logp, ids, optional)
    assert path.tolist() == np.repeat(keep, durations).tolist()
    assert -1.0 < score < 0.0
    # a word run straight into the next: the middle silence is skipped too
    keep = np.array([0, 1, 2, 4, 5, 6])
    durations = [2, 3, 3, 4, 4, 5]
    path, _ = viterbi_align(_frames_for(ids[keep], durations), ids, optional)
    assert path.tolist() == np.repeat(keep, durations).tolist()
    # fewer frames than phones that cannot be skipped: no path
    assert viterbi_align(logp[:3], ids, optional) is None


def test_path_segments_put_each_frame_centre_in_its_phone():
    ids, optional = alignment_states([["S", "OW"]])
    path = np.repeat(np.array([0, 1, 2, 3]), [2, 3, 4, 2])
    n = (len(path) - 1) * HOP_SIZE + FRAME_SIZE + 37
    segs = path_segments(path, ids, n)
    assert [p for _, _, p in segs] == ["SIL", "S", "OW", "SIL"]
    assert segs[0][0] == 0 and segs[-1][1] == n
    assert all(a < b for a, b, _ in segs) and all(s[1] == t[0] for s, t in zip(segs, segs[1:]))
    assert frame_labels(segs, len(path)).tolist() == ids[path].tolist()


@needs_espeak
def test_phonemize_reads_words_into_arpabet():
    words = phonemize("Hello, world.")
    assert len(words) == 2 and words[0][0] == "HH" and words[1][0] == "W"
    assert all(p in CLASS_ID and p != "SIL" for w in words for p in w)
    assert phonemize("") == []


def test_dialect_follows_an_espeak_voice_else_american():
    u = Utterance("x/1", Path("/c/espeak_gb_m1-f100/1.flac"), 16000,
                  speaker="espeak_gb_m1-f100p100g100r100")
    assert dialect_of(u) == "en-gb"
    other = Utterance("x/2", u.path, 16000, speaker="rhvoice_slt-f100p100g100r100")
    assert dialect_of(other) == "en-us"
    nyc = Utterance("x/3", u.path, 16000, speaker="espeak_us-nyc_f5-f96p88g60r115")
    assert dialect_of(nyc) == "en-us-nyc"  # a dialect with a "-" in the voice's name
    assert dialect_of(Utterance("x/4", u.path, 16000, speaker="espeak_us-nyc_f5")) == "en-us-nyc"


@needs_espeak
def test_align_corpus_labels_resumes_and_feeds_the_trainer(small_corpus, tmp_path):
    """The small corpus's espeak-ng voice has no engine labels, the others have: the labels
    made for an engine-labelled voice agree with the engine's better than the bundled encoder's
    argmax does; the espeak-ng voice is the one aligned by default, a rerun aligns nothing
    again, and the trainer's set gains its utterances."""
    from speechlm.data.align import align_corpus, read_records
    from speechlm.train.phone import AlignedSet

    items = read_manifest(small_corpus / "train.tsv")
    bare = [u for u in items if not u.phn_path.exists()]
    assert bare and {u.speaker for u in bare} == {"espeak_us_m3"}
    labelled = [u for u in items if u.speaker == "fest_kal"]
    encoder = ENCODER

    check = align_corpus(labelled, encoder, tmp_path / "check", include_aligned=True,
                         progress=False)
    row = check["voices"]["fest_kal"]
    assert row["utterances"] == len(labelled) == row["compared"] == row["kept"]
    assert row["frame_agreement_forced"] > row["frame_agreement_argmax"]
    assert row["frame_agreement_forced"] > 0.6

    out = tmp_path / "align"
    summary = align_corpus(items, encoder, out, progress=False)
    assert list(summary["voices"]) == ["espeak_us_m3"]
    assert summary["voices"]["espeak_us_m3"]["utterances"] == len(bare)
    assert json.loads((out / "align.json").read_text()) == summary
    rows = read_records(out)
    assert set(rows) == {u.name for u in bare}
    kept = sorted(n for n, r in rows.items() if r["kept"])
    assert len(kept) == summary["voices"]["espeak_us_m3"]["kept"] > len(bare) // 2
    labels = {n: (out / f"{n}.phn").read_text() for n in kept}
    assert all(len(t.splitlines()) > 5 for t in labels.values())
    # resumed: nothing is aligned again (a label changed by hand stays), the summary the same
    (out / f"{kept[0]}.phn").write_text("0 1 SIL\n")
    assert align_corpus(items, encoder, out, progress=False) == summary
    assert (out / f"{kept[0]}.phn").read_text() == "0 1 SIL\n"
    (out / f"{kept[0]}.phn").write_text(labels[kept[0]])

    plain = AlignedSet(small_corpus, "train", 0.5)
    forced = AlignedSet(small_corpus, "train", 0.5, forced=out)
    assert plain.forced == 0 and forced.forced == len(kept)
    assert len(forced) == len(plain) + len(kept)
    assert "espeak_us_m3" in forced.speakers() and "espeak_us_m3" not in plain.speakers()
    # the trainer: forced labels for training crops only
    import torch

    from speechlm.train.encoder import load_config
    from speechlm.train.phone import PhoneTask

    cfg = load_config(TINY, [
        f"--data.corpus={small_corpus}", "--data.max_utterances=0",
        f"--data.forced_alignments={out}", f"--train.out={tmp_path / 'run'}"])
    task = PhoneTask(cfg)
    task.build(torch.device("cpu"), 0, 1)
    assert task.sets["train"].forced == len(kept) and task.sets["valid"].forced == 0
    assert "force-aligned" in task.describe(task.build(torch.device("cpu"), 0, 1))


def test_trainer_refuses_a_missing_alignment_directory(tmp_path):
    from speechlm.train.encoder import load_config

    with pytest.raises(DataError, match="forced_alignments"):
        load_config(TINY, [f"--data.forced_alignments={tmp_path}"])


def test_align_cli_bad_encoder_exits_2(tmp_path, capsys):
    from speechlm.cli import main

    assert main(["corpus", "align", "--out", str(tmp_path / "o"), "--encoder",
                 str(tmp_path)]) == 2
    assert "not a phone encoder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["corpus", "align", "--out", str(blocker / "o"), "--encoder", str(ENCODER),
                 "--manifest", str(blocker), "-q"]) == 2  # an empty manifest
    assert "empty" in capsys.readouterr().err


def test_align_cli_unwritable_out_exits_2_and_writes_nothing(small_corpus, tmp_path, capsys):
    from speechlm.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["corpus", "align", "--corpus", str(small_corpus), "--out",
                 str(blocker / "o"), "--encoder", str(ENCODER), "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot write forced alignments" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == ""
