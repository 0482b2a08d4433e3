import json

import pytest
import torch

from speechlm.audio import load_audio
from speechlm.data.manifest import read_manifest
from speechlm.errors import AudioError, ModelError
from speechlm.tokenizer import Tokenizer


def test_bundled_default_loads_offline():
    tok = Tokenizer.load()
    assert tok.n_units == 41 and tok.frame_rate == 50.0 and tok.sample_rate == 16000
    assert tok.unit_space.startswith("wphone-")
    assert Tokenizer.load("whisper-k100").unit_space.startswith("whisper-tiny.en-l3-")
    assert Tokenizer.load("phone-k100").unit_space.startswith("phone-encoder-")


def test_chunked_file_equals_whole_file(small_tokenizer, wav_file):
    tok = Tokenizer.load(small_tokenizer)
    p = wav_file(7.3, sr=44100)
    whole = tok.tokenize_file(p, chunk_frames=100_000)
    for chunk in (1, 37, 100):
        assert torch.equal(tok.tokenize_file(p, chunk_frames=chunk).ids, whole.ids)
    assert len(whole) == (load_audio(p).numel() - 400) // 320 + 1


def test_file_and_waveform_paths_agree(small_tokenizer, wav_file):
    tok = Tokenizer.load(small_tokenizer)
    p = wav_file(2.0)
    assert torch.equal(tok(p).ids, tok(load_audio(p)).ids)


def test_deterministic(small_tokenizer, small_corpus):
    tok = Tokenizer.load(small_tokenizer)
    f = next((small_corpus / "wav" / "flite_slt").glob("*.wav"))
    a, b = tok(f, dedup=True), Tokenizer.load(small_tokenizer)(f, dedup=True)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.durations, b.durations)
    assert a.ids.max() < 16 and len(set(a.ids.tolist())) > 3


def test_batched_encode_equals_single(small_tokenizer, small_corpus):
    tok = Tokenizer.load(small_tokenizer)
    files = sorted((small_corpus / "wav" / "flite_rms").glob("*.wav"))[:3]
    waves = [load_audio(f) for f in files]
    lengths = torch.tensor([w.numel() for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    ids = tok.encode(batch, lengths)
    for i, w in enumerate(waves):
        single = tok(w).ids
        assert torch.equal(ids[i, : len(single)], single)
        assert (ids[i, len(single):] == -1).all()


def test_altered_weights_are_refused(small_tokenizer, tmp_path):
    tok = Tokenizer.load(small_tokenizer)
    tok.save(tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    cfg["unit_space"] = "mfcc-k16-00000000"
    (tmp_path / "t" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="does not match the weights"):
        Tokenizer.load(tmp_path / "t")


def test_wrong_kind_and_missing_model(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"kind": "lm", "format_version": 1}')
    with pytest.raises(ModelError, match="holds a 'lm' model, expected a 'tokenizer'"):
        Tokenizer.load(tmp_path / "m")
    with pytest.raises(ModelError, match="no model named 'nope'"):
        Tokenizer.load("nope")


def test_short_waveform_is_refused():
    with pytest.raises(AudioError, match="shorter than one analysis frame"):
        Tokenizer.load()(torch.zeros(100))


def test_smoothing_names_a_new_unit_space_and_round_trips(small_tokenizer, small_corpus,
                                                          tmp_path):
    from speechlm.units import dedup

    tok = Tokenizer.load(small_tokenizer)
    smooth = tok.with_smoothing(0.5)
    assert smooth.unit_space != tok.unit_space and "-s0.5-" in smooth.unit_space
    f = next((small_corpus / "wav" / "flite_slt").glob("*.wav"))
    a, b = tok(f).ids, smooth(f).ids
    assert len(a) == len(b)
    assert len(dedup(b)[0]) < len(dedup(a)[0])  # fewer unit changes
    smooth.save(tmp_path / "s")
    again = Tokenizer.load(tmp_path / "s")
    assert again.unit_space == smooth.unit_space and again.smoothing == 0.5
    assert torch.equal(again(f).ids, b)
    # batched items follow their own frames only
    w = load_audio(f)
    batch = torch.zeros(2, w.numel() + 8000)
    batch[0, : w.numel()] = w
    ids = smooth.encode(batch, torch.tensor([w.numel(), 4000]))
    assert torch.equal(ids[0, : len(b)], b) and (ids[0, len(b):] == -1).all()
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["smoothing"] == 0.5
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ModelError, match="smoothing"):
            tok.with_smoothing(bad)


def test_bf16_precision_keeps_the_unit_space_and_nearly_every_unit(small_corpus):
    """The bundled phone tokenizer under bfloat16 autocast: same space, same length, and
    (on the small corpus's test files) at least 90 % of frames on the same unit."""
    from speechlm.data.manifest import read_manifest

    tok = Tokenizer.load("phone-k100")
    fast = tok.with_precision("bf16")
    assert fast.unit_space == tok.unit_space and fast.precision == "bf16"
    assert fast.with_smoothing(1.0).precision == "bf16"
    same = total = 0
    for u in read_manifest(small_corpus / "test.tsv")[:4]:
        a, b = tok.tokenize_file(u.path).ids, fast.tokenize_file(u.path).ids
        assert a.shape == b.shape
        same, total = same + int((a == b).sum()), total + len(a)
    assert same / total > 0.9
    with pytest.raises(ValueError, match="precision"):
        tok.with_precision("fp8")


def test_int8_precision_quantizes_a_copy_and_keeps_the_units_close(small_corpus, tmp_path):
    """The bundled default with its Whisper encoder's linear layers in int8: the same unit
    space and frame count, most deduplicated units kept (on the small corpus's test files),
    the float32 tokenizer untouched (its own units again), the workers' path equal to one
    file at a time; an int8 tokenizer is not saved, and an encoder without a network (MFCC)
    is refused."""
    from speechlm.data.manifest import read_manifest
    from speechlm.features import int8_encoder

    tok = Tokenizer.load("whisper-phone")
    fast = tok.with_precision("int8")
    assert fast.unit_space == tok.unit_space and fast.precision == "int8"
    assert fast.with_precision("int8") is fast
    assert type(fast.encoder.whisper.model.blocks[0].fc1) is not torch.nn.Linear
    assert type(tok.encoder.whisper.model.blocks[0].fc1) is torch.nn.Linear
    assert int8_encoder(fast.encoder) is fast.encoder
    paths = [u.path for u in read_manifest(small_corpus / "test.tsv")[:4]]
    before = [tok.tokenize_file(p) for p in paths]
    kept = total = 0
    for p, a, w in zip(paths, before, fast.tokenize_files(paths, workers=2)):
        b = fast.tokenize_file(p)
        assert torch.equal(w.ids, b.ids) and a.ids.shape == b.ids.shape
        assert torch.equal(tok.tokenize_file(p).ids, a.ids)
        x, y = a.dedup().ids.tolist(), b.dedup().ids.tolist()
        kept += sum(1 for i, j in zip(x, y) if i == j) if len(x) == len(y) else 0
        total += len(x)
    assert kept / total > 0.5
    changed = sum(int((a.ids != fast.tokenize_file(p).ids).sum()) for p, a in zip(paths, before))
    assert changed > 0  # the rounding is real
    with pytest.raises(ModelError, match="int8 tokenizer is not saved"):
        fast.save(tmp_path / "t")
    with pytest.raises(ModelError, match="load the tokenizer again"):
        fast.with_precision("fp32")
    with pytest.raises(ModelError, match="neural encoder"):
        Tokenizer.load("mfcc-k100").with_precision("int8")


@pytest.mark.parametrize("tokenizer", ["small", "phone-k100"])
def test_worker_threads_equal_one_file_at_a_time(tokenizer, small_tokenizer, wav_file):
    """tokenize_files over 2 worker threads (files and the chunks of a long file spread over
    them) gives what tokenize_file gives on one thread, in order, and restores torch's
    thread count."""
    tok = Tokenizer.load(small_tokenizer if tokenizer == "small" else tokenizer)
    files = [wav_file(s, name=f"w{i}.wav") for i, s in enumerate((0.7, 3.1, 1.3, 5.2))]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = [tok.tokenize_file(f, chunk_frames=60).ids for f in files]
    finally:
        torch.set_num_threads(before)
    for workers in (2, 3):
        got = list(tok.tokenize_files(files, workers=workers, chunk_frames=60))
        assert [len(u) for u in got] == [len(s) for s in single]
        assert all(torch.equal(u.ids, s) for u, s in zip(got, single))
    assert torch.get_num_threads() == before
    dedup = list(tok.tokenize_files(files[:2], dedup=True, workers=2))
    assert torch.equal(dedup[1].ids, tok.tokenize_file(files[1], dedup=True).ids)


def test_worker_threads_raise_a_bad_file_in_its_turn(small_tokenizer, wav_file, tmp_path):
    tok = Tokenizer.load(small_tokenizer)
    good = wav_file(1.0, name="good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    results = tok.tokenize_files([good, bad, good], workers=2)
    assert len(next(results)) == len(tok.tokenize_file(good))
    with pytest.raises(AudioError):
        next(results)


def test_ordered_map_is_lazy_and_ordered():
    from speechlm.parallel import ordered_map

    seen = []

    def items():
        for i in range(20):
            seen.append(i)
            yield i

    out = ordered_map(lambda x: x * x, items(), workers=2, window=3)
    assert next(out) == 0 and len(seen) <= 4  # no more than the window read ahead
    assert list(out) == [i * i for i in range(1, 20)]


def test_frame_phone_error_finds_a_label_lag():
    """shifted_errors / voice_errors: predictions that trail the labels by one frame have their
    fewest errors at shift +1, none there; silence is left out."""
    from speechlm.eval.tokenizer import SHIFTS, shifted_errors, voice_errors

    phones = ["AA", "B", "SIL"]
    labels = ["SIL", "AA", "AA", "B", "B", "B", "AA", "SIL"]
    pred = ["SIL", "SIL", "AA", "AA", "B", "B", "B", "AA"]  # one frame late
    acc = shifted_errors(labels, pred, phones)
    assert acc[-1] == 6 and acc[SHIFTS.index(0)] == 3 and acc[SHIFTS.index(1)] == 0
    rep = voice_errors({"v": acc})["v"]
    assert rep == {"frames": 6, "error": 0.5, "best_shift": 1,
                   "error_at_best_shift": 0.0}


def test_phone_tokenizer_report_has_per_voice_errors(small_corpus):
    from speechlm.eval.tokenizer import evaluate_tokenizer, markdown_table

    r = evaluate_tokenizer("phone-k100", small_corpus / "test.tsv", max_utterances=4,
                           progress=False, ued_utterances=0)
    by_voice = r["frame_phone_error_by_voice"]
    assert by_voice and all(0 <= v["error"] <= 1 and v["frames"] > 0 for v in by_voice.values())
    assert "best shift" in markdown_table([r])
    assert 0 < r["phone_error_rate"] < 1.5 and "phone error rate" in markdown_table([r])
    assert set(r["pnmi_by_voice"]) == set(by_voice) and "PNMI of the units" in markdown_table([r])


def test_pnmi_by_voice_does_not_depend_on_the_other_voices(small_corpus, tmp_path):
    """A voice's PNMI in a pooled report is its own: the same when another voice is left out."""
    from speechlm.eval.tokenizer import base_voice, evaluate_tokenizer

    lines = (small_corpus / "test.tsv").read_text().splitlines()
    items = read_manifest(small_corpus / "test.tsv")
    voices = sorted({base_voice(u.speaker) for u in items if u.phn_path.exists()})
    assert len(voices) >= 3
    pooled = evaluate_tokenizer("mfcc-k100", small_corpus / "test.tsv", progress=False,
                                ued_utterances=0)
    assert set(pooled["pnmi_by_voice"]) == set(voices)
    part = tmp_path / "part.tsv"  # without the last voice (a manifest's first line: its root)
    keep = [k for k, u in enumerate(items) if base_voice(u.speaker) != voices[-1]]
    part.write_text("\n".join([lines[0], *(lines[k + 1] for k in keep)]) + "\n")
    (tmp_path / "part.spk").write_text("".join(items[k].speaker + "\n" for k in keep))
    fewer = evaluate_tokenizer("mfcc-k100", part, progress=False, ued_utterances=0)
    assert set(fewer["pnmi_by_voice"]) == set(voices[:-1])
    for v in voices[:-1]:
        assert fewer["pnmi_by_voice"][v] == pooled["pnmi_by_voice"][v]
    assert fewer["pnmi"] != pooled["pnmi"]


def test_one_speaker_has_no_abx_across(small_corpus, tmp_path):
    """A manifest of one speaker (a real voice) is measured, ABX across shown as '-'."""
    from speechlm.eval.tokenizer import evaluate_tokenizer, markdown_table

    lines = (small_corpus / "test.tsv").read_text().splitlines()
    items = read_manifest(small_corpus / "test.tsv")
    spk = next(u.speaker for u in items if u.phn_path.exists())
    keep = [k for k, u in enumerate(items) if u.speaker == spk]
    one = tmp_path / "one.tsv"
    one.write_text("\n".join([lines[0], *(lines[k + 1] for k in keep)]) + "\n")
    (tmp_path / "one.spk").write_text("".join(spk + "\n" for _ in keep))
    r = evaluate_tokenizer("mfcc-k100", one, progress=False, ued_utterances=0)
    assert r["abx_across_units"] is None and r["abx_across_features"] is None
    assert r["abx_within_units"] is not None and r["pnmi"] > 0
    row = markdown_table([r]).splitlines()[2].split(" | ")
    assert "-" in row and "None" not in markdown_table([r])


@pytest.mark.parametrize("measure", ["frame_phone_error", "unit_phone_error"])
def test_paired_errors_pair_utterances_per_voice(measure):
    from speechlm.eval.tokenizer import PAIRED, paired_errors

    rows = PAIRED[measure]
    base = {rows: [["a", "v1", 5, 10], ["b", "v2", 2, 10], ["c", "v1", 4, 10]]}
    other = {rows: [["c", "v1", 4, 10], ["a", "v1", 3, 10], ["b", "v2", 2, 10],
                    ["z", "v2", 0, 10]]}
    p = paired_errors(base, other, measure)
    assert set(p) == {"all", "v1", "v2"} and p["all"]["utterances"] == 3  # "z" is unpaired
    assert p["all"]["delta"] == round(-2 / 30, 4) and p["v1"]["delta"] == -0.1
    assert p["v2"] == {"utterances": 1, "delta": 0.0, "ci95": [0.0, 0.0], "distinct": False}
    lo, hi = p["v1"]["ci95"]
    assert lo <= -0.1 <= hi <= 0
    assert paired_errors({}, other, measure) == {}
    other_rows = PAIRED["unit_phone_error" if measure == "frame_phone_error"
                        else "frame_phone_error"]
    assert paired_errors({other_rows: base[rows]}, {other_rows: other[rows]}, measure) == {}


def test_eval_tokenizer_pairs_phone_encoders_on_the_same_utterances(capsys, small_corpus):
    from speechlm.cli import main

    code = main(["eval", "tokenizer", "--tokenizer", "phone-k100", "--tokenizer", "phone-k100",
                 "--corpus", str(small_corpus), "--manifest", "test", "--max-utterances", "4",
                 "--no-ued", "--quiet", "--format", "json"])
    reps = json.loads(capsys.readouterr().out)["reports"]
    assert code == 0 and "frame_phone_error_vs_first" not in reps[0]
    pair = reps[1]["frame_phone_error_vs_first"]
    assert pair["base"] == "phone-k100" and pair["voices"]["all"]["utterances"] >= 1
    assert all(d["delta"] == 0 and not d["distinct"] for d in pair["voices"].values())


def test_phone_error_rate_compares_phone_strings_not_frames():
    from speechlm.eval.robustness import levenshtein
    from speechlm.eval.tokenizer import phone_string

    ref = phone_string(["SIL", "K", "K", "AE", "AE", None, "T", "SIL", "T"])
    assert ref == ["K", "AE", "T"]  # the repeat across the pause counts once
    # the same string at other frame timings has no error; a flicker adds an insertion
    assert levenshtein(phone_string(["K", "AE", "AE", "AE", "T", "T"]), ref) == 0
    assert levenshtein(phone_string(["K", "AE", "EH", "AE", "T"]), ref) == 2
    assert levenshtein(phone_string(["G", "AE", "T"]), ref) == 1
