"""HRV features per epoch from beat-to-beat intervals: values on known series, and bad beats."""

from __future__ import annotations

import numpy as np
import pytest

from core.signals.hrv_features import (
    BASE_FEATURES,
    MIN_BEATS,
    RR_FEATURE_NAMES,
    _dfa_alpha1,
    _sample_entropy,
    rr_epoch_features,
)

EPOCHS = np.arange(0, 3600, 30.0)  # one hour of epochs


def _beats(rr_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.cumsum(rr_ms) / 1000.0, rr_ms


def _raw(beat_t: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """The base features before the night's z-scoring (for checking values)."""
    import core.signals.hrv_features as hf

    captured: dict[str, np.ndarray] = {}
    real = hf._robust_z

    def keep(a: np.ndarray) -> np.ndarray:
        captured["base"] = a.copy()
        return real(a)

    hf._robust_z = keep  # type: ignore[assignment]
    try:
        rr_epoch_features(beat_t, rr, EPOCHS)
    finally:
        hf._robust_z = real  # type: ignore[assignment]
    return captured["base"]


def test_shape_and_names() -> None:
    rng = np.random.default_rng(0)
    t, rr = _beats(1000 + rng.normal(0, 30, 4000))
    out = rr_epoch_features(t, rr, EPOCHS)
    assert out.shape == (len(EPOCHS), len(RR_FEATURE_NAMES)) and np.isfinite(out).all()
    assert len(set(RR_FEATURE_NAMES)) == len(RR_FEATURE_NAMES)


def test_time_and_frequency_domain_values_on_a_breathing_modulated_series() -> None:
    """RR = 1000 ms + 40 ms at 0.25 Hz (respiratory sinus arrhythmia): power sits in HF, not LF."""
    n = 4000
    t = np.cumsum(np.full(n, 1.0))
    rr = 1000.0 + 40.0 * np.sin(2 * np.pi * 0.25 * t)
    base = _raw(t, rr)
    mid = base[60]
    col = {name: mid[i] for i, name in enumerate(BASE_FEATURES)}
    assert np.exp(col["log_sdnn"]) - 1 == pytest.approx(40 / np.sqrt(2), rel=0.05)
    assert np.exp(col["log_hf"]) - 1 == pytest.approx(40**2 / 2, rel=0.25)  # variance of the sinusoid, ms²
    assert np.exp(col["log_lf"]) - 1 < 0.05 * (np.exp(col["log_hf"]) - 1)
    assert col["log_lf_hf"] < -3 and col["coverage"] == pytest.approx(1.0, abs=0.01)


def test_dfa_alpha1_separates_white_noise_from_a_random_walk() -> None:
    rng = np.random.default_rng(1)
    white = 1000 + rng.normal(0, 30, 300)
    walk = 1000 + np.cumsum(rng.normal(0, 5, 300))
    assert _dfa_alpha1(white) == pytest.approx(0.5, abs=0.15)
    assert _dfa_alpha1(walk) == pytest.approx(1.5, abs=0.2)
    assert np.isnan(_dfa_alpha1(white[:30]))


def test_sample_entropy_is_high_for_white_noise_low_for_a_regular_rhythm() -> None:
    """SampEn(2, 0.2 SD) of white noise: -ln P(|x - y| <= 0.2 SD) = -ln 0.1125 = 2.18; a sinusoid is regular."""
    rng = np.random.default_rng(3)
    white = 1000 + rng.normal(0, 30, 400)
    regular = 1000 + 40 * np.sin(2 * np.pi * np.arange(400) / 12)
    assert _sample_entropy(white) == pytest.approx(2.2, abs=0.2)
    assert _sample_entropy(regular) < 0.5
    assert np.isnan(_sample_entropy(np.full(400, 1000.0)))  # no spread: undefined, not an exception
    assert np.isnan(_sample_entropy(white[:15]))


@pytest.mark.parametrize(
    "damage",
    ["gap", "zeros", "unsorted", "duplicate_times", "ectopic_run", "short", "empty", "mismatched"],
)
def test_bad_beats_give_defined_features_never_an_exception(damage: str) -> None:
    rng = np.random.default_rng(2)
    rr = 1000 + rng.normal(0, 30, 4000)
    t, rr = _beats(rr)
    if damage == "gap":  # 20 minutes without beats (a detached strap)
        keep = (t < 1200) | (t > 2400)
        t, rr = t[keep], rr[keep]
    elif damage == "zeros":
        rr[::7] = 0.0
    elif damage == "unsorted":
        order = rng.permutation(len(t))
        t, rr = t[order], rr[order]
    elif damage == "duplicate_times":
        t[10::50] = t[9::50][: len(t[10::50])]
    elif damage == "ectopic_run":
        rr[1000:1040:2] = 450.0
        rr[1001:1041:2] = 1550.0
    elif damage == "short":
        t, rr = t[: MIN_BEATS - 1], rr[: MIN_BEATS - 1]
    elif damage == "empty":
        t, rr = t[:0], rr[:0]
    elif damage == "mismatched":
        rr = rr[:-5]
    out = rr_epoch_features(t, rr, EPOCHS)
    assert out.shape == (len(EPOCHS), len(RR_FEATURE_NAMES)) and np.isfinite(out).all()
    if damage == "gap":
        base = _raw(t, rr)
        inside = (EPOCHS > 1400) & (EPOCHS < 2200)
        assert np.isnan(base[inside, 0]).all()  # no beats: missing, not invented
    if damage == "unsorted":
        sorted_t = np.argsort(t)
        assert np.allclose(out, rr_epoch_features(t[sorted_t], rr[sorted_t], EPOCHS))
