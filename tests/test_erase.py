"""``sleepstack erase``: a subject leaves no trace in any store, no other subject's data is
touched, and a run killed anywhere finishes when run again.

The home (:mod:`tests.erase_helpers`) holds three subjects in every store, and s001's strap
was worn by s002 for ten minutes (s002's records, which stay). Checked after erasing s001:
the scan of every store finds nothing; every record, row, document, letter and entry that
was not s001's is there, byte for byte, and nothing else is (the registry's history: the
entries that named s001 redacted, one tombstone added); a rerun says it is done. The
adapters' erasure calls (OpenSearch ``_delete_by_query``, DynamoDB) are checked on their
requests.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from access.audit import AuditLog
from core.registry import OPEN_END_MS
from registry.store import erasure_key
from sleepstack.cli import main
from sleepstack.settings import Settings
from speed_layer.processing import DOC_KINDS
from speed_layer.store import OpenSearchLiveStore, erase_query
from tests.conftest import REPO_ROOT
from tests.erase_helpers import ERASE, ERASED, borrowed, build_home, holdings, records, settings_for
from tests.fake_opensearch import FakeCluster

KEY = erasure_key(ERASED)
_NAMED = re.compile(r"(?<![\w.-])s001(?![\w.-])")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("erase-template")
    build_home(base / "home", base / "exports")
    return base


@pytest.fixture
def home(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the template home (its export index pointing at the copy's exports)."""
    base = tmp_path / "base"
    shutil.copytree(template, base)
    index = base / "home" / "exports.jsonl"
    index.write_text(index.read_text().replace(str(template), str(base)))
    s = settings_for(base / "home")
    for k, v in s.child_env().items():
        monkeypatch.setenv(k, v)
    return s


def _is_erased(place: str, item: Any) -> bool:
    """Whether ``item`` of ``place`` (:func:`tests.erase_helpers.holdings`) was s001's."""
    text = json.dumps(item)
    if place == "ledger":
        return item[0] in _erased_ids()
    if "s002" in text and "strap-s001" in text:  # the borrowed strap's records are s002's
        return False
    return "s001" in text


def _erased_ids() -> set[str]:
    return {r.record_id for r in records() if r.subject_id == ERASED}


def _check_erased(s: Settings, before: dict[str, set[Any]]) -> None:
    from local.erasure import scan

    after = holdings(s)
    for place, items in before.items():
        if place == "history":
            continue
        kept = {x for x in items if not _is_erased(place, x)}
        assert after[place] == kept, place  # the others' items, each as it was; none of s001's
        assert len(kept) < len(items) or place in ("spool_open_frames",), place
    # the borrowed strap's records stay s002's, in the lake and the live store
    b0, b1 = borrowed()
    lake_borrowed = [x for x in after["lake"] if '"strap-s001"' in x[1] and '"s002"' in x[1]]
    assert lake_borrowed and all(b0 <= json.loads(x[1])["device_time_ms"] < b1 for x in lake_borrowed)
    # the history: entries naming s001 redacted to the key, a tombstone added, the rest as they were
    hist_before = {h[0]: h for h in before["history"]}
    hist_after = {h[0]: h for h in after["history"]}
    assert len(hist_after) == len(hist_before) + 1
    for seq, h in hist_before.items():
        if _NAMED.search(json.dumps(h)):  # the subject, not its devices' names ("strap-s001")
            assert not _NAMED.search(json.dumps(hist_after[seq])) and KEY in json.dumps(hist_after[seq])
        else:
            assert hist_after[seq] == h
    tomb = hist_after[max(hist_after)]
    assert tomb[2] == "erased" and json.loads(tomb[4]) == {"subject": KEY, "by": "dpo", "op": KEY}
    assert tomb[3] == f"{KEY} asked (ticket 7)"
    # the proof, over every store; the access audit keeps its entries and adds the erasure
    found = scan(
        s.paths, ERASED, [("strap-s001", 0, b0), ("strap-s001", b1, OPEN_END_MS), ("bed-s001", 0, OPEN_END_MS)]
    )
    assert found.clean, found.hits
    assert found.kept == {"access_audit_entries": 1}
    audit = AuditLog(s.paths.audit_log)
    assert audit.verify().ok
    assert [e["subjects"] for e in map(json.loads, s.paths.audit_log.read_text().splitlines())][-1] == [KEY]
    # the export's files are gone, the others' are there
    assert not (s.paths.root.parent / "exports" / "export-s001").exists()
    assert (s.paths.root.parent / "exports" / "export-s002" / "nights.csv").exists()
    # the journal keeps no identifier
    journal = s.paths.erase_journal(KEY).read_text()
    assert "s001" not in journal and "strap-" not in journal


def test_erase_leaves_no_trace_and_touches_no_other_subject(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    before = holdings(home)
    assert main(ERASE) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"erased s001 (tombstone {KEY})") and "scan of every store: 0 found" in out, out
    _check_erased(home, before)
    assert main([*ERASE, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["already"] and again["subject_id"] == "" and sum(again["figures"]["scan"].values()) == 0
    assert main(ERASE) == 0
    assert capsys.readouterr().out.startswith("already done: s001 was erased at ")


def test_refused_without_yes_or_for_an_unknown_subject_and_nothing_changes(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    before = holdings(home)
    assert main(["erase", "--subject", ERASED]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepstack: error: --yes: erasing s001 cannot be undone; it would remove live store:")
    assert "\n" not in err
    assert main(["erase", "--subject", "s999", "--yes"]) == 2
    assert "'s999' is not registered and no store holds data of it" in capsys.readouterr().err
    assert main(["erase", "--subject", "s 1", "--yes"]) == 2
    assert main(["erase", "--yes"]) == 2
    assert holdings(home) == before and not (home.paths.root / "erase").exists()


def test_a_subject_only_some_stores_name_is_erased_and_one_with_no_data_too(
    home: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from local.erasure import scan
    from local.registry import LocalRegistry

    reg = LocalRegistry(home.paths.registry_db)
    reg.erase_subject("s003")  # gone from the registry (its windows too), its data still everywhere
    reg.close()
    assert main(["erase", "--subject", "s003", "--yes"]) == 0, capsys.readouterr().err
    assert scan(home.paths, "s003", []).clean
    assert main(["erase", "--subject", "s004", "--yes"]) == 0  # enrolled, never recorded
    assert "registry: subject 1" in capsys.readouterr().out


def _run(home: Path, kill_at: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.erase_helpers", kill_at, "--", *ERASE],
        cwd=REPO_ROOT,
        env=settings_for(home).child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "kill_at",
    [
        "journal",
        pytest.param("registry", marks=pytest.mark.slow),
        pytest.param("ledger", marks=pytest.mark.slow),
        pytest.param("live", marks=pytest.mark.slow),
        pytest.param("state", marks=pytest.mark.slow),
        pytest.param("spool", marks=pytest.mark.slow),
        "lake:written",  # between a rewritten object's rename and the old one's deletion
        pytest.param("lake", marks=pytest.mark.slow),
        pytest.param("dead_letters", marks=pytest.mark.slow),
        pytest.param("exports", marks=pytest.mark.slow),
        pytest.param("verify", marks=pytest.mark.slow),
    ],
)
def test_killed_anywhere_a_rerun_finishes_the_erasure(kill_at: str, home: Settings) -> None:
    before = holdings(home)
    killed = _run(home.paths.root, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = _run(home.paths.root, "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resumed and finished erasing s001"), done.stdout
    _check_erased(home, before)
    again = _run(home.paths.root, "-")
    assert again.returncode == 0 and again.stdout.startswith("already done:"), again.stdout


# ---------------------------------------------------------------------------- the AWS adapters' requests
def test_opensearch_deletes_each_kind_by_query() -> None:
    cluster = FakeCluster(lambda sent: (200, {"deleted": 2, "failures": [], "version_conflicts": 0}))
    store = OpenSearchLiveStore(cluster.client(), prefix="t")
    windows = [("strap-1", 1000, 2000), ("bed-1", 1500, OPEN_END_MS)]
    assert store.erase_subject("s001", windows) == 2 * len(DOC_KINDS)
    # each kind refreshed first: a by-query sees only what a refresh made searchable
    urls = [u for k in DOC_KINDS for u in (f"/t-{k}-*/_refresh", f"/t-{k}-*/_delete_by_query")]
    assert [s.url for s in cluster.sent] == urls
    cluster.sent = [s for s in cluster.sent if s.url.endswith("_delete_by_query")]
    sent = cluster.sent[0]
    assert sent.params["conflicts"] == "proceed" and sent.params["refresh"] == "true"
    assert sent.json() == erase_query("vitals", "s001", windows)
    assert sent.json() == {
        "query": {
            "bool": {
                "should": [
                    {"term": {"subject_id": "s001"}},
                    {
                        "bool": {
                            "filter": [
                                {"term": {"device_id": "strap-1"}},
                                {"range": {"epoch_start_ms": {"gte": 1000, "lt": 2000, "format": "epoch_millis"}}},
                            ]
                        }
                    },
                    {
                        "bool": {
                            "filter": [
                                {"term": {"device_id": "bed-1"}},
                                {
                                    "range": {
                                        "epoch_start_ms": {"gte": 1500, "lt": OPEN_END_MS, "format": "epoch_millis"}
                                    }
                                },
                            ]
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        }
    }
    assert cluster.sent[1].json()["query"]["bool"]["should"][1]["bool"]["filter"][1] == {
        "range": {"start_ms": {"gte": 1000, "lt": 2000, "format": "epoch_millis"}}
    }


def test_opensearch_erasure_with_conflicts_fails_for_a_rerun() -> None:
    from speed_layer.store import StoreError

    cluster = FakeCluster(lambda sent: (200, {"deleted": 1, "failures": [], "version_conflicts": 2}))
    with pytest.raises(StoreError, match="run it again"):
        OpenSearchLiveStore(cluster.client(), prefix="t").erase_subject("s001", [])


def test_dynamodb_registry_and_state_erase_the_subject() -> None:
    import boto3
    from moto import mock_aws

    from core.registry import Assignment, Device, Subject
    from registry.dynamodb import DynamoRegistry
    from speed_layer.state_store import DynamoStateStore

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
        attrs = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")]
        client.create_table(
            TableName="registry", KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST"
        )
        client.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        reg = DynamoRegistry(client, "registry")
        for sid in ("s001", "s002"):
            reg.add_subject(Subject(sid, enrolled_ms=0, tz="UTC"), why=f"{sid} consented")
            reg.add_device(Device(f"strap-{sid}", "strap"), at_ms=0)
            reg.assign(Assignment(f"strap-{sid}", 0, sid), at_ms=1)
        assert reg.erase_subject("s001") == {
            "registry_subject": 1,
            "registry_assignments": 1,
            "registry_history_redacted": 2,
        }
        assert reg.log_erasure("s001", at_ms=5, by="dpo", why="asked") and not reg.log_erasure("s001", at_ms=6, by="x")
        assert reg.get_subject("s001") is None and [a.subject_id for a in reg.assignments()] == ["s002"]
        assert not _NAMED.search(json.dumps(reg.history())) and "s002" in json.dumps(reg.history())
        assert reg.erase_subject("s001") == {
            "registry_subject": 0,
            "registry_assignments": 0,
            "registry_history_redacted": 0,
        }
        states = DynamoStateStore(client, "state")
        states.put_many({"strap-s001": {"subject_id": "s001"}, "strap-s002": {"subject_id": "s002"}})
        assert states.delete_many(["strap-s001", "strap-x"]) == 1
        assert list(states.get_many(["strap-s001", "strap-s002"])) == ["strap-s002"]


def test_on_aws_every_deployed_store_must_be_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLEEPSTACK_TARGET", "aws")
    for name in (
        "SLEEPSTACK_REGISTRY_TABLE",
        "SLEEPSTACK_STATE_TABLE",
        "SLEEPSTACK_RAW_BUCKET",
        "SLEEPSTACK_CURATED_BUCKET",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    monkeypatch.delenv("SLEEPSTACK_DEAD_LETTER_BUCKET", raising=False)
    assert main(ERASE) == 2
    err = capsys.readouterr().err
    assert "OPENSEARCH_URL" in err and "SLEEPSTACK_DEAD_LETTER_BUCKET" in err and "Traceback" not in err
