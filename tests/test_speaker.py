"""The speaker encoder (speechlm.speaker), its trainer and its EER evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import AudioError, DataError
from speechlm.eval.speaker import equal_error_rate, make_trials
from speechlm.speaker import SpeakerConfig, SpeakerModel, SpeakerNet
from speechlm.train.speaker import AngularMargin

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = SpeakerConfig(channels=16, blocks=2, dim=8)


def test_eer_of_separable_random_and_inverted_scores():
    same = np.array([True] * 50 + [False] * 50)
    assert equal_error_rate(np.r_[np.ones(50), np.zeros(50)], same) == 0.0
    assert equal_error_rate(np.r_[np.zeros(50), np.ones(50)], same) == 1.0
    rng = np.random.default_rng(0)
    assert abs(equal_error_rate(rng.random(4000), rng.random(4000) < 0.5) - 0.5) < 0.05
    with pytest.raises(DataError):
        equal_error_rate(np.ones(3), np.ones(3, dtype=bool))


def test_trials_are_balanced_and_labelled():
    speakers = ["a", "a", "b", "b", "c"]
    t = make_trials(speakers, 20, seed=1)
    assert len(t) == 40
    assert all(speakers[a] == speakers[b] and a != b for a, b in t[:20])
    assert all(speakers[a] != speakers[b] for a, b in t[20:])
    assert t == make_trials(speakers, 20, seed=1)
    with pytest.raises(DataError):
        make_trials(["a", "b"], 5)


def test_zero_margin_is_plain_softmax_over_cosines():
    torch.manual_seed(0)
    head = AngularMargin(4, 3, margin=0.0, scale=10.0)
    emb = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        loss, _ = head(emb, labels)
    cos = emb @ torch.nn.functional.normalize(head.centres, dim=1).T
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(10 * cos, labels), atol=1e-5)
    head.margin = 0.3  # a margin makes the same embeddings cost more
    with torch.no_grad():
        assert float(head(emb, labels)[0]) > float(loss)


def test_embeddings_are_unit_vectors_and_the_stage_round_trips(tmp_path):
    torch.manual_seed(0)
    stage = SpeakerModel(SpeakerNet(SMALL), {"steps": 1})
    wav = torch.randn(16000) * 0.1
    e = stage.embed(wav)
    assert e.shape == (8,) and abs(float(e.norm()) - 1) < 1e-5
    stage.save(tmp_path / "s")
    back = SpeakerModel.load(tmp_path / "s")
    assert torch.allclose(back.embed(wav), e, atol=1e-6)
    assert abs(stage.similarity(wav, wav) - 1) < 1e-5
    with pytest.raises(AudioError, match="at least"):
        stage.embed(torch.zeros(100))


def test_training_and_eval_on_the_small_corpus(small_corpus, tmp_path):
    from speechlm.eval.speaker import evaluate_speaker
    from speechlm.train.speaker import load_config, train_speaker

    cfg = load_config("configs/speaker/tiny.toml",
                      [f"--data.corpus={small_corpus}", f"--train.out={tmp_path / 'run'}"])
    run = train_speaker(cfg, progress=False)
    stage = SpeakerModel.load(run / "model")
    assert stage.training["identities"] >= 2 and stage.training["steps"] >= 2
    rep = evaluate_speaker(str(run / "model"), str(small_corpus), ("valid",), per_voice=2,
                           trials=20, judges=False, progress=False)
    r = rep["splits"]["valid"]
    assert 0.0 <= r["eer"] <= 1.0 and 0.0 <= r["eer_mean_logmel_baseline"] <= 1.0
    with pytest.raises(DataError):
        load_config("configs/speaker/tiny.toml", ["--train.margin=1.5"])
