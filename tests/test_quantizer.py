import numpy as np
import pytest
import torch

from speechlm.quantizer import KMeansQuantizer, fit_kmeans


def blobs(k=5, n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, d))
    labels = rng.integers(0, k, n)
    return (centers[labels] + rng.normal(0, 0.3, (n, d))).astype(np.float32), labels


def test_encode_is_nearest_centroid():
    g = torch.Generator().manual_seed(0)
    q = KMeansQuantizer(torch.randn(7, 4, generator=g), torch.randn(4, generator=g),
                        torch.rand(4, generator=g) + 0.5)
    x = torch.randn(3, 50, 4, generator=g)
    brute = torch.cdist(q.normalize(x).reshape(-1, 4), q.centroids).argmin(-1).reshape(3, 50)
    assert torch.equal(q.encode(x), brute)


def test_fit_recovers_blobs():
    x, labels = blobs()
    q, stats = fit_kmeans(x, 5, seed=0)
    ids = q.encode(torch.from_numpy(x)).numpy()
    # each true cluster maps to exactly one unit
    for c in range(5):
        assert len(set(ids[labels == c])) == 1
    assert len(set(ids)) == 5 and stats["n_frames"] == 400


def test_fit_is_deterministic():
    x, _ = blobs(seed=1)
    a, _ = fit_kmeans(x, 5, seed=3)
    b, _ = fit_kmeans(x, 5, seed=3)
    assert torch.equal(a.centroids, b.centroids) and a.fingerprint() == b.fingerprint()


def test_state_dict_round_trip_and_fingerprint():
    x, _ = blobs()
    q, _ = fit_kmeans(x, 5)
    r = KMeansQuantizer.from_state_dict(q.state_dict())
    assert r.fingerprint() == q.fingerprint()
    sd = q.state_dict()
    sd["centroids"] = sd["centroids"] + 1e-3
    assert KMeansQuantizer.from_state_dict(sd).fingerprint() != q.fingerprint()


def test_dim_mismatch():
    q = KMeansQuantizer(torch.zeros(3, 4), torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="features have dim 5, quantizer expects 4"):
        q.encode(torch.zeros(2, 5))


def test_too_few_frames():
    with pytest.raises(ValueError, match="need at least k=10 frames"):
        fit_kmeans(np.zeros((5, 3), np.float32), 10)


def test_smooth_path_absorbs_short_flickers_and_keeps_long_runs():
    from speechlm.quantizer import smooth_path

    ids = [0] * 6 + [1] + [0] * 6 + [2] * 8  # a one-frame flicker, then a real change
    scores = np.full((len(ids), 3), 1.0)
    scores[np.arange(len(ids)), ids] = 0.0
    assert smooth_path(scores, 0.0).tolist() == ids  # no penalty: the argmin
    smoothed = smooth_path(scores, 1.5).tolist()
    assert smoothed == [0] * 13 + [2] * 8
    assert smooth_path(scores, 100.0).tolist() == [0] * len(ids)  # one run at any cost
    assert smooth_path(np.zeros((0, 3)), 1.0).shape == (0,)


def test_smooth_path_is_optimal_on_random_scores():
    """Brute force over every path of a short sequence."""
    import itertools

    from speechlm.quantizer import smooth_path

    rng = np.random.default_rng(0)
    scores = rng.random((6, 3))
    penalty = 0.3

    def cost(path):
        return sum(scores[t, k] for t, k in enumerate(path)) + penalty * sum(
            a != b for a, b in zip(path, path[1:]))

    best = min(itertools.product(range(3), repeat=6), key=cost)
    assert cost(smooth_path(scores, penalty)) == pytest.approx(cost(best))


def test_quantizer_encode_with_penalty_works_on_batches():
    import torch

    from speechlm.quantizer import KMeansQuantizer

    q = KMeansQuantizer(torch.tensor([[0.0], [1.0]]), torch.zeros(1), torch.ones(1))
    x = torch.tensor([[[0.0], [0.9], [0.0], [0.1]], [[1.0], [1.0], [0.0], [1.0]]])
    assert q.encode(x).tolist() == [[0, 1, 0, 0], [1, 1, 0, 1]]
    assert q.encode(x, 2.0).tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]


def test_fill_blanks_holds_each_id_until_the_next():
    from speechlm.quantizer import fill_blanks

    b = 9
    ids = torch.tensor([b, b, 3, b, b, 5, 5, b, 3])
    assert fill_blanks(ids, b).tolist() == [3, 3, 3, 3, 3, 5, 5, 5, 3]
    assert fill_blanks(torch.tensor([b, b]), b).tolist() == [b, b]  # nothing to hold
    assert fill_blanks(torch.tensor([1, 2]), b).tolist() == [1, 2]
    assert fill_blanks(torch.zeros(0, dtype=torch.long), b).numel() == 0


def test_onehot_quantizer_picks_the_most_likely_class():
    from speechlm.quantizer import onehot_quantizer

    q = onehot_quantizer(5)
    post = torch.softmax(torch.randn(50, 5) * 3, -1)
    assert torch.equal(q.encode(post), post.argmax(-1))
