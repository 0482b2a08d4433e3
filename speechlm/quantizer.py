"""k-means quantization of frame features into unit ids.

Features are standardised with the training set's per-dimension mean and standard deviation,
then each frame takes the id of its nearest centroid (squared euclidean distance). Fitting uses
scikit-learn's MiniBatchKMeans; centroids and statistics are plain tensors saved as safetensors.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


class KMeansQuantizer:
    """Nearest-centroid quantizer.

    Args:
        centroids: ``[K, D]`` in the standardised feature space.
        mean: ``[D]`` feature mean used for standardisation.
        std: ``[D]`` feature standard deviation.
    """

    def __init__(self, centroids: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        if centroids.dim() != 2:
            raise ValueError(f"centroids must be [K, D], got {tuple(centroids.shape)}")
        d = centroids.shape[1]
        if mean.shape != (d,) or std.shape != (d,):
            raise ValueError(f"mean/std must be [{d}], got {tuple(mean.shape)}/{tuple(std.shape)}")
        self.centroids = centroids.float().contiguous()
        self.mean = mean.float()
        self.std = std.float()
        # standardisation folded into one affine map: for x_n = (x - mean) / std,
        # ||x_n - c||^2 - ||x_n||^2 = -2 x.(c / std) + (||c||^2 + 2 (mean / std).c)
        scaled = self.centroids / self.std  # [K, D]
        self._w = scaled.T.contiguous()  # [D, K]
        self._b = (self.centroids**2).sum(-1) + 2 * scaled @ self.mean  # [K]

    @property
    def n_units(self) -> int:
        return self.centroids.shape[0]

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` features -> ``[..., K]`` squared distances to each centroid, less the
        frame's own squared norm (a per-frame constant: the order of the centroids is kept)."""
        if feats.shape[-1] != self.dim:
            raise ValueError(f"features have dim {feats.shape[-1]}, quantizer expects {self.dim}")
        x = feats.float()
        scores = torch.addmm(self._b, x.reshape(-1, self.dim), self._w, alpha=-2.0)
        return scores.reshape(*x.shape[:-1], self.n_units)

    def encode(self, feats: torch.Tensor, switch_penalty: float = 0.0) -> torch.Tensor:
        """``[..., D]`` features -> ``[...]`` int64 ids of the nearest centroid.

        With ``switch_penalty > 0`` the features are read as frames along dimension -2 and each
        row gets the id sequence that minimises the summed squared distances plus
        ``switch_penalty`` per change of id (:func:`smooth_path`): short flickers between
        neighbouring centroids are absorbed by the surrounding run.
        """
        scores = self.scores(feats)
        if switch_penalty <= 0 or scores.dim() < 2:
            return scores.argmin(dim=-1)
        flat = scores.reshape(-1, *scores.shape[-2:]).numpy()
        ids = np.stack([smooth_path(row, switch_penalty) for row in flat])
        return torch.from_numpy(ids).reshape(scores.shape[:-1])

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """``[...]`` ids -> ``[..., D]`` centroids mapped back to feature space."""
        return self.centroids[ids] * self.std + self.mean

    def fingerprint(self) -> str:
        """Short hash of the centroids and statistics: part of the unit-space id."""
        h = hashlib.sha256()
        for t in (self.centroids, self.mean, self.std):
            h.update(t.numpy().astype(np.float32).tobytes())
        return h.hexdigest()[:8]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"centroids": self.centroids, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> KMeansQuantizer:
        missing = {"centroids", "mean", "std"} - set(sd)
        if missing:
            from speechlm.errors import ModelError

            raise ModelError(f"quantizer weights lack {', '.join(sorted(missing))}")
        return cls(sd["centroids"], sd["mean"], sd["std"])


def fill_blanks(ids: torch.Tensor, blank: int) -> torch.Tensor:
    """``[F]`` ids with every ``blank`` frame given the id before it (the first ones: the
    first id that is not blank); all blank stays all blank. A CTC head's greedy path read at
    frame rate: each phone holds from the frame it is emitted until the next is."""
    x = ids.numpy()
    keep = x != blank
    if keep.all() or not keep.any():
        return ids.clone()
    idx = np.where(keep, np.arange(len(x)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.argmax(keep))
    return torch.from_numpy(x[idx].copy())


def onehot_quantizer(n: int) -> KMeansQuantizer:
    """A quantizer whose ``n`` centroids are the one-hot vectors of ``R^n`` (no
    standardisation): over posteriors, the nearest centroid is the most likely class."""
    return KMeansQuantizer(torch.eye(n), torch.zeros(n), torch.ones(n))


def smooth_path(scores: np.ndarray, penalty: float) -> np.ndarray:
    """The id path through ``scores [F, K]`` (lower is better) minimising the summed scores
    plus ``penalty`` per change of id between neighbouring frames (Viterbi on a K-state chain
    whose every switch costs the same): ``[F]`` int64."""
    n, k = scores.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    back = np.empty((n, k), dtype=np.int64)
    cost = scores[0].astype(np.float64)
    stay = np.arange(k)
    for t in range(1, n):
        j = int(cost.argmin())
        switch = cost[j] + penalty
        keep = cost <= switch
        back[t] = np.where(keep, stay, j)
        cost = np.where(keep, cost, switch) + scores[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(cost.argmin())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def fit_kmeans(feats: np.ndarray, k: int, seed: int = 0, batch_size: int = 10_000,
               max_iter: int = 100, n_init: int = 3) -> tuple[KMeansQuantizer, dict]:
    """Fit k-means on ``feats`` (``[N, D]``) after standardising them.

    Returns:
        The quantizer and a dict of fit statistics (inertia per frame, iterations).
    """
    from sklearn.cluster import MiniBatchKMeans

    if feats.ndim != 2 or feats.shape[0] < k:
        raise ValueError(f"need at least k={k} frames of [N, D] features, got {feats.shape}")
    x = feats.astype(np.float32)
    mean = x.mean(0)
    std = x.std(0) + 1e-5
    x = (x - mean) / std
    km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, max_iter=max_iter, n_init=n_init,
                         random_state=seed, compute_labels=False, max_no_improvement=50,
                         reassignment_ratio=0.0)
    km.fit(x)
    q = KMeansQuantizer(torch.from_numpy(km.cluster_centers_.astype(np.float32)),
                        torch.from_numpy(mean), torch.from_numpy(std))
    inertia = float(((x - km.cluster_centers_[km.predict(x)]) ** 2).sum(1).mean())
    stats = {"inertia_per_frame": inertia, "n_iter": int(km.n_iter_), "n_frames": len(x),
             "seed": seed, "batch_size": batch_size, "n_init": n_init}
    log.info("k-means K=%d on %d frames: inertia/frame %.4f", k, len(x), inertia)
    return q, stats
