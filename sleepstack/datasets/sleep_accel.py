"""Reader for the PhysioNet sleep-accel layout (Walch et al. 2019): heart rate + PSG labels.

Layout of a dataset directory::

    heart_rate/<id>_heartrate.txt       t,bpm         (t: s from the PSG start; Apple Watch PPG, ~5 s apart)
    labels/<id>_labeled_sleep.txt       t,stage       (every 30 s; 0 wake, 1-4 N1-N4 (R&K), 5 REM, -1 unscored)

Delimiters may be commas or whitespace. Heart rate is sorted, repeated timestamps are
averaged, and the series is cropped to the labelled window (the files also hold days of
daytime wear before the study). Stages are collapsed to :class:`~core.nights.stages.SleepStage`
(N1+N2 light, N3+N4 deep); unscored epochs become ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.contract.epochs import EPOCH_S
from core.errors import DatasetError
from core.nights.stages import RK_STAGES

__all__ = ["AccelNight", "epoch_mean_hr", "list_subjects", "read_night"]


@dataclass(frozen=True)
class AccelNight:
    """One subject's PSG night: ``hr_t_s``/``hr_bpm`` shape (n_samples,), ``stages`` (n_epochs,)."""

    subject: str
    hr_t_s: npt.NDArray[np.float64]
    hr_bpm: npt.NDArray[np.float64]
    epoch_t_s: npt.NDArray[np.float64]  # start of each labelled 30-s epoch, s from PSG start
    stages: npt.NDArray[np.int8]  # SleepStage codes, -1 unscored


def _read_table(path: Path, names: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(str(path), "missing file")
    df = pd.read_csv(path, sep=r"[,\s]+", engine="python", header=None, names=names, dtype=str)
    df = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce") for c in names})
    if df.empty or df.isna().any().any():
        raise DatasetError(str(path), f"expected two numeric columns {names} on every line")
    return df


def list_subjects(root: Path) -> list[str]:
    """Subject ids that have both a heart-rate and a label file, sorted."""
    hr = {p.name.removesuffix("_heartrate.txt") for p in (root / "heart_rate").glob("*_heartrate.txt")}
    labels = {p.name.removesuffix("_labeled_sleep.txt") for p in (root / "labels").glob("*_labeled_sleep.txt")}
    return sorted(hr & labels, key=lambda s: (len(s), s))


def read_night(root: Path, subject: str) -> AccelNight:
    """The labelled night of ``subject`` under ``root`` (see module docstring)."""
    lab = _read_table(root / "labels" / f"{subject}_labeled_sleep.txt", ["t", "stage"])
    bad = sorted(set(lab["stage"].astype(int)) - set(RK_STAGES))
    if bad:
        raise DatasetError(f"labels/{subject}_labeled_sleep.txt", f"unknown stage codes {bad}")
    lab = lab.sort_values(by="t").drop_duplicates("t")
    hr = _read_table(root / "heart_rate" / f"{subject}_heartrate.txt", ["t", "bpm"])
    hr = hr.groupby("t")["bpm"].mean().reset_index()  # groupby sorts by t
    t0, t1 = float(lab["t"].iloc[0]), float(lab["t"].iloc[-1]) + EPOCH_S
    hr = hr[(hr["t"] >= t0) & (hr["t"] < t1) & (hr["bpm"] > 0)]
    stages = np.array([RK_STAGES[int(s)] for s in lab["stage"]], dtype=np.int8)
    return AccelNight(
        subject,
        hr["t"].to_numpy(float),
        hr["bpm"].to_numpy(float),
        lab["t"].to_numpy(float),
        stages,
    )


def epoch_mean_hr(night: AccelNight) -> npt.NDArray[np.float64]:
    """Mean heart rate (bpm) of the samples in each labelled epoch, NaN where none; shape (n_epochs,)."""
    idx = np.searchsorted(night.epoch_t_s, night.hr_t_s, side="right") - 1
    ok = (idx >= 0) & (night.hr_t_s < night.epoch_t_s[idx] + EPOCH_S)
    n = len(night.epoch_t_s)
    sums = np.bincount(idx[ok], weights=night.hr_bpm[ok], minlength=n)
    counts = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out
