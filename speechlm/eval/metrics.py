"""Quality measures for discrete speech units, measured against phone labels.

Two families of metrics here (the third, ABX, is in :mod:`speechlm.eval.abx`), all pure numpy
and deterministic:

* :func:`phone_unit_stats` -- frame-level statistics of the joint distribution of phone labels
  and unit labels: phone-normalised mutual information (PNMI), phone purity and cluster purity,
  as defined in the HuBERT paper (Hsu et al., 2021, "HuBERT: Self-Supervised Speech
  Representation Learning by Masked Prediction of Hidden Units", section on cluster quality).
* :func:`unit_rate_and_bitrate` -- units per second, unigram entropy and bitrate of deduplicated
  unit sequences (Polyak et al., 2021, "Speech Resynthesis from Discrete Disentangled
  Self-Supervised Representations").

Bad input raises :class:`ValueError` with a message saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["UnitPhoneStats", "check_positive_int", "phone_unit_stats", "unit_rate_and_bitrate"]


# --------------------------------------------------------------------------------------------
# Frame-level phone / unit statistics (HuBERT)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitPhoneStats:
    """Frame-level agreement between unit labels ``z`` and phone labels ``y``.

    Attributes:
        pnmi: Phone-normalised mutual information ``I(y; z) / H(y)`` in [0, 1]: the fraction of
            the phone label's uncertainty removed by knowing the unit. NaN when ``H(y) = 0``
            (only one phone occurs), where the ratio is undefined.
        phone_purity: ``E_{p(z)}[max_y p(y | z)]``: the frame accuracy of labelling each unit
            with its most frequent phone.
        cluster_purity: ``E_{p(y)}[max_z p(z | y)]``: the frame accuracy of labelling each phone
            with its most frequent unit.
        n_frames: Number of frames counted (frames with a phone label >= 0).
        units_used: Number of distinct units seen on at least one counted frame.
    """

    pnmi: float
    phone_purity: float
    cluster_purity: float
    n_frames: int
    units_used: int

    def as_dict(self) -> dict[str, float | int]:
        """Return the fields as a plain ``{name: value}`` dict (e.g. for JSON logging)."""
        return asdict(self)


def _as_int_1d(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as a 1-D integer array, or raise ValueError naming ``name``."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats of a probability vector (zero entries contribute nothing)."""
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def phone_unit_stats(
    units: np.ndarray, phones: np.ndarray, n_units: int, n_phones: int
) -> UnitPhoneStats:
    """Measure how well frame-level units agree with frame-level phone labels.

    The joint distribution ``p(y, z)`` of phone ``y`` and unit ``z`` is estimated from frame
    counts; see :class:`UnitPhoneStats` for the definitions of the returned numbers.

    Args:
        units: ``[T]`` integer unit index of each frame, in ``[0, n_units)``.
        phones: ``[T]`` integer phone index of each frame, in ``[0, n_phones)``; frames with a
            negative label (silence you chose to drop, unaligned frames) are ignored.
        n_units: Size of the unit vocabulary.
        n_phones: Size of the phone inventory.

    Returns:
        The statistics over the counted frames.

    Raises:
        ValueError: If the arrays are not 1-D integer arrays of the same length, if no frame has
            a phone label >= 0, or if a counted label is out of range.
    """
    n_units = check_positive_int(n_units, "n_units")
    n_phones = check_positive_int(n_phones, "n_phones")
    units = _as_int_1d(units, "units")
    phones = _as_int_1d(phones, "phones")
    if units.shape != phones.shape:
        raise ValueError(
            f"units and phones must have the same length, got {units.size} units "
            f"and {phones.size} phone labels"
        )
    keep = phones >= 0
    units, phones = units[keep], phones[keep]
    if units.size == 0:
        raise ValueError("no frames to count: the input is empty or every phone label is < 0")
    if units.min() < 0 or units.max() >= n_units:
        raise ValueError(
            f"units must lie in [0, {n_units}), got values in [{units.min()}, {units.max()}]"
        )
    if phones.max() >= n_phones:
        raise ValueError(f"phone labels must be < n_phones={n_phones}, got {phones.max()}")

    n = units.size
    counts = np.bincount(phones * n_units + units, minlength=n_phones * n_units)
    joint = counts.reshape(n_phones, n_units).astype(np.float64) / n  # p(y, z): [Y, Z]
    p_y = joint.sum(axis=1)  # [Y]
    p_z = joint.sum(axis=0)  # [Z]

    h_y = _entropy(p_y)
    nz = joint > 0
    ratio = joint[nz] / (p_y[:, None] * p_z[None, :])[nz]
    mutual_info = float((joint[nz] * np.log(ratio)).sum())
    if h_y > 0:
        pnmi = min(max(mutual_info / h_y, 0.0), 1.0)  # clip rounding error only
    else:
        pnmi = float("nan")

    return UnitPhoneStats(
        pnmi=pnmi,
        # sum_z p(z) max_y p(y|z) = sum_z max_y p(y, z), and symmetrically for clusters.
        phone_purity=float(joint.max(axis=0).sum()),
        cluster_purity=float(joint.max(axis=1).sum()),
        n_frames=int(n),
        units_used=int(np.count_nonzero(p_z)),
    )


# --------------------------------------------------------------------------------------------
# Unit rate and bitrate (Polyak et al.)
# --------------------------------------------------------------------------------------------


def unit_rate_and_bitrate(
    sequences: Sequence[np.ndarray], durations_s: Sequence[float], n_units: int
) -> dict[str, float]:
    """Measure the unit rate, unigram entropy and bitrate of deduplicated unit sequences.

    Following Polyak et al. (2021), the bitrate of a unit stream is the number of units per
    second times the empirical unigram entropy of the units (in bits per unit).

    Args:
        sequences: Per utterance, a ``[L_i]`` integer array of DEDUPLICATED units (runs of a
            repeated unit collapsed to one), each in ``[0, n_units)``.
        durations_s: Per utterance, the audio duration in seconds (``> 0``).
        n_units: Size of the unit vocabulary.

    Returns:
        ``{"units_per_second": total units / total seconds, "entropy_bits": unigram entropy of
        all units pooled, in bits, "bitrate": units_per_second * entropy_bits}`` (bits/second).

    Raises:
        ValueError: On mismatched lengths, non-positive or non-finite durations, no units at
            all, units out of range, or a sequence that repeats a unit on consecutive positions
            (not deduplicated).
    """
    n_units = check_positive_int(n_units, "n_units")
    if len(sequences) != len(durations_s):
        raise ValueError(
            f"sequences and durations_s must have the same length, got {len(sequences)} "
            f"and {len(durations_s)}"
        )
    durations = np.asarray(durations_s, dtype=np.float64)
    if durations.size == 0:
        raise ValueError("no sequences given")
    if not np.all(np.isfinite(durations)) or np.any(durations <= 0):
        raise ValueError("every duration in durations_s must be a finite number of seconds > 0")
    arrays = []
    for i, seq in enumerate(sequences):
        arr = _as_int_1d(seq, f"sequences[{i}]")
        if arr.size > 1 and np.any(arr[1:] == arr[:-1]):
            raise ValueError(
                f"sequences[{i}] repeats a unit on consecutive positions: deduplicate the "
                "sequences (collapse runs of a unit) before measuring the bitrate"
            )
        arrays.append(arr)
    units = np.concatenate(arrays)
    if units.size == 0:
        raise ValueError("no units: every sequence is empty")
    if units.min() < 0 or units.max() >= n_units:
        raise ValueError(
            f"units must lie in [0, {n_units}), got values in [{units.min()}, {units.max()}]"
        )
    p = np.bincount(units, minlength=n_units) / units.size
    entropy_bits = _entropy(p) / np.log(2.0)
    units_per_second = units.size / float(durations.sum())
    return {
        "units_per_second": float(units_per_second),
        "entropy_bits": float(entropy_bits),
        "bitrate": float(units_per_second * entropy_bits),
    }
