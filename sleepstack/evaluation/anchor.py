"""The anchor: SleepECG's pretrained ``wrn-gru-mesa`` stager scored on the slpdb-rr records.

SleepECG 0.6 (Hofer & Brunner, BSD-3; https://github.com/cbrnr/sleepecg) ships a GRU that
stages wake / NREM / REM from heartbeat times, age and sex, trained on 1,971 MESA nights.
It is an optional extra (``pip install -e '.[anchors]'``: sleepecg, keras 3 and jax for
keras's backend) and never part of the product: ``sleepstack evaluate slpdb DIR --anchor
sleepecg`` scores it on the same records and with the same figures as our models, so the
docs/science.md's table has both rows from one command.

Inputs per record: the heartbeat times (the first beat's start, then every interval's
end, s from the record's start), the record's start clock time, age and sex from
``meta.csv``; the stage grid is the record's own (30-s epochs from its start). Its NREM
is scored as light sleep, so its 3- and 2-class figures are comparable with ours and its
4-class figures are not reported (it has no deep class).
"""

from __future__ import annotations

import contextlib
import datetime
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from core.errors import InputError
from core.nights.stages import SleepStage
from sleepstack.datasets.slpdb import SlpdbRecord, SubjectInfo, read_meta

__all__ = ["ANCHORS", "ANCHOR_MODEL", "Stager", "anchor_predictions", "heartbeat_times", "sleepecg_stager"]

ANCHORS: Final = ("sleepecg",)
ANCHOR_MODEL: Final = "SleepECG 0.6 wrn-gru-mesa (pretrained on MESA)"
#: A stager: (heartbeat times s, number of 30-s epochs, subject info) -> one SleepECG label per epoch
#: (1 NREM, 2 REM, 3 wake, 0 undefined; the wake-rem-nrem mode's integers).
Stager = Callable[[npt.NDArray[np.float64], int, SubjectInfo], npt.NDArray[np.int64]]
#: SleepECG's wake-rem-nrem labels -> our stages (NREM scored as light sleep; undefined as unscored).
_LABELS: Final = {0: -1, 1: int(SleepStage.LIGHT), 2: int(SleepStage.REM), 3: int(SleepStage.WAKE)}


def heartbeat_times(rec: SlpdbRecord) -> npt.NDArray[np.float64]:
    """Times of the record's heartbeats (s from its start): the first interval's start, then each end."""
    if len(rec.beat_t_s) == 0:
        return np.zeros(0)
    return np.concatenate([[rec.beat_t_s[0] - rec.rr_ms[0] / 1000.0], rec.beat_t_s])


def sleepecg_stager(classifier: str = "wrn-gru-mesa") -> Stager:
    """SleepECG's pretrained ``classifier``; :class:`InputError` when the anchors extra is missing."""
    try:
        from sleepecg.classification import load_classifier, stage
        from sleepecg.io.sleep_readers import Gender, SleepRecord, SubjectData
    except ImportError as exc:
        raise InputError("--anchor", f"sleepecg needs the anchors extra: pip install -e '.[anchors]' ({exc})") from None
    clf = load_classifier(classifier, "SleepECG")
    if clf.stages_mode != "wake-rem-nrem":
        raise InputError("--anchor", f"{classifier} stages {clf.stages_mode}, not wake-rem-nrem")

    def run(beats_s: npt.NDArray[np.float64], epochs: int, info: SubjectInfo) -> npt.NDArray[np.int64]:
        record = SleepRecord(
            sleep_stages=np.zeros(epochs, dtype=int),  # only its length is read: the epoch grid
            sleep_stage_duration=30,
            heartbeat_times=beats_s,
            recording_start_time=datetime.time.fromisoformat(info.start_clock),
            subject_data=SubjectData(gender=Gender.MALE if info.sex == "M" else Gender.FEMALE, age=info.age_y),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Keras's progress bars: not where the figures go
            return np.asarray(stage(clf, record, return_mode="int"), dtype=np.int64)

    return run


def anchor_stages(rec: SlpdbRecord, info: SubjectInfo, stager: Stager) -> npt.NDArray[np.int8]:
    """Our stage codes for each scored epoch of ``rec`` from ``stager`` (-1 where it gives none)."""
    epochs = int(rec.epoch_t_s[-1] // 30) + 1 if len(rec.epoch_t_s) else 0
    labels = stager(heartbeat_times(rec), epochs, info)
    out = np.full(len(rec.epoch_t_s), -1, dtype=np.int8)
    idx = (rec.epoch_t_s // 30).astype(int)
    ok = idx < len(labels)
    out[ok] = [_LABELS.get(int(v), -1) for v in labels[idx[ok]]]
    return out


def anchor_predictions(
    root: Path, records: list[SlpdbRecord], stager: Stager | None = None
) -> list[npt.NDArray[np.int8]]:
    """The anchor's stages of each of ``records`` (read from ``root``), shape (n_epochs,) each.

    An epoch the anchor leaves undefined counts as wake: it is a prediction the anchor failed
    to make, not one to drop.
    """
    meta = read_meta(root)
    missing = sorted({r.record for r in records} - set(meta))
    if missing:
        raise InputError("evaluate slpdb", f"meta.csv has no age and sex for {', '.join(missing)}")
    run = stager or sleepecg_stager()
    preds = []
    for r in records:
        p = anchor_stages(r, meta[r.record], run)
        preds.append(np.where(p < 0, np.int8(SleepStage.WAKE), p).astype(np.int8))
    return preds
