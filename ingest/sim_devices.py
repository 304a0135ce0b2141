"""Simulated nights as BLE peripherals: what a strap and a bed sensor would have notified.

Used by the demo, the ingest benchmark and the tests to drive the collector through the
fake bleak backend (:mod:`ingest.fake_ble`) with realistic notification streams.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.bed_profile import encode_bed_frame
from core.hrm import encode_hrm
from core.simulate import SimulatedNight, bed_notifications, strap_measurements
from ingest.fake_ble import Drop, FakePeripheral, ScriptItem

__all__ = ["MALFORMED_HRM", "bed_address", "simulated_peripherals", "strap_address"]

#: Broken Heart Rate Measurements a faulty strap might send (each must be quarantined).
MALFORMED_HRM: tuple[bytes, ...] = (
    b"",  # zero-length
    bytes([0x10, 60]),  # RR flag set, no RR bytes
    bytes([0x01, 60]),  # 16-bit heart rate promised, 8 bits sent
    bytes([0x16, 0, 0x00, 0x04]),  # heart rate 0 with contact detected
)


def strap_address(subject_id: str) -> str:
    return f"strap-{subject_id}"


def bed_address(subject_id: str) -> str:
    return f"bed-{subject_id}"


def simulated_peripherals(
    nights: Sequence[SimulatedNight],
    *,
    seed: int = 0,
    drop_ms: int = 20_000,
    samples_per_frame: int = 50,
    malformed: bool = False,
) -> list[FakePeripheral]:
    """One strap and one bed peripheral per subject, playing the subject's nights in order.

    With ``drop_ms`` > 0 each device loses its link once per night, at a random point, for
    that long (the sensor's notifications in that time are lost and the collector must
    reconnect). With ``malformed`` the first subject's strap also sends
    :data:`MALFORMED_HRM` ten minutes into its first night.
    """
    rng = np.random.default_rng(seed)
    scripts: dict[tuple[str, str], list[ScriptItem]] = {}
    for k, night in enumerate(sorted(nights, key=lambda n: (n.config.subject_id, n.t0_ms))):
        subject = night.config.subject_id
        strap: list[ScriptItem] = [(t, encode_hrm(m)) for t, m in strap_measurements(night)]
        bed: list[ScriptItem] = [(t, encode_bed_frame(n)) for t, n in bed_notifications(night, samples_per_frame)]
        if malformed and k == 0:
            at = min(len(strap) // 3, 600)
            t_bad = strap[at][0]  # type: ignore[index]
            strap[at:at] = [(t_bad + 1 + j, p) for j, p in enumerate(MALFORMED_HRM)]
        for script in (strap, bed) if drop_ms > 0 else ():
            at = int(rng.integers(len(script) // 10, 9 * len(script) // 10))
            script.insert(at, Drop(drop_ms, refuse=int(rng.integers(1, 4))))
        scripts.setdefault((strap_address(subject), "strap"), []).extend(strap)
        scripts.setdefault((bed_address(subject), "bed"), []).extend(bed)
    return [
        FakePeripheral(address=addr, kind=kind, script=script, name=addr, samples_per_frame=samples_per_frame)
        for (addr, kind), script in scripts.items()
    ]
