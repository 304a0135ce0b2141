"""The always-on local stack: services under a supervisor, kill -9 of any part, restarts, nothing lost.

Each test starts real services (kinesalite on disk, the speed layer, the delivery, the
scheduler, the dashboard) through the CLI in a private ``SLEEPSTACK_HOME`` and replays a simulated
night through the real collector.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq
import pytest

from ingest.fake_ble import recording_lines
from ingest.simulated_devices import simulated_peripherals
from ingest.spool import Spool
from local.live_store import LocalLiveStore
from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, simulate_night
from sleepstack.cli.devices import replay_shift_key

pytestmark = [pytest.mark.slow, pytest.mark.integration]

T = TypeVar("T")

MINUTES = 40
SPEED = 120.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two subjects' first 40 minutes (strap + bed each), with a link drop per device."""
    out = tmp_path_factory.mktemp("recordings")
    nights = [simulate_night(SimConfig(f"c{k}", FIRST_NIGHT_T0_MS + 600_000 * k, 11 + k)) for k in range(2)]
    paths = []
    for p in simulated_peripherals(nights, seed=5, drop_ms=15_000):
        end = FIRST_NIGHT_T0_MS + MINUTES * 60_000
        p.script = [it for it in p.script if not isinstance(it, tuple) or it[0] < end]
        paths.append(out / f"{p.address}.jsonl")
        paths[-1].write_text("\n".join(recording_lines(p)))
    return paths


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SLEEPSTACK_HOME": str(home)}  # noqa: TID251 - the child's environment


def _cli(home: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "sleepstack.cli", *args],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def _collect_cmd(home: Path, recordings: list[Path], speed: float | None = SPEED) -> list[str]:
    argv = [sys.executable, "-m", "sleepstack.cli", "collect", *(["--speed", str(speed)] if speed else [])]
    for r in recordings:
        argv += ["--replay", str(r)]
    return argv


def _pin_replay_clock(home: Path, recordings: list[Path], shift_ms: int) -> None:
    """Both runs replay on the same clock, so their records are byte for byte comparable."""
    first = min(json.loads(line)["t_ms"] for r in recordings for line in r.read_text().splitlines()[1:2])
    spool = Spool(home / "spool" / "collector.sqlite")
    spool.set_meta(replay_shift_key(first, "latest"), shift_ms)  # collect --speed: the latest-day clock
    spool.close()


def _status(home: Path) -> dict[str, Any]:
    return json.loads(_cli(home, "stack", "status", "--json").stdout)


def _wait_for(
    probe: Callable[[], T], timeout_s: float, *, until: Callable[[T], object] = bool, every_s: float = 0.2
) -> T:
    """``probe()`` every ``every_s`` until ``until`` holds of its value or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while not until(value := probe()) and time.monotonic() < deadline:
        time.sleep(every_s)
    return value


def _running_pid(home: Path, name: str, timeout_s: float = 30.0) -> int:
    """The pid of service ``name`` once it runs (a victim killed moments ago may still be in its restart backoff)."""
    svc = _wait_for(
        lambda: _status(home)["services"][name], timeout_s, until=lambda s: s["state"] == "running" and s["pid"]
    )
    assert svc["state"] == "running" and svc["pid"], f"{name} did not come back within {timeout_s} s: {svc}"
    return int(svc["pid"])


def _outputs(home: Path) -> tuple[list[tuple[str, str, str]], set[tuple[Any, ...]]]:
    """The night's live documents and raw-lake rows: the measurements and what comes of them.

    Device statuses (and technical alerts) describe the collection itself: a killed
    collector reconnects, and reports each connect, so they differ between runs by design;
    :func:`_statuses` checks them apart."""
    store = LocalLiveStore(home / "serving" / "live.sqlite")
    docs = [d for d in store.dump() if d[0] != "status" and '"category":"technical"' not in d[2]]
    store.close()
    rows = set()
    for path in (home / "lake" / "raw").rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            if row["kind"] != "status":
                rows.add(tuple((k, json.dumps(v, sort_keys=True, default=str)) for k, v in sorted(row.items())))
    return docs, rows


def _statuses(home: Path) -> tuple[set[str], list[str]]:
    """The status record ids in the live store, and those in the raw lake (a list: duplicates show)."""
    store = LocalLiveStore(home / "serving" / "live.sqlite")
    live = {rid for kind, rid, _ in store.dump() if kind == "status"}
    store.close()
    lake = [
        r["record_id"]
        for path in (home / "lake" / "raw").rglob("*.parquet")
        for r in pq.read_table(path, columns=["record_id", "kind"]).to_pylist()
        if r["kind"] == "status"
    ]
    return live, lake


def _run(home: Path, recordings: list[Path], shift_ms: int, chaos: random.Random | None) -> dict[str, int]:
    _cli(home, "stack", "up")
    _pin_replay_clock(home, recordings, shift_ms)
    env = _env(home)
    try:
        collector = subprocess.Popen(
            _collect_cmd(home, recordings), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if chaos is not None:
            victims = ["stream", "speed_layer", "delivery", "stream", "collector"]
            moments = sorted(chaos.uniform(2.0, MINUTES * 60 / SPEED * 0.8) for _ in victims)
            start = time.monotonic()
            for victim, at in zip(chaos.sample(victims, len(victims)), moments, strict=True):
                time.sleep(max(0.0, at - (time.monotonic() - start)))
                if victim == "collector":
                    collector.send_signal(signal.SIGKILL)
                    collector.wait()
                    collector = subprocess.Popen(  # a restarted collector resumes the replay after its spool
                        _collect_cmd(home, recordings), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                else:
                    os.kill(_running_pid(home, victim), signal.SIGKILL)
        assert collector.wait(timeout=300) == 0
        _cli(home, "stack", "wait", "--idle", "--timeout", "180")
        counts: dict[str, int] = json.loads(_cli(home, "reconcile", "--json").stdout)
        if chaos is not None:
            restarts = {n: s["restarts"] for n, s in _status(home)["services"].items()}
            assert restarts["stream"] >= 2 and restarts["speed_layer"] >= 1 and restarts["delivery"] >= 1, restarts
    finally:
        _cli(home, "stack", "down", check=False)
    return counts


def test_chaos_kill_9_of_every_part_loses_and_duplicates_nothing(tmp_path: Path, recordings: list[Path]) -> None:
    shift = int(time.time() * 1000) - FIRST_NIGHT_T0_MS
    calm = _run(tmp_path / "calm", recordings, shift, chaos=None)
    stormy = _run(tmp_path / "stormy", recordings, shift, chaos=random.Random(20261201))
    assert calm["lost"] == stormy["lost"] == 0 and calm["duplicated"] == stormy["duplicated"] == 0
    assert min(calm["produced"], stormy["produced"]) > 4_000
    calm_docs, calm_rows = _outputs(tmp_path / "calm")
    stormy_docs, stormy_rows = _outputs(tmp_path / "stormy")
    for run in ("calm", "stormy"):  # device statuses: each once in the live store and in the lake
        live, lake = _statuses(tmp_path / run)
        assert live and len(lake) == len(set(lake)) and set(lake) == live
    assert stormy_docs == calm_docs  # the live store: the same documents, same ids, same content
    # the pinned clock is off the 30-s grid by some ms, as a real sensor's is: bed vitals all the same
    bed_docs = [body for kind, _, body in calm_docs if kind == "vitals" and '"source":"bed"' in body]
    assert len(bed_docs) > 100  # two beds, 40 and 30 minutes in bed: 140 epochs less the link drops
    assert stormy_rows == calm_rows  # the lake: the same rows


def _dashboard_subjects(url: str) -> list[dict[str, Any]]:
    """Open the dashboard's address as a person would (token once, then the cookie) and read the cohort."""
    import http.cookiejar
    import urllib.request

    assert url.startswith("http://127.0.0.1:") and "/?token=" in url
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(url, timeout=10) as page:  # 303 to / with the cookie, then the cohort page
        assert page.status == 200 and page.url.endswith("/")
    with opener.open(url.split("/?", maxsplit=1)[0] + "/api/subjects", timeout=10) as resp:
        subjects: list[dict[str, Any]] = json.loads(resp.read())["subjects"]
    return subjects


def test_stack_down_and_up_mid_night_loses_and_reprocesses_nothing(tmp_path: Path, recordings: list[Path]) -> None:
    home = tmp_path / "home"
    _cli(home, "stack", "up")
    port = _status(home)["services"]["stream"]["url"]
    env = _env(home)
    collector = subprocess.Popen(
        _collect_cmd(home, recordings), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(6)
    _cli(home, "stack", "down")  # the collector keeps spooling while the stream is down, then resends
    time.sleep(2)
    _cli(home, "stack", "up")
    assert _status(home)["services"]["stream"]["url"] == port  # same endpoint: the collector finds it again
    try:
        assert collector.wait(timeout=300) == 0
        _cli(home, "stack", "wait", "--idle", "--timeout", "180")
        counts = json.loads(_cli(home, "reconcile", "--json").stdout)
        subjects = _dashboard_subjects(_status(home)["services"]["dashboard"]["url"])
    finally:
        _cli(home, "stack", "down", check=False)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["produced"] > 4_000
    store = LocalLiveStore(home / "serving" / "live.sqlite")
    assert store.distinct_record_ids() > 0
    assert subjects and subjects == store.subjects()  # the stack's dashboard serves what the speed layer indexed
    store.close()


def test_a_checkpoint_the_stream_no_longer_holds_is_reported_and_reading_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _cli(home, "stack", "up")
    try:
        ckpt = home / "checkpoints" / "speed-layer.json"
        _wait_for(ckpt.exists, 20)
        os.kill(_running_pid(home, "speed_layer"), signal.SIGKILL)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps({"shardId-000000000000": "4" + "9" * 55}))  # from a stream since recreated
        lag: dict[str, Any] = _wait_for(
            lambda: _status(home)["lag"]["speed_layer"], 30, until=lambda g: g.get("checkpoint_resets"), every_s=0.3
        )
        assert lag.get("checkpoint_resets") == 1
        assert _status(home)["services"]["speed_layer"]["state"] == "running"
    finally:
        _cli(home, "stack", "down", check=False)


def test_status_without_a_stack_says_so(tmp_path: Path) -> None:
    status = json.loads(_cli(tmp_path, "stack", "status", "--json").stdout)
    assert status["running"] is False and set(status["services"]) == {
        "stream",
        "speed_layer",
        "delivery",
        "scheduler",
        "dashboard",
        "notifier",
    }
    done = _cli(tmp_path, "stack", "wait", "--idle", check=False)
    assert done.returncode == 1 and "not running" in done.stderr


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root (CI runs as root)")
def test_a_full_disk_stalls_the_service_keeps_its_checkpoint_and_recovers(
    tmp_path: Path, recordings: list[Path]
) -> None:
    from ingest.producer import KinesisProducer
    from local.kinesis import local_kinesis_client

    home = tmp_path / "home"
    serving, lake = home / "serving", home / "lake"
    _mount_tmpfs(serving, "700k")
    _mount_tmpfs(lake, "160k")
    try:
        _cli(home, "stack", "up")
        subprocess.run(
            _collect_cmd(home, recordings, speed=None),
            env=_env(home),
            check=True,
            capture_output=True,
        )
        # the delivery buffers for minutes; asking for idle makes it write now, into the full disk
        assert _cli(home, "stack", "wait", "--idle", "--timeout", "2", check=False).returncode == 1

        def states_now() -> dict[str, str]:
            services = _status(home)["services"]
            return {n: services[n]["state"] for n in ("speed_layer", "delivery")}

        states = _wait_for(states_now, 90, until=lambda st: set(st.values()) == {"stalled"}, every_s=0.5)
        assert states == {"speed_layer": "stalled", "delivery": "stalled"}
        assert "cannot write" in _status(home)["services"]["speed_layer"]["figures"]["error"]

        def checkpoints() -> list[str | None]:
            paths = [home / "checkpoints" / f"{n}.json" for n in ("speed-layer", "delivery")]
            return [p.read_text() if p.exists() else None for p in paths]

        before = checkpoints()
        time.sleep(3)
        assert checkpoints() == before  # stalled: nothing is acknowledged that was not stored
        url = _status(home)["services"]["stream"]["url"]
        KinesisProducer(local_kinesis_client(url), "sleepstack-dev-ingest").put_encoded([("poison", b"\x00not json")])
        for path in (serving, lake):  # the operator frees space: both services catch up on their own
            subprocess.run(["mount", "-o", "remount,size=256m", str(path)], check=True)
        _cli(home, "stack", "wait", "--idle", "--timeout", "180")
        counts = json.loads(_cli(home, "reconcile", "--json").stdout)
        assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["produced"] > 4_000
        letters = list((home / "dead-letters" / "speed-layer" / "contract").rglob("*.json"))
        assert len(letters) == 1 and json.loads(letters[0].read_text())["field"] == "<record>"
    finally:
        _cli(home, "stack", "down", check=False)
        for path in (serving, lake):
            subprocess.run(["umount", "-l", str(path)], check=False)
