"""The command line as a whole: every option has help, every command follows the exit-code rule.

The rule (README, "Errors"): 0 done; 2 bad input, one sentence naming the flag, and
nothing created; 1 a run that failed or found no data. Every leaf command has a bad-input
case here, and the test fails when a command is added without one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sleepstack.cli import _parser, main


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {path: parser}
    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, child in subs[0].choices.items():
        out |= _leaves(child, (*path, name))
    return out


LEAVES = _leaves(_parser())

#: One bad input per leaf command: its argv after the command words, exit 2.
BAD_INPUT: dict[tuple[str, ...], list[str]] = {
    ("simulate",): ["--subjects", "0"],
    ("alerts", "backtest"): ["--rules", "{tmp}/no-such-rules.toml", "--simulate", "1"],
    ("alerts", "routes", "check"): ["nosuch-routes.yaml"],
    ("alerts", "outbox"): ["--limit", "0"],
    ("demo",): ["--nights", "0"],
    ("batch", "run"): ["--night", "notadate"],
    ("batch", "backfill"): ["--from", "2026-02-05", "--to", "2026-02-01"],
    ("sql",): ["nosuchquery"],
    ("catalog",): [],
    ("collect",): [],
    ("subjects", "add"): ["s001", "--tz", "Mars/Olympus"],
    ("subjects", "list"): ["--csv"],
    ("subjects", "withdraw"): ["nobody"],
    ("devices", "add"): ["AA:BB", "--kind", "toaster"],
    ("devices", "list"): ["--all"],
    ("assign",): ["AA:BB", "s001", "--from", "yesterday"],
    ("assignments",): ["--device"],
    ("users", "add"): ["alice", "--role", "boss", "--group", "*"],
    ("users", "list"): ["--csv"],
    ("users", "disable"): ["nobody"],
    ("users", "enable"): ["nobody"],
    ("users", "reset"): ["nobody"],
    ("users", "token"): ["nobody", "--days", "0"],
    ("users", "tokens"): [],
    ("users", "revoke"): ["nobody", "abc"],
    ("audit", "verify"): ["--subject", "s001"],
    ("audit", "ship"): [],  # which bucket?
    ("reassign",): ["--device", "AA:BB", "--from", "2026-01-05T22:00", "--to", "2026-01-05T21:00", "--subject", "s001"],
    ("ble", "decode-hrm"): ["zz"],
    ("ble", "decode-bed"): ["0102"],
    ("stack", "up"): ["--port", "70000"],
    ("stack", "down"): ["--json"],  # status's flag: each action has its own
    ("stack", "status"): ["--idle"],
    ("stack", "wait"): [],  # wait for what?
    ("stack", "stage"): [],  # which night?
    ("reconcile",): ["--night", "2026-01-05"],
    ("live",): ["--subject", "../etc"],
    ("opensearch", "setup"): ["--url", "http://127.0.0.1:1", "--retention-days", "vitals=x"],
    ("opensearch", "export"): ["--replicas", "0"],
    ("opensearch", "install"): ["--out", "x"],
    ("package",): ["--lake", "x"],
    ("dashboard",): ["--host", "0.0.0.0"],  # noqa: S104 - refused without TLS
    ("report",): ["--subject", "s 1", "--night", "2026-01-05"],
    ("export",): ["--subject", "s001", "--format", "fhir", "--out", "{tmp}/b.json", "--from", "2026-13-01"],
    ("erase",): ["--subject", "s 1", "--yes"],
    ("evaluate", "vitals"): ["--rr", "{tmp}/nope.csv"],
    ("evaluate", "sleep-accel"): ["--source", "rr"],  # beat-to-beat staging is slpdb's
    ("evaluate", "slpdb"): [],  # no dataset directory
    ("evaluate", "cvhr"): [],
    ("evaluate", "apnea-ecg"): [],  # no dataset directory
    ("evaluate", "report"): ["--nights", "0"],
    ("train",): ["--model", "nope"],
    ("bench", "ingest"): ["--latency-seconds", "5"],
    ("bench", "speed"): ["--nights", "10"],
    ("bench", "batch"): ["--nights", "10,x"],
    ("bench", "dashboard"): ["--records", "5"],
    ("bench", "opensearch"): ["--requests", "5"],
    ("bench", "lambda"): ["--records", "5"],
    ("bench", "idle"): ["--latency-seconds", "x"],
    ("bench", "notify"): ["--episodes", "0"],
}

#: Runs that find no data: exit 1.
NO_DATA: list[list[str]] = [
    ["batch", "run", "--night", "2026-01-05", "--lake", "{tmp}/lake"],
    ["live", "--subject", "s001"],
    ["stack", "stage", "--night", "2026-01-05"],
]


def test_every_option_has_help() -> None:
    missing = [
        f"{' '.join(path)} {action.option_strings or action.dest}"
        for path, parser in LEAVES.items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not missing, missing


def test_every_command_has_a_bad_input_case() -> None:
    assert set(BAD_INPUT) == set(LEAVES)


def _run(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return main([a.replace("{tmp}", str(tmp_path)) for a in argv])


@pytest.mark.parametrize("path", sorted(BAD_INPUT), ids=[" ".join(p) for p in sorted(BAD_INPUT)])
def test_bad_input_exits_2_with_one_sentence_and_creates_nothing(
    path: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run([*path, *BAD_INPUT[path]], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepstack: error: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no home, no spool, no output file


@pytest.mark.parametrize("argv", NO_DATA, ids=[" ".join(a[:2]) for a in NO_DATA])
def test_no_data_exits_1(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(argv, tmp_path, monkeypatch) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepstack: error: ") and "\n" not in err, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("sleepstack ")


def test_a_refused_replay_creates_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rec.jsonl").write_text('{"address": "AA:01", "kind": "toaster"}\n')
    assert _run(["collect", "--replay", "{tmp}/rec.jsonl"], tmp_path, monkeypatch) == 2
    assert "--replay" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.jsonl"]  # no home, no spool
