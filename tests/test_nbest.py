"""The unit strings of a CTC head's posteriors (speechlm.nbest), against brute force."""

import itertools
import math

import numpy as np
import pytest
import torch

from speechlm.nbest import logsumexp, string_logprob, strings_logprob, unit_nbest
from speechlm.quantizer import fill_blanks


def _brute(post: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """Every frame path of ``post``, read as the tokenizer reads its best path (blanks filled,
    then deduplicated), its probability summed per string."""
    n_frames, n_classes = post.shape
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(n_classes), repeat=n_frames):
        ids = fill_blanks(torch.tensor(path), blank).tolist()
        key = tuple(a for i, a in enumerate(ids) if i == 0 or a != ids[i - 1])
        p = float(np.prod([post[t, c] for t, c in enumerate(path)]))
        total[key] = total.get(key, 0.0) + p
    return total


def _posteriors(n_frames: int, n_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.6, size=(n_frames, n_classes))
    return x / x.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_full_beam_gives_every_string_its_exact_probability(seed):
    post = _posteriors(5, 4, seed)
    blank = 3
    brute = _brute(post, blank)
    found = dict(unit_nbest(post, blank, beam=10_000, candidates=3))
    assert set(found) == set(brute)
    for ids, p in brute.items():
        assert math.exp(found[ids]) == pytest.approx(p, rel=1e-9)
        assert math.exp(string_logprob(post, blank, ids)) == pytest.approx(p, rel=1e-9)
    assert sum(math.exp(v) for v in found.values()) == pytest.approx(1.0)


def test_a_narrow_beam_keeps_the_best_strings_in_order():
    post = _posteriors(6, 4, 7)
    brute = sorted(_brute(post, 3).items(), key=lambda kv: -kv[1])
    best = unit_nbest(post, 3, beam=4, candidates=3)
    assert len(best) == 4
    scores = [s for _, s in best]
    assert scores == sorted(scores, reverse=True)
    assert best[0][0] == brute[0][0]  # this small case: the beam finds the best string
    for ids, s in best:  # whatever it keeps is scored exactly
        assert s == pytest.approx(string_logprob(post, 3, ids), abs=1e-9)
    # without the rescoring, a kept string's score is what the search kept: a lower bound
    kept = unit_nbest(post, 3, beam=4, candidates=3, exact=False)
    assert any(s < string_logprob(post, 3, ids) - 1e-6 for ids, s in kept)
    assert all(s <= string_logprob(post, 3, ids) + 1e-9 for ids, s in kept)


def test_the_best_path_string_is_among_the_strings_and_peaky_posteriors_agree():
    # a confident head: the most likely string is its best path's string
    path = [3, 0, 0, 3, 1, 1, 3, 3, 0, 2]
    post = np.full((len(path), 4), 0.01)
    post[np.arange(len(path)), path] = 0.97
    ids = fill_blanks(torch.tensor(path), 3).tolist()
    greedy = tuple(a for i, a in enumerate(ids) if i == 0 or a != ids[i - 1])
    assert greedy == (0, 1, 0, 2)
    best = unit_nbest(post, 3, beam=8)
    assert best[0][0] == greedy
    assert best[0][1] > math.log(0.5)


def test_edges():
    assert unit_nbest(np.zeros((0, 3)), 2) == [((), 0.0)]
    post = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert unit_nbest(post, 2)[0] == ((2,), 0.0)  # all blank reads as the blank unit
    assert string_logprob(post, 2, [2]) == 0.0
    assert string_logprob(post, 2, [0, 0]) == -math.inf  # not a deduplicated string
    assert string_logprob(post, 2, [0, 1, 0]) == -math.inf  # longer than the frames
    with pytest.raises(ValueError):
        unit_nbest(post, 3)
    with pytest.raises(ValueError):
        unit_nbest(post, 2, beam=0)
    assert logsumexp([-math.inf, -math.inf]) == -math.inf
    assert logsumexp([math.log(0.25), math.log(0.5)]) == pytest.approx(math.log(0.75))


def test_strings_at_once_score_as_each_alone():
    post = _posteriors(7, 5, 3)
    lp = np.log(post)
    strings = [(0, 1), (4,), (), (2, 2), (0, 1, 2, 3, 0, 1, 2, 3), (3, 0, 3), (1,)]
    together = strings_logprob(lp, 4, strings)
    alone = [string_logprob(post, 4, s) for s in strings]
    assert together == pytest.approx(alone, abs=1e-12)
    assert together[3] == -math.inf and together[4] == -math.inf and together[2] == -math.inf
