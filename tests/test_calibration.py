"""Temperature scaling and calibration measures (core.nights.calibration), and the committed
staging models' calibration (fitted out of fold by ``sleepstack train``)."""

from __future__ import annotations

import numpy as np
import pytest

from batch_layer.stage_models import load_model, model_card
from core.nights.calibration import expected_calibration_error, fit_temperature, mean_nll, scaled
from core.nights.classifier import DEFAULT_MODEL, RR_MODEL


def _sample(rng: np.random.Generator, n: int, true_t: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits (1, n, 4) and labels drawn from softmax(logits / true_t): a network over-confident by true_t."""
    z = rng.normal(0.0, 3.0, (1, n, 4))
    p = scaled(z, true_t)[..., :]
    labels = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return z, labels


def test_probabilities_sum_to_one_and_scaling_keeps_the_arg_max() -> None:
    z = np.random.default_rng(0).normal(0.0, 2.0, (3, 50, 4))
    for t in (0.5, 1.0, 3.0):
        p = scaled(z, t)
        assert p.shape == (50, 4) and np.allclose(p.sum(axis=1), 1.0)
    one = z[:1]
    assert (scaled(one, 0.5).argmax(axis=1) == scaled(one, 4.0).argmax(axis=1)).all()


def test_ece_and_nll_on_a_hand_computed_case() -> None:
    proba = np.array([[0.8, 0.2], [0.6, 0.4]])
    labels = np.array([0, 1])
    # bins of 1/15: 0.8 right (gap 0.2), 0.6 wrong (gap 0.6); mean 0.4
    assert expected_calibration_error(proba, labels) == pytest.approx(0.4)
    assert mean_nll(proba, labels) == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)


def test_the_fitted_temperature_recovers_the_true_one_and_calibrates_held_out_data() -> None:
    rng = np.random.default_rng(11)
    z, y = _sample(rng, 20_000, 2.5)
    assert fit_temperature(z[:, :10_000], y[:10_000]) == pytest.approx(2.5, rel=0.08)
    t = fit_temperature(z[:, :10_000], y[:10_000])
    held_z, held_y = z[:, 10_000:], y[10_000:]
    before, after = scaled(held_z, 1.0), scaled(held_z, t)
    assert expected_calibration_error(after, held_y) < 0.02 < expected_calibration_error(before, held_y)
    assert mean_nll(after, held_y) < mean_nll(before, held_y)


def test_bad_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        fit_temperature(np.zeros((10, 4)), np.zeros(10, dtype=int))


@pytest.mark.parametrize("name", [DEFAULT_MODEL, RR_MODEL])
def test_the_committed_models_are_calibrated_out_of_fold_and_their_cards_say_so(name: str) -> None:
    model = load_model(name)
    fitted = model.training["calibration"]
    assert model.temperature == fitted["temperature"] > 1.0  # the networks were over-confident
    assert fitted["ece_15_after"] < fitted["ece_15_before"] and fitted["nll_after"] < fitted["nll_before"]
    card = model_card(name)["calibration"]
    assert {k: card[k] for k in fitted} == fitted  # the card's figures are the artefact's
