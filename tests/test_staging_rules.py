"""The bed sensor's evidence over the cardiac stager (core.nights.staging.stage_night): wake out of
bed and when moving; light sleep where a breathing pause shows the sleeper asleep."""

from __future__ import annotations

import numpy as np
import pandas as pd

from batch_layer.stage_models import bundled
from core.nights.stages import SleepStage
from core.nights.staging import stage_night, staging_features


def _features(rng: np.random.Generator) -> pd.DataFrame:
    """Four hours of epochs in bed, still: a heart rate the stager calls wake in part of its epochs."""
    n = 480
    hr = 58.0 + rng.normal(0.0, 1.0, n)
    hr[200:260] = 84.0 + rng.normal(0.0, 6.0, 60)
    return pd.DataFrame({"hr_bpm": hr, "movement": np.zeros(n), "presence": np.ones(n, dtype=bool)})


def test_a_pause_turns_the_models_wake_into_light_sleep_unless_moving_or_out_of_bed() -> None:
    features = _features(np.random.default_rng(7))
    models = bundled()
    plain = stage_night(features, models=models).stages
    wake = np.flatnonzero(plain == SleepStage.WAKE)
    picked = [int(k) for k in wake if 0 < k < len(plain) - 1]
    a, b, c, d = picked[0], picked[len(picked) // 4], picked[len(picked) // 2], picked[-1]
    assert min(np.diff([a, b, c, d])) >= 3  # far enough apart not to share a neighbour
    with_pauses = features.assign(breathing_pauses=0.0)
    with_pauses.loc[[a, b, c], "breathing_pauses"] = 1.0  # a pause starts in each
    with_pauses.loc[b, "movement"] = 0.5  # ... but b moves
    with_pauses.loc[c, "presence"] = False  # ... and c is out of bed
    staged = stage_night(with_pauses, models=models).stages
    assert staged[a] == SleepStage.LIGHT
    for k in (a - 1, a + 1, c - 1, c + 1):  # a still neighbour of a pause is light too (a run's epoch between pauses)
        assert staged[k] == (SleepStage.LIGHT if plain[k] == SleepStage.WAKE else plain[k])
    assert staged[b] == staged[c] == staged[d] == SleepStage.WAKE  # moving, out of bed, no pause near
    changed = set(np.flatnonzero(staged != plain).tolist())
    assert changed - {b - 1, b + 1} <= {a - 1, a, a + 1, c - 1, c + 1}  # b's movement wakes its neighbours too


def test_pauses_where_the_bed_saw_nothing_change_nothing() -> None:
    features = _features(np.random.default_rng(8))
    models = bundled()
    plain = stage_night(features, models=models).stages
    blind = stage_night(features.assign(breathing_pauses=np.nan), models=models).stages
    assert (plain == blind).all()


def test_stage_probabilities_sum_to_one_and_follow_the_rules() -> None:
    """The model's calibrated posterior, the rules' certainty where they decide, NaN without heart rate."""
    features = _features(np.random.default_rng(7))
    models = bundled()
    plain = stage_night(features, models=models)
    wake = np.flatnonzero(plain.stages == SleepStage.WAKE)
    a, b = int(wake[1]), int(wake[-2])
    marked = features.assign(breathing_pauses=0.0)
    marked.loc[a, "breathing_pauses"] = 1.0
    marked.loc[b, "presence"] = False
    staging = stage_night(marked, models=models)
    p = staging.proba
    assert p.shape == (len(features), 4) and np.allclose(p.sum(axis=1), 1.0)
    model_p = models.hr.predict_proba(np.asarray(staging_features(features["hr_bpm"].to_numpy(), "hr")))
    far = np.ones(len(features), dtype=bool)
    far[[a - 1, a, a + 1, b]] = False
    np.testing.assert_allclose(p[far], model_p[far])  # elsewhere: the model's own
    assert p[a, SleepStage.WAKE] == 0.0 and staging.stages[a] == SleepStage.LIGHT  # the pause rule: asleep
    np.testing.assert_allclose(p[a, 1:] / p[a, 1:].sum(), model_p[a, 1:] / model_p[a, 1:].sum())
    assert p[b].tolist() == [1.0, 0.0, 0.0, 0.0]  # out of bed: wake, for certain
    conf = staging.confidence()
    np.testing.assert_allclose(conf, p[np.arange(len(p)), staging.stages])
    blind = stage_night(features.assign(hr_bpm=np.nan), models=models)
    assert np.isnan(blind.proba).all() and np.isnan(blind.confidence()).all()
