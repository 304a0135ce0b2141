"""Deterministic, physiologically plausible simulated nights with ground truth.

Model (all times in seconds from lights-off ``t0``; sample rate ``fs_hz``):

* Hypnogram: 4-6 NREM/REM cycles of ~90 min (Carskadon & Dement, *Normal human sleep*,
  in Principles and Practice of Sleep Medicine, 2011): deep sleep concentrated in the
  first cycles, REM periods lengthening towards morning, brief awakenings, a sleep
  onset latency and a final awakening; optionally one bed exit during the night.
* Heart: RR intervals from a stage-dependent mean heart rate (wake > REM > light > deep),
  a first-order lag between stages, respiratory sinus arrhythmia whose depth rises with
  vagal tone (deep > light > REM), and AR(1) beat-to-beat noise. Each apnoea leaves the
  cyclic variation of heart rate it leaves in patients: a slowing during the pause and a
  surge of 8-16 beats/min at its end, peaking ~5 s after breathing resumes and fading over
  ~15 s (Guilleminault C. et al., "Cyclical variation of the heart rate in sleep apnoea
  syndrome", Lancet 1984;1:126-131). Or the beat sequence of a real recording
  (``rr_source_ms``), whose RR intervals are replayed as given.
* Breathing: 10-20 breaths/min, slower and more regular in deep sleep, irregular in REM;
  optional breathing pauses (apnoeas) of 10-25 s during sleep, in runs of 3-12 events
  that recur every 50-85 s (a pause, then 40-60 s of breathing), as obstructive events
  cluster in patients and give the heart rate its cycles (Guilleminault 1984; Hayano J.
  et al., Circ. Arrhythm. Electrophysiol. 4(1):64-72, 2011).
* Tachycardia (optional, ``tachycardia_per_night``): episodes of 1-8 min during sleep in
  which the heart rate rises by 50-75 beats/min (through the same 45-s lag as every
  change of rate), drawn from their own random stream so the hypnogram, breathing and
  apnoeas are the same with or without them; not with ``rr_source_ms``.
* Bed sensor (ballistocardiogram + respiration): per beat a BCG complex (a Gabor wavelet,
  8 Hz carrier, ~0.2 s after the R wave) modulated by respiration, a respiratory
  pressure wave, movement bursts at wake transitions, posture steps after movements,
  and white sensor noise; only noise while the bed is empty. Quantised to int16 counts.
* Strap: one Heart Rate Measurement a second carrying the RR intervals (quantised to
  1/1024 s) that ended in that second and the device's rounded heart rate.

Everything is vectorised except the beat and breath recurrences; a night of 8 h at
100 Hz takes well under a second (>> 1000x real time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import signal

from core.ble.bed_profile import BedNotification
from core.ble.hrm import HeartRateMeasurement
from core.contract import BedFrame, StrapSample
from core.contract.epochs import EPOCH_S
from core.nights.stages import SleepStage

__all__ = [
    "BED_NOISE_COUNTS",
    "FIRST_NIGHT",
    "FIRST_NIGHT_T0_MS",
    "MAX_NIGHT_MS",
    "GroundTruthEpochs",
    "SimConfig",
    "SimulatedNight",
    "beats_measurements",
    "bed_notifications",
    "cohort",
    "latest_first_night",
    "night_records",
    "simulate_night",
    "strap_measurements",
    "strap_samples",
]

FloatArray = npt.NDArray[np.float64]

#: Sensor noise of the simulated bed sensor, ADC counts (std).
BED_NOISE_COUNTS: Final = 15.0
_HR_OFFSET_BPM: Final = {SleepStage.WAKE: 9.0, SleepStage.LIGHT: 2.0, SleepStage.DEEP: -3.0, SleepStage.REM: 4.0}
_RSA_MS: Final = {SleepStage.WAKE: 18.0, SleepStage.LIGHT: 30.0, SleepStage.DEEP: 40.0, SleepStage.REM: 14.0}
_RR_NOISE_MS: Final = {SleepStage.WAKE: 25.0, SleepStage.LIGHT: 14.0, SleepStage.DEEP: 8.0, SleepStage.REM: 22.0}
_BR_OFFSET: Final = {SleepStage.WAKE: 1.5, SleepStage.LIGHT: 0.0, SleepStage.DEEP: -1.0, SleepStage.REM: 1.0}
_BR_CV: Final = {SleepStage.WAKE: 0.10, SleepStage.LIGHT: 0.06, SleepStage.DEEP: 0.03, SleepStage.REM: 0.13}


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. ``t0_ms`` (lights-off, ms UTC) is snapped to the epoch grid."""

    subject_id: str
    t0_ms: int
    seed: int
    fs_hz: float = 100.0
    bed_exit: bool = True
    apnea_per_hour: float = 0.0
    rr_source_ms: FloatArray | None = field(default=None, compare=False)
    tachycardia_per_night: int = 0


@dataclass(frozen=True, slots=True)
class GroundTruthEpochs:
    """Per-epoch truth, arrays of shape (n_epochs,)."""

    t_s: FloatArray  # epoch start, s from t0
    stage: npt.NDArray[np.int8]  # SleepStage codes
    in_bed: npt.NDArray[np.bool_]
    hr_bpm: FloatArray  # 60 / mean RR of beats in the epoch (NaN if < 2 beats)
    br_per_min: FloatArray  # breaths starting in the epoch x 2 (NaN when out of bed)
    apnea: npt.NDArray[np.bool_]  # a breathing pause overlaps the epoch


@dataclass(frozen=True, slots=True)
class SimulatedNight:
    """A simulated night: signals, device records' raw material and ground truth."""

    config: SimConfig
    t0_ms: int
    fs_hz: float
    epochs: GroundTruthEpochs
    beat_t_s: FloatArray  # (n_beats,) R-wave times, s from t0
    breath_t_s: FloatArray  # (n_breaths,) inspiration onsets, s from t0
    events: list[dict[str, float | str]]  # bed_exit / apnea / tachycardia with start_s, end_s
    bed_counts: npt.NDArray[np.int16]  # (n_samples,) at fs_hz

    @property
    def duration_s(self) -> float:
        return len(self.epochs.t_s) * EPOCH_S


# --------------------------------------------------------------------------- hypnogram


def _hypnogram(rng: np.random.Generator) -> npt.NDArray[np.int8]:
    """Stage per 30-s epoch for one night (~7.5-8.5 h)."""
    ep: list[int] = []

    def add(stage: SleepStage, minutes: float) -> None:
        ep.extend([int(stage)] * max(1, round(minutes * 2)))

    add(SleepStage.WAKE, rng.uniform(6, 20))  # sleep onset latency
    n_cycles = int(rng.integers(4, 6))
    for k in range(n_cycles):
        cycle = rng.uniform(80, 105)
        deep = cycle * max(0.0, 0.40 - 0.12 * k) * rng.uniform(0.8, 1.2)
        rem = min(cycle * 0.45, (8 + 7 * k) * rng.uniform(0.8, 1.2))
        light = max(10.0, cycle - deep - rem)
        add(SleepStage.LIGHT, light * 0.6)
        if deep >= 1:
            add(SleepStage.DEEP, deep)
        add(SleepStage.LIGHT, light * 0.4)
        if rng.random() < 0.5:  # brief awakening, usually around REM
            add(SleepStage.WAKE, rng.uniform(1, 4))
        add(SleepStage.REM, rem)
    add(SleepStage.WAKE, rng.uniform(5, 15))  # final awakening before getting up
    return np.asarray(ep, dtype=np.int8)


def _bed_exit(
    stage: npt.NDArray[np.int8], rng: np.random.Generator
) -> tuple[npt.NDArray[np.bool_], list[dict[str, float | str]]]:
    """Insert one bed exit (wake, out of bed) in the middle third of the night."""
    n = len(stage)
    in_bed = np.ones(n, dtype=bool)
    start = int(rng.integers(n // 3, 2 * n // 3))
    length = int(rng.integers(6, 16))  # 3-8 min
    stage[max(0, start - 2) : start + length + 2] = SleepStage.WAKE
    in_bed[start : start + length] = False
    return in_bed, [{"kind": "bed_exit", "start_s": start * EPOCH_S, "end_s": (start + length) * EPOCH_S}]


def _lag(x: FloatArray, tau_s: float) -> FloatArray:
    """First-order lag (1-s steps) so physiology changes smoothly between stages."""
    a = np.exp(-1.0 / tau_s)
    y: FloatArray = signal.lfilter([1 - a], [1, -a], x, zi=[x[0] * a])[0]
    return y


# --------------------------------------------------------------------------- beats, breaths


def _breaths(
    stage_s: npt.NDArray[np.int8], br_base: float, apnea_per_hour: float, rng: np.random.Generator
) -> tuple[FloatArray, list[dict[str, float | str]]]:
    """Inspiration onsets (s) and apnoea events.

    A pause starts when a breath has run its course (the chest rests after exhaling) and
    lasts 10-25 s, so the event's [start_s, end_s) is exactly the time without
    respiratory movement, as AASM scores it (end of last breath to start of the next).
    Pauses come in runs (module docstring): a run starts at a random second of sleep free
    of other pauses, and its events follow each other after 40-60 s of breathing while the
    sleeper sleeps and no other run is in the way; runs are drawn until the night's
    Poisson count of pauses is placed (or no second is left), so the rate is kept.
    """
    n_s = len(stage_s)
    rate = _lag(br_base + np.vectorize(_BR_OFFSET.get)(stage_s).astype(float), 60.0)
    cv = np.vectorize(_BR_CV.get)(stage_s).astype(float)
    onsets: list[tuple[float, float]] = []
    if apnea_per_hour > 0:
        asleep = np.flatnonzero(stage_s != SleepStage.WAKE)
        n_ev = rng.poisson(apnea_per_hour * len(asleep) / 3600)
        drawn: list[tuple[float, float]] = []
        free = stage_s != SleepStage.WAKE  # seconds where a pause may start
        while len(drawn) < n_ev and free.any():
            t = float(rng.choice(np.flatnonzero(free)))
            for _ in range(min(int(rng.integers(3, 13)), n_ev - len(drawn))):
                if t >= n_s or not free[int(t)]:
                    break  # the sleeper woke, or another run is there
                dur = float(rng.uniform(10, 25))
                drawn.append((t, dur))
                free[max(0, int(t) - 65) : int(t + dur) + 40] = False  # 40 s of breathing either side
                t += dur + float(rng.uniform(40, 60))
        for t, dur in sorted(drawn):
            if not onsets or t > onsets[-1][0] + onsets[-1][1] + 40:
                onsets.append((t, dur))
    events: list[dict[str, float | str]] = []
    out: list[float] = []
    t = float(rng.uniform(0, 2))
    while t < n_s:
        if onsets and t >= onsets[0][0]:
            _, dur = onsets.pop(0)
            events.append({"kind": "apnea", "start_s": t, "end_s": min(t + dur, float(n_s))})
            t += dur
            continue
        i = int(t)
        out.append(t)
        t += 60.0 / rate[i] * max(0.5, 1 + cv[i] * rng.standard_normal())
    return np.asarray(out), events


def _cvhr_bpm(n_s: int, apneas: list[dict[str, float | str]], rng: np.random.Generator) -> FloatArray:
    """Heart-rate change (beats/min, shape (n_s,)) the apnoeas leave (module docstring): during
    each pause a slowing towards -4 bpm, then a surge of 8-16 bpm rising over ~5 s after it
    ends and decaying with a 6-s time constant."""
    out = np.zeros(n_s)
    t = np.arange(n_s, dtype=float)
    for ev in apneas:
        start, end = float(ev["start_s"]), float(ev["end_s"])
        during = (t >= start) & (t < end)
        out[during] -= 4.0 * np.minimum(1.0, (t[during] - start) / 5.0)
        lo, hi = min(int(np.ceil(end)), n_s), min(int(np.ceil(end)) + 60, n_s)
        after = t[lo:hi] - end
        out[lo:hi] += rng.uniform(8.0, 16.0) * (after / 5.0) * np.exp(1.0 - after / 5.0)
    return out


def _tachycardia(
    stage_s: npt.NDArray[np.int8], in_bed_s: npt.NDArray[np.bool_], count: int, seed: int
) -> tuple[FloatArray, list[dict[str, float | str]]]:
    """Extra heart rate (bpm per second) of ``count`` tachycardia episodes in sleep, and the episodes.

    Each lasts 1-8 min and adds 50-75 bpm; episodes are at least 10 min apart. Own random
    stream (``seed``, 1), so the draws before the beats do not change.
    """
    rng = np.random.default_rng([seed, 1])
    extra = np.zeros(len(stage_s))
    asleep = np.flatnonzero((stage_s != SleepStage.WAKE) & in_bed_s)
    events: list[dict[str, float | str]] = []
    for t in np.sort(rng.choice(asleep, size=min(count, len(asleep)), replace=False)) if count else []:
        dur = int(rng.integers(60, 481))
        if events and t < float(events[-1]["end_s"]) + 600:
            continue
        end = min(int(t) + dur, len(stage_s))
        extra[int(t) : end] = rng.uniform(50, 75)
        events.append({"kind": "tachycardia", "start_s": float(t), "end_s": float(end)})
    return extra, events


def _beats(
    stage_s: npt.NDArray[np.int8],
    hr_base: float,
    breath_t: FloatArray,
    rng: np.random.Generator,
    extra_bpm: FloatArray | None = None,
    cvhr_bpm: FloatArray | None = None,
) -> FloatArray:
    n_s = len(stage_s)
    drift = np.linspace(1.5, -2.5, n_s)  # circadian fall of HR across the night
    extra = np.zeros(n_s) if extra_bpm is None else extra_bpm
    hr = _lag(hr_base + drift + extra + np.vectorize(_HR_OFFSET_BPM.get)(stage_s).astype(float), 45.0)
    if cvhr_bpm is not None:
        hr = hr + cvhr_bpm  # the apnoeas' heart-rate cycles are fast: not lagged like the stages
    rsa = _lag(np.vectorize(_RSA_MS.get)(stage_s).astype(float), 30.0)
    noise_sd = np.vectorize(_RR_NOISE_MS.get)(stage_s).astype(float)
    resp_phase = np.interp(np.arange(n_s + 1, dtype=float), breath_t, np.arange(len(breath_t), dtype=float))
    out: list[float] = []
    t, ar = 0.3, 0.0
    while t < n_s - 2:
        i = int(t)
        out.append(t)
        phase = np.interp(t, np.arange(n_s + 1), resp_phase)
        ar = 0.7 * ar + noise_sd[i] * np.sqrt(1 - 0.49) * rng.standard_normal()
        rr_ms = 60000.0 / hr[i] - rsa[i] * np.cos(2 * np.pi * phase) + ar
        t += float(np.clip(rr_ms, 330.0, 1800.0)) / 1000.0
    return np.asarray(out)


def _beats_from_source(rr_ms: FloatArray, n_s: int, rng: np.random.Generator) -> FloatArray:
    """Replay a real RR series (ms) as beat times, starting at a random offset, looping."""
    rr = np.asarray(rr_ms, dtype=float)
    rr = rr[np.isfinite(rr) & (rr >= 250) & (rr <= 2500)]  # drop dropouts and gaps
    if len(rr) < 100:
        raise ValueError("rr_source_ms needs at least 100 plausible intervals (250-2500 ms)")
    start = int(rng.integers(0, len(rr)))
    reps = int(np.ceil((n_s * 1000 / rr.mean() + len(rr)) / len(rr))) + 1
    seq = np.roll(np.tile(rr, reps), -start)
    t = 0.3 + np.concatenate([[0.0], np.cumsum(seq) / 1000.0])
    return t[t < n_s - 2]


# --------------------------------------------------------------------------- bed signal


def _bed_signal(
    n: int,
    fs: float,
    beat_t: FloatArray,
    breath_t: FloatArray,
    in_bed_s: npt.NDArray[np.bool_],
    move_s: npt.NDArray[np.bool_],
    rng: np.random.Generator,
    pauses: list[tuple[float, float]],
) -> npt.NDArray[np.int16]:
    t = np.arange(n) / fs
    # respiration: phase advances one cycle per breath; still (end-expiration) in pauses
    knots_t, knots_phase = breath_t, np.arange(len(breath_t), dtype=float)
    if pauses:
        starts = np.array([p[0] for p in pauses])
        nxt = np.searchsorted(breath_t, starts).astype(float)  # the breath after the pause
        knots_t = np.concatenate([knots_t, starts])
        knots_phase = np.concatenate([knots_phase, nxt])
        order = np.argsort(knots_t, kind="stable")
        knots_t, knots_phase = knots_t[order], knots_phase[order]
    resp = -np.cos(2 * np.pi * np.interp(t, knots_t, knots_phase))
    resp_amp = rng.uniform(500, 900)
    # BCG: a Gabor wavelet per beat, 0.2 s after the R wave, amplitude breathing-modulated
    tk = np.arange(-0.25, 0.25, 1 / fs)
    template = np.exp(-(tk**2) / (2 * 0.045**2)) * np.cos(2 * np.pi * 8.0 * tk)
    impulses = np.zeros(n)
    pos = np.round((beat_t + 0.2) * fs).astype(int)
    ok = (pos >= 0) & (pos < n)
    bcg_amp = rng.uniform(250, 400)
    np.add.at(impulses, pos[ok], bcg_amp * (1 + 0.15 * np.interp(beat_t[ok], t, resp)))
    bcg = signal.oaconvolve(impulses, template, mode="same")
    # movement: band-limited bursts during flagged seconds, and a posture step after each
    sec = np.minimum((t).astype(int), len(move_s) - 1)
    burst = signal.lfilter([0.2], [1, -0.8], rng.standard_normal(n)) * rng.uniform(1500, 3000)
    posture = np.cumsum(np.r_[0.0, np.diff(move_s.astype(int)) < 0] * rng.normal(0, 300, len(move_s)))
    x = np.where(move_s[sec], burst, 0.0) + posture[sec] + resp_amp * resp + bcg
    x = np.where(in_bed_s[sec], x, 0.0) + rng.normal(0.0, BED_NOISE_COUNTS, n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- night


def simulate_night(config: SimConfig) -> SimulatedNight:
    """Simulate one night deterministically from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    t0_ms = config.t0_ms - config.t0_ms % (EPOCH_S * 1000)
    stage = _hypnogram(rng)
    events: list[dict[str, float | str]] = []
    in_bed = np.ones(len(stage), dtype=bool)
    if config.bed_exit:
        in_bed, events = _bed_exit(stage, rng)
    n_s = len(stage) * EPOCH_S
    stage_s = np.repeat(stage, EPOCH_S)
    in_bed_s = np.repeat(in_bed, EPOCH_S)

    breath_t, apneas = _breaths(stage_s, rng.uniform(12, 16), config.apnea_per_hour, rng)
    events += apneas
    if config.rr_source_ms is not None:
        beat_t = _beats_from_source(config.rr_source_ms, n_s, rng)
    else:
        extra_bpm, tachycardia = _tachycardia(stage_s, in_bed_s, config.tachycardia_per_night, config.seed)
        events += tachycardia
        # the apnoeas' heart-rate cycles draw from their own stream: a night's other signals stay
        # those of the same seed without them
        cvhr = _cvhr_bpm(n_s, apneas, np.random.default_rng([config.seed, 2000])) if apneas else None
        beat_t = _beats(stage_s, rng.uniform(52, 66), breath_t, rng, extra_bpm, cvhr)

    # movement: around wake transitions and scattered through wake, never out of bed
    move_s = np.zeros(n_s, dtype=bool)
    trans = np.flatnonzero(np.diff(stage_s.astype(int)) != 0) + 1
    for ts in trans:
        if stage_s[ts] == SleepStage.WAKE or stage_s[ts - 1] == SleepStage.WAKE or rng.random() < 0.2:
            move_s[ts : ts + int(rng.integers(2, 10))] = True
    wake_s = np.flatnonzero(stage_s == SleepStage.WAKE)
    for ts in rng.choice(wake_s, size=len(wake_s) // 60, replace=False) if len(wake_s) else []:
        move_s[ts : ts + int(rng.integers(2, 8))] = True
    move_s &= in_bed_s

    n = int(n_s * config.fs_hz)
    pauses = [(float(e["start_s"]), float(e["end_s"])) for e in apneas]
    bed = _bed_signal(n, config.fs_hz, beat_t, breath_t, in_bed_s, move_s, rng, pauses)
    truth = _truth(stage, in_bed, beat_t, breath_t, events)
    return SimulatedNight(config, t0_ms, config.fs_hz, truth, beat_t, breath_t, events, bed)


def _truth(
    stage: npt.NDArray[np.int8],
    in_bed: npt.NDArray[np.bool_],
    beat_t: FloatArray,
    breath_t: FloatArray,
    events: list[dict[str, float | str]],
) -> GroundTruthEpochs:
    n_ep = len(stage)
    edges = np.arange(n_ep + 1, dtype=float) * EPOCH_S
    ep_of_beat = np.searchsorted(edges, beat_t[1:], side="right") - 1
    rr = np.diff(beat_t)
    sums = np.bincount(ep_of_beat, weights=rr, minlength=n_ep)[:n_ep]
    counts = np.bincount(ep_of_beat, minlength=n_ep)[:n_ep]
    with np.errstate(invalid="ignore", divide="ignore"):
        hr = np.where(counts >= 2, 60.0 / (sums / np.maximum(counts, 1)), np.nan)
    breaths = np.histogram(breath_t, edges)[0].astype(float) * (60.0 / EPOCH_S)
    br = np.where(in_bed, breaths, np.nan)
    apnea = np.zeros(n_ep, dtype=bool)
    for ev in events:
        if ev["kind"] == "apnea":
            apnea[int(float(ev["start_s"]) // EPOCH_S) : int(float(ev["end_s"]) // EPOCH_S) + 1] = True
    return GroundTruthEpochs(edges[:-1], stage.copy(), in_bed, hr, br, apnea)


# --------------------------------------------------------------------------- records


def strap_measurements(night: SimulatedNight) -> list[tuple[int, HeartRateMeasurement]]:
    """What a chest strap notifies during the night: one measurement per second.

    Each carries the heart rate (from the last four beats) and the RR intervals, rounded
    to the 1/1024-s resolution of the Heart Rate Service, that ended in that second.
    Returns (time ms UTC, measurement) pairs in time order.
    """
    return beats_measurements(night.beat_t_s, night.t0_ms, night.duration_s)


def beats_measurements(beat_t_s: FloatArray, t0_ms: int, duration_s: float) -> list[tuple[int, HeartRateMeasurement]]:
    """What a chest strap notifies for beats at ``beat_t_s`` (s from ``t0_ms``, shape (n_beats,)).

    See :func:`strap_measurements`; also replays a real recording's beats (e.g. slpdb's).
    """
    t0 = t0_ms
    rr_ms = np.diff(beat_t_s) * 1000.0
    rr_q = np.round(rr_ms * 1.024) * (1000 / 1024)  # exactly what decoding 0x2A37 yields
    sec = np.floor(beat_t_s[1:]).astype(int)
    bounds = np.searchsorted(sec, np.arange(int(duration_s) + 1))
    out: list[tuple[int, HeartRateMeasurement]] = []
    last_hr = 0
    for s in range(1, int(duration_s)):
        lo, hi = bounds[s - 1], bounds[s]
        recent = rr_ms[max(0, hi - 4) : hi]
        if len(recent):
            last_hr = round(60000.0 / recent.mean())
        if last_hr == 0:
            continue
        rr = tuple(float(v) for v in rr_q[lo:hi])
        out.append((t0 + s * 1000, HeartRateMeasurement(hr_bpm=last_hr, rr_ms=rr, sensor_contact=True)))
    return out


def bed_notifications(night: SimulatedNight, samples_per_frame: int = 50) -> list[tuple[int, BedNotification]]:
    """What a bed sensor (sleepstack Bed Sensor profile) notifies: consecutive frames.

    Returns (time the frame is sent = just after its last sample, ms UTC, frame) pairs;
    sequence numbers wrap at 2**16 as on the wire.
    """
    counts = night.bed_counts
    fs = round(night.fs_hz)
    out: list[tuple[int, BedNotification]] = []
    for k, i in enumerate(range(0, len(counts), samples_per_frame)):
        chunk = counts[i : i + samples_per_frame]
        t_ms = night.t0_ms + round(i * 1000 / night.fs_hz)
        note = BedNotification(k % 65536, t_ms, fs, chunk)
        out.append((math.ceil(note.end_time_ms), note))
    return out


def night_records(
    night: SimulatedNight,
    *,
    strap_device: str | None,
    bed_device: str | None,
    ingest_delay_ms: int = 200,
) -> list[StrapSample | BedFrame]:
    """The records a strap and a bed sensor would produce for the night, in time order.

    Strap: one sample per second with the RR intervals (1/1024-s resolution) that ended in
    that second. Bed: one frame per clock-aligned 30-s epoch (``fs_hz * 30`` samples).
    """
    subject, t0 = night.config.subject_id, night.t0_ms
    out: list[tuple[int, StrapSample | BedFrame]] = []
    if strap_device:
        samples = strap_samples(strap_measurements(night), strap_device, subject, ingest_delay_ms)
        out += [(r.event_time_ms, r) for r in samples]
    if bed_device:
        per = round(night.fs_hz * EPOCH_S)
        counts = night.bed_counts
        for k in range(len(counts) // per):
            t_ms = t0 + k * EPOCH_S * 1000
            out.append(
                (
                    t_ms + EPOCH_S * 1000,
                    BedFrame(
                        device_id=bed_device,
                        subject_id=subject,
                        device_time_ms=t_ms,
                        event_time_ms=t_ms,
                        ingest_time_ms=t_ms + EPOCH_S * 1000 + ingest_delay_ms,
                        fs_hz=night.fs_hz,
                        samples=tuple(counts[k * per : (k + 1) * per].tolist()),
                    ),
                )
            )
    out.sort(key=lambda p: p[0])
    return [r for _, r in out]


def strap_samples(
    measurements: list[tuple[int, HeartRateMeasurement]], device_id: str, subject_id: str, ingest_delay_ms: int = 200
) -> list[StrapSample]:
    """The strap records of (time ms UTC, measurement) pairs, as the collector builds them."""
    return [
        StrapSample(
            device_id=device_id,
            subject_id=subject_id,
            device_time_ms=t_ms,
            event_time_ms=t_ms,
            ingest_time_ms=t_ms + ingest_delay_ms,
            hr_bpm=m.hr_bpm,
            rr_ms=m.rr_ms,
            sensor_contact=True,
            energy_kj=None,
        )
        for t_ms, m in measurements
    ]


#: The evening of the first simulated night (demo, benchmarks, evaluation).
FIRST_NIGHT: Final = date(2026, 1, 5)
#: A simulated night ends within this long after lights-off (sleep onset, at most five cycles, waking).
MAX_NIGHT_MS: Final = 10 * 3_600_000
#: 22:00 UTC on the first night: lights-off of single-night simulations, ms since the epoch.
FIRST_NIGHT_T0_MS: Final = int(datetime(2026, 1, 5, 22, tzinfo=UTC).timestamp() * 1000)


def cohort(
    subjects: int,
    nights: int,
    seed: int,
    rr_source_ms: npt.NDArray[np.float64] | None = None,
    first_night: date = FIRST_NIGHT,
) -> list[SimConfig]:
    """Deterministic cohort: subject k, night j; lights-off between 22:00 and 23:30 UTC.

    ``rr_source_ms``: an optional real RR series (ms, shape (n_beats,)) driving every night's beats.
    ``first_night``: the evening of night 0; the nights themselves (seeds, apnoea rates,
    lights-off times of day) do not depend on it.
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in range(subjects):
        for n in range(nights):
            day = first_night + timedelta(days=n)
            lights_off = datetime(day.year, day.month, day.day, 22, tzinfo=UTC) + timedelta(
                minutes=int(rng.integers(0, 90))
            )
            out.append(
                SimConfig(
                    subject_id=f"s{s + 1:03d}",
                    t0_ms=int(lights_off.timestamp() * 1000),
                    seed=int(rng.integers(0, 2**31)),
                    apnea_per_hour=float(rng.uniform(0, 6)),
                    rr_source_ms=rr_source_ms,
                )
            )
    return out


def latest_first_night(nights: int, now_ms: int) -> date:
    """The ``first_night`` of the latest :func:`cohort` of ``nights`` nights that has ended by ``now_ms``.

    Its last night's lights-off is at most 23:30 UTC and the night at most
    :data:`MAX_NIGHT_MS` long, so every sample lies before ``now_ms``: last night when
    that night is over, the night before otherwise.
    """
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    last = now.date() - timedelta(days=1)
    latest_end = datetime(last.year, last.month, last.day, 23, 30, tzinfo=UTC) + timedelta(milliseconds=MAX_NIGHT_MS)
    if latest_end > now:
        last -= timedelta(days=1)
    return last - timedelta(days=nights - 1)
