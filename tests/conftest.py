from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from core.simulate import SimConfig, SimulatedNight, simulate_night

#: Real recorded data beside the checkout (see ../shared/data/README.md).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
T0_MS = 1_767_651_000_000  # 2026-01-05T22:10Z


def require_data(rel: str) -> Path:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"shared data {rel} not present")
    return path


@cache
def sim_night(seed: int = 1, apnea_per_hour: float = 4.0) -> SimulatedNight:
    return simulate_night(SimConfig("s001", T0_MS, seed=seed, apnea_per_hour=apnea_per_hour))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
