import json

import numpy as np
import pytest
import soundfile as sf

from speechlm.cli import main


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_tokenize_prints_one_line_per_file(capsys, wav_file):
    a, b = wav_file(1.0, name="a.wav"), wav_file(0.5, name="b.flac", freq=300)
    code, out, _ = run(capsys, "tokenize", a, b)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert len(lines[0].split()) == (16000 - 400) // 320 + 1
    assert all(0 <= int(t) < 100 for t in lines[0].split())
    code2, out2, _ = run(capsys, "tokenize", a, b)
    assert out2 == out  # same file, same units


def test_dedup_durations_and_json(capsys, wav_file):
    a = wav_file(1.0)
    _, full, _ = run(capsys, "tokenize", a)
    _, dd, _ = run(capsys, "tokenize", a, "--dedup", "--durations")
    ids, durs = dd.strip().split("\t")
    full_ids = full.split()
    expanded = sum(([u] * int(d) for u, d in zip(ids.split(), durs.split())), [])
    assert expanded == full_ids
    _, js, _ = run(capsys, "tokenize", a, "--dedup", "--format", "json")
    rec = json.loads(js)
    assert rec["format"] == "speechlm.units" and rec["version"] == 1 and rec["dedup"]
    assert rec["ids"] == [int(x) for x in ids.split()] and rec["frame_rate"] == 50.0


@pytest.mark.parametrize("kind,message", [
    ("missing", "audio file not found"),
    ("text", "as audio"),
    ("empty", "contains no audio samples"),
    ("nan", "NaN or infinite"),
    ("short", "shorter than one analysis frame"),
])
def test_bad_input_one_line_exit_2(capsys, tmp_path, kind, message):
    p = tmp_path / f"{kind}.wav"
    if kind == "text":
        p.write_text("this is not audio\n")
    elif kind == "empty":
        sf.write(p, np.zeros(0, np.float32), 16000)
    elif kind == "nan":
        sf.write(p, np.full(8000, np.inf, np.float32), 16000, subtype="FLOAT")
    elif kind == "short":
        sf.write(p, np.zeros(200, np.float32), 16000)
    code, out, err = run(capsys, "tokenize", p)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert err.startswith("speechlm: error: ")


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["tokenize", "--format", "xml", "a.wav"])
    assert e.value.code == 2


def test_manifest_shards_and_resume(capsys, small_corpus, small_tokenizer, tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"u{i}.txt"
        code, _, _ = run(capsys, "tokenize", "--tokenizer", small_tokenizer, "--manifest",
                         small_corpus / "test.tsv", "--shard", f"{i}/2", "-o", out)
        assert code == 0
        outs.append(out.read_text().splitlines())
    names = [ln.split("|")[0] for part in outs for ln in part]
    manifest = (small_corpus / "test.tsv").read_text().splitlines()[1:]
    assert names == [m.split("\t")[0][:-4] for m in manifest]
    # resume: a partial file with one complete and one torn line is completed, not redone
    out = tmp_path / "r.txt"
    partial = tmp_path / "r.txt.partial"
    first = outs[0][0]
    partial.write_text(first + "\n" + outs[0][1][:7])
    code, _, _ = run(capsys, "tokenize", "--tokenizer", small_tokenizer, "--manifest",
                     small_corpus / "test.tsv", "--shard", "0/2", "-o", out)
    assert code == 0 and out.read_text().splitlines() == outs[0] and not partial.exists()
    # no overwrite without --force
    code, _, err = run(capsys, "tokenize", "--tokenizer", small_tokenizer, "--manifest",
                       small_corpus / "test.tsv", "-o", out)
    assert code == 2 and "--force" in err


def test_bad_shard(capsys, small_corpus, tmp_path):
    code, _, err = run(capsys, "tokenize", "--manifest", small_corpus / "test.tsv",
                       "--shard", "3/2", "-o", tmp_path / "x")
    assert code == 2 and "--shard 3/2" in err


@pytest.mark.slow
def test_train_and_eval_tokenizer(capsys, small_corpus, tmp_path):
    out = tmp_path / "tok"
    code, js, _ = run(capsys, "train", "tokenizer", "--corpus", small_corpus, "--k", "12",
                      "--out", out)
    assert code == 0 and json.loads(js)["unit_space"].startswith("mfcc-k12-")
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not list(out.glob("*.pkl"))
    code, _, err = run(capsys, "train", "tokenizer", "--corpus", small_corpus, "--out", out)
    assert code == 2 and "exists" in err
    code, js, _ = run(capsys, "eval", "tokenizer", "--tokenizer", out, "--corpus", small_corpus,
                      "--format", "json", "--json", tmp_path / "r.json")
    rep = json.loads(js)
    assert code == 0 and json.loads((tmp_path / "r.json").read_text()) == rep
    assert 0 < rep["pnmi"] < 1 and 0 < rep["phone_purity"] <= 1
    assert 0 <= rep["abx_within_units"] <= 100 and rep["units_per_second"] > 0
    assert rep["aligned_utterances"] < rep["utterances"]  # espeak has no alignments
    # two tokenizers x two manifests in one table; a smoothing override
    code, js, _ = run(capsys, "eval", "tokenizer", "--tokenizer", out, "--tokenizer", out,
                      "--corpus", small_corpus, "--manifest", "test", "--manifest", "valid",
                      "--no-ued", "--smoothing", "0.5", "--format", "json",
                      "--markdown", tmp_path / "r.md")
    reps = json.loads(js)["reports"]
    assert code == 0 and [r["data"] for r in reps] == ["test", "test", "valid", "valid"]
    assert all("-s0.5-" in r["unit_space"] and r["smoothing"] == 0.5 for r in reps)
    assert "| tokenizer | data | smoothing | K |" in (tmp_path / "r.md").read_text()


def test_missing_manifest(capsys, tmp_path):
    code, _, err = run(capsys, "eval", "tokenizer", "--corpus", tmp_path, "--manifest", "test")
    assert code == 2 and "manifest not found" in err


@pytest.mark.parametrize("what", ["folder", "audio"])
def test_a_manifest_that_is_not_one_is_one_line_and_exit_2(capsys, tmp_path, what):
    """A folder or an audio file given as --manifest: one line naming it, no traceback."""
    bad = tmp_path / "wavs"
    if what == "folder":
        bad.mkdir()
    else:
        bad = tmp_path / "x.wav"
        bad.write_bytes(b"RIFF\x84\x00\x00\x00WAVEfmt \xff\xfe")
    code, _, err = run(capsys, "train", "tokenizer", "--manifest", bad, "--out", tmp_path / "t")
    assert code == 2 and str(bad) in err and "manifest is a .tsv" in err
    assert err.strip().count("\n") == 0 and not (tmp_path / "t").exists()


def test_models_lists_default(capsys):
    from speechlm.pipeline import DEFAULT_STAGES

    code, out, _ = run(capsys, "models")
    assert code == 0 and out.startswith("mfcc-k100\ttokenizer\tmfcc-k100-")
    rows = [line.split("\t") for line in out.splitlines()]
    marked = {r[0]: r[1] for r in rows if r[3:] == ["default"]}
    assert marked == {name: kind for kind, name in DEFAULT_STAGES.items()}
    assert len({r[2] for r in rows if r[0] in marked}) == 1  # one unit space


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_the_command(capsys, small_corpus, small_tokenizer, tmp_path,
                                           where):
    args = ["tokenize", "--tokenizer", str(small_tokenizer), "--manifest",
            str(small_corpus / "test.tsv"), "-o", str(tmp_path / "u.txt")]
    argv = ["-q", *args] if where == "before" else [*args, "-q"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.slow
def test_tokenizer_on_a_local_hubert_checkpoint(capsys, small_corpus, tmp_path):
    from speechlm.ssl import make_tiny_hf_checkpoint

    ckpt = tmp_path / "tiny-hubert"
    make_tiny_hf_checkpoint(ckpt, model_type="hubert", seed=0)
    out = tmp_path / "tok"
    code, js, _ = run(capsys, "train", "tokenizer", "--corpus", small_corpus, "--features", ckpt,
                      "--layer", "2", "--k", "8", "--out", out)
    assert code == 0 and json.loads(js)["unit_space"].startswith("ssl-tiny-hubert-l2-k8-")
    wav = sorted((small_corpus / "wav" / "flite_slt").glob("*.wav"))[0]
    code, a, _ = run(capsys, "tokenize", "--tokenizer", out, wav)
    assert code == 0 and all(0 <= int(u) < 8 for u in a.split())
    assert run(capsys, "tokenize", "--tokenizer", out, wav)[1] == a
    # the tokenizer directory is self-contained: it keeps working without the checkpoint
    import shutil

    shutil.rmtree(ckpt)
    code, b, _ = run(capsys, "tokenize", "--tokenizer", out, wav)
    assert code == 0 and b == a
    make_tiny_hf_checkpoint(ckpt, model_type="hubert", seed=0)
    code, _, err = run(capsys, "train", "tokenizer", "--corpus", small_corpus, "--features", ckpt,
                       "--layer", "9", "--k", "8", "--out", tmp_path / "t2")
    assert code == 2 and "layer 9 out of range" in err
