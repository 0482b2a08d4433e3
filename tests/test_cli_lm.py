"""`speechlm generate-units` and `speechlm eval lm` on a tiny LM trained on the small corpus."""

import json
from pathlib import Path

import pytest

from speechlm.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_lm(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "run"
    units = tmp_path_factory.mktemp("units")
    code = main(["-q", "train", "lm", "--config", str(REPO / "configs/lm/tiny.toml"),
                 f"--data.corpus={small_corpus}", f"--data.units_dir={units}",
                 f"--train.out={out}", "--train.max_steps=20"])
    assert code == 0
    return out / "model"


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_units_seeded(capsys, tiny_lm):
    args = ["generate-units", "--model", tiny_lm, "--prompt-units", "1 2 3 4",
            "--max-units", "20", "--num-samples", "3", "--seed", "7"]
    code, out, _ = run(capsys, *args)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert all(0 <= int(u) < 100 for ln in lines for u in ln.split())
    assert all(len(ln.split()) <= 20 for ln in lines)
    assert run(capsys, *args)[1] == out
    assert run(capsys, *args[:-1], "8")[1] != out


@pytest.mark.parametrize("decoder", ["native", "fp32"])
def test_generate_units_with_each_decoder(capsys, tiny_lm, decoder):
    from speechlm import cdecode

    if decoder == "native" and not cdecode.available():
        pytest.skip("no C compiler here")
    args = ["generate-units", "--model", tiny_lm, "--prompt-units", "1 2 3 4", "--max-units",
            "15", "--num-samples", "2", "--seed", "3", "--lm-weights", decoder]
    code, out, _ = run(capsys, *args)
    assert code == 0 and len(out.splitlines()) == 2 and run(capsys, *args)[1] == out


def test_generate_units_native_unavailable_is_one_line(capsys, tiny_lm, monkeypatch):
    from speechlm import cdecode

    monkeypatch.setenv("SPEECHLM_NATIVE", "0")
    cdecode.library.cache_clear()
    try:
        code, out, err = run(capsys, "generate-units", "--model", tiny_lm, "--prompt-units",
                             "1 2", "--max-units", "5", "--lm-weights", "native")
    finally:
        cdecode.library.cache_clear()
    assert code == 2 and out == "" and "SPEECHLM_NATIVE=0" in err
    assert len(err.strip().splitlines()) == 1


def test_generate_units_json_and_prompt_file(capsys, tiny_lm, tmp_path):
    (tmp_path / "p.txt").write_text("utt1|5 6 7\n")
    code, out, _ = run(capsys, "generate-units", "--model", tiny_lm, "--prompt-units",
                       tmp_path / "p.txt", "--seconds", "0.5", "--format", "json", "--seed", "1")
    rec = json.loads(out)
    assert code == 0 and rec["prompt"] == [5, 6, 7] and len(rec["ids"]) == len(rec["logprobs"])
    assert all(lp <= 0 for lp in rec["logprobs"]) and rec["unit_space"].startswith("mfcc-k100-")


@pytest.mark.parametrize("prompt,message", [
    ("1 x 3", "not a unit id: 'x'"),
    ("1 2 500", r"prompt unit ids must lie in [0, 100)"),
    (" ".join(["3"] * 80), "exceed the model's context"),
])
def test_generate_units_bad_prompt(capsys, tiny_lm, prompt, message):
    code, out, err = run(capsys, "generate-units", "--model", tiny_lm, "--prompt-units", prompt,
                         "--max-units", "10")
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_eval_lm(capsys, tiny_lm, small_corpus, tmp_path):
    code, out, _ = run(capsys, "eval", "lm", "--model", tiny_lm, "--corpus", small_corpus,
                       "--units-dir", tmp_path / "u", "--probes", tmp_path / "none",
                       "--format", "json")
    rep = json.loads(out)
    p = rep["perplexity"]
    assert code == 0 and p["split"] == "test" and p["utterances"] == 16
    assert 1 < p["perplexity_per_unit"] < 103 and p["bits_per_second"] > 0
    assert "lexical" not in rep  # no probe sets there
    b = rep["baselines"]
    assert b["unigram_perplexity"] > b["bigram_perplexity"] > 1


def _with_recorded_tokenizer(src, dst, tokenizer):
    """A copy of the LM directory ``src`` at ``dst`` whose training record names ``tokenizer``."""
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["training"]["tokenizer"] = str(tokenizer)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_eval_lm_tokenizer_after_a_switch(capsys, tiny_lm, small_corpus, small_tokenizer,
                                          tmp_path):
    # the LM's recorded tokenizer now holds other units (as "phone-k100" after a default switch)
    moved = _with_recorded_tokenizer(tiny_lm, tmp_path / "alone" / "lm", small_tokenizer)
    args = ["--corpus", small_corpus, "--units-dir", tmp_path / "u", "--probes", tmp_path / "no"]
    code, out, err = run(capsys, "eval", "lm", "--model", moved, *args)
    assert code == 2 and out == "" and "give --tokenizer" in err
    assert len(err.strip().splitlines()) == 1
    # --tokenizer names the right one; a wrong one is refused the same way
    code, out, _ = run(capsys, "eval", "lm", "--model", moved, "--tokenizer", "mfcc-k100", *args,
                       "--format", "json")
    assert code == 0 and json.loads(out)["perplexity"]["utterances"] == 16
    code, _, err = run(capsys, "eval", "lm", "--model", tiny_lm, "--tokenizer", small_tokenizer,
                       *args)
    assert code == 2 and "give --tokenizer" in err
    # in a stage bundle (tokenizer/ beside lm/, as outputs/baselines/phone-v1) the sibling serves
    import shutil

    shutil.copytree(REPO / "speechlm/pretrained/mfcc-k100", tmp_path / "bundle" / "tokenizer")
    bundled = _with_recorded_tokenizer(tiny_lm, tmp_path / "bundle" / "lm", small_tokenizer)
    code, out, _ = run(capsys, "eval", "lm", "--model", bundled, *args, "--format", "json")
    assert code == 0 and json.loads(out)["perplexity"]["utterances"] == 16


def test_train_lm_rejects_unknown_override(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "lm", "--config", str(REPO / "configs/lm/tiny.toml"), "--bogus"])
    assert e.value.code == 2
    code, _, err = run(capsys, "train", "lm", "--config", REPO / "configs/lm/tiny.toml",
                       "--train.bogus=1")
    assert code == 2 and "unknown config keys: train.bogus" in err


def test_prompt_from_stdin(capsys, tiny_lm, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("4 5 6\t1 2 3\n"))
    code, out, _ = run(capsys, "generate-units", "--model", tiny_lm, "--prompt-units", "-",
                       "--max-units", "5", "--seed", "0", "--format", "json")
    assert code == 0 and json.loads(out)["prompt"] == [4, 5, 6]


def test_requested_length_unless_stop_at_eos(capsys, tiny_lm):
    args = ["generate-units", "--model", tiny_lm, "--prompt-units", "1 2 3", "--max-units", "15",
            "--num-samples", "8", "--seed", "3", "--temperature", "1.5"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and all(len(ln.split()) == 15 for ln in out.splitlines())
    code, out2, _ = run(capsys, *args, "--stop-at-eos")
    assert code == 0 and all(len(ln.split()) <= 15 for ln in out2.splitlines())
