"""The CVHR apnoea screening index: cycles found where heart rate cycles at apnoea periods, none elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.signals.cvhr import Cvhr, cvhr_cycles
from sleepstack.cli import main
from tests.conftest import DATA

SLPDB = DATA / "slpdb-rr"


def _beats(hr_bpm_at: np.ndarray, hours: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Beats whose heart rate follows ``hr_bpm_at(t_s)``, with beat-to-beat noise."""
    t, out_t, out_rr = 0.0, [], []
    while t < hours * 3600:
        rr = 60000.0 / float(hr_bpm_at(np.array([t]))[0]) + rng.normal(0, 10)
        t += rr / 1000.0
        out_t.append(t)
        out_rr.append(rr)
    return np.array(out_t), np.array(out_rr)


def test_cycles_at_apnoea_periods_are_counted(rng: np.random.Generator) -> None:
    # 40 min of apnoea cycles (60 s, heart rate surging 12 bpm), then 40 min of steady sleep
    def hr(t: np.ndarray) -> np.ndarray:
        return np.where(t < 2400, 60 + 12 * np.clip(np.sin(2 * np.pi * t / 60.0), 0, None) ** 3, 60.0)

    found = cvhr_cycles(*_beats(hr, 80 / 60, rng))
    in_apnoea = found.t_s < 2400
    assert 35 <= in_apnoea.sum() <= 41 and (~in_apnoea).sum() <= 1
    assert found.analysed_s == pytest.approx(4800, abs=30)
    assert found.per_hour() == pytest.approx(len(found.t_s) * 0.75, rel=0.01)


def test_isolated_surges_and_slow_waves_are_not_cycles(rng: np.random.Generator) -> None:
    # an arousal surge every 5 min (not at apnoea periods) and a slow 10-min wave
    def hr(t: np.ndarray) -> np.ndarray:
        return 60 + 15 * np.exp(-(((t % 300) - 150) ** 2) / 50.0) + 5 * np.sin(2 * np.pi * t / 600.0)

    assert len(cvhr_cycles(*_beats(hr, 1.5, rng)).t_s) <= 2


@pytest.mark.parametrize(
    "beats",
    [
        (np.zeros(0), np.zeros(0)),
        (np.arange(100.0), np.zeros(100)),  # all zero intervals
        (np.array([5.0, 1.0, 3.0]), np.array([1000.0, 1000.0])),  # lengths differ
        (np.cumsum(np.full(500, 1.0)), np.full(500, 1000.0)),  # 8 min: too short for a run of cycles
    ],
)
def test_bad_or_short_beats_give_no_cycles(beats: tuple[np.ndarray, np.ndarray]) -> None:
    found = cvhr_cycles(*beats)
    assert isinstance(found, Cvhr) and len(found.t_s) == 0
    assert found.per_hour() is None or found.per_hour() == 0


@pytest.mark.skipif(not (SLPDB / "meta.csv").exists(), reason="shared slpdb-rr data not present")
def test_the_index_ranks_real_patients_as_their_scored_events_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "cvhr", str(SLPDB), "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["records"] == 10 and fig["records_not_scored_for_respiration"] == ["slp41", "slp45"]
    assert fig["spearman_rho"] > 0.6  # README: 0.84 on the 10 records scored for respiration
    assert len(fig["per_record"]) == 12


def test_evaluate_cvhr_needs_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "cvhr"]) == 2
    assert "slpdb-rr directory" in capsys.readouterr().err
    assert main(["evaluate", "cvhr", str(tmp_path)]) == 2
    assert "meta.csv" in capsys.readouterr().err
