"""Sleep stages: the four classes sleepstack scores and their standard collapses."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["RK_STAGES", "SleepStage", "to_sleep_wake", "to_three_class"]


class SleepStage(IntEnum):
    """Four-class staging of a 30-s epoch (AASM N1+N2 = light, N3 = deep)."""

    WAKE = 0
    LIGHT = 1
    DEEP = 2
    REM = 3

    @property
    def label(self) -> str:
        return self.name.lower()


#: Rechtschaffen & Kales codes as the PSG corpora write them (0 W, 1-4 NREM, 5 REM, -1
#: movement time or unscored) -> SleepStage: S1+S2 light, S3+S4 deep; -1 stays unscored.
RK_STAGES: Final[dict[int, int]] = {
    0: SleepStage.WAKE,
    1: SleepStage.LIGHT,
    2: SleepStage.LIGHT,
    3: SleepStage.DEEP,
    4: SleepStage.DEEP,
    5: SleepStage.REM,
    -1: -1,
}


def to_three_class(stages: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Wake/NREM/REM collapse: 0 wake, 1 NREM (light + deep), 2 REM."""
    s = np.asarray(stages)
    out: npt.NDArray[np.int8] = np.where(s == SleepStage.WAKE, 0, np.where(s == SleepStage.REM, 2, 1)).astype(np.int8)
    return out


def to_sleep_wake(stages: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Sleep/wake collapse: 0 wake, 1 sleep."""
    out: npt.NDArray[np.int8] = (np.asarray(stages) != SleepStage.WAKE).astype(np.int8)
    return out
