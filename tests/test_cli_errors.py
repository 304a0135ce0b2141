"""Every bad input a user can type gets one sentence naming it and its flag, and exit 2 (a failed run: 1).

The commands run in-process through :func:`sleepstack.cli.main`, so an uncaught exception
(a traceback for the user) fails the test outright.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sleepstack.cli import main


def _recording(tmp_path: Path, *lines: object) -> str:
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    return str(path)


HEAD = {"address": "AA:01", "kind": "strap"}
CASES: list[tuple[str, list[str], int, tuple[str, ...]]] = [
    # (case, argv, exit code, fragments the message must hold)
    ("replay of a missing file", ["collect", "--replay", "{tmp}/nope.jsonl"], 2, ("--replay", "nope.jsonl", "no such")),
    ("replay of a directory", ["collect", "--replay", "{tmp}"], 2, ("--replay", "is a directory")),
    (
        "replay with a JSON-array line",
        ["collect", "--replay", "{rec:array}"],
        2,
        ("--replay", "rec.jsonl:2", "got list"),
    ),
    ("replay with broken JSON", ["collect", "--replay", "{rec:broken}"], 2, ("--replay", "rec.jsonl:2", "not JSON")),
    ("replay of a toaster", ["collect", "--replay", "{rec:toaster}"], 2, ("--replay", "rec.jsonl:1", "'toaster'")),
    ("replay without a kind", ["collect", "--replay", "{rec:nokind}"], 2, ("--replay", "rec.jsonl:1", "kind")),
    ("replay with bad hex", ["collect", "--replay", "{rec:badhex}"], 2, ("--replay", "rec.jsonl:2", "hex")),
    ("collect with nothing to record", ["collect"], 2, ("--device",)),
    (
        "collect of an unassigned device",
        ["collect", "--device", "AA:BB:CC:DD:EE:01"],
        2,
        ("AA:BB:CC:DD:EE:01", "assign"),
    ),
    ("collect naming a subject", ["collect", "--device", "AA:BB=s001"], 2, ("registry", "assign AA:BB s001")),
    ("a subject in no time zone", ["subjects", "add", "s001", "--tz", "Mars/Olympus"], 2, ("tz", "Mars/Olympus")),
    ("a subject with a name", ["subjects", "add", "John Doe"], 2, ("subject_id", "John Doe")),
    ("a threshold that is no number", ["subjects", "add", "s001", "--alert", "hr_high_bpm=x"], 2, ("--alert",)),
    ("a threshold of no rule", ["subjects", "add", "s001", "--alert", "hr_hi=130"], 2, ("alert_overrides", "hr_hi")),
    ("withdrawing nobody", ["subjects", "withdraw", "s404"], 2, ("s404", "not registered")),
    ("an assignment ending before it starts", ["assign", "AA:BB", "s1", "--to", "2020-01-01T00:00"], 2, ("--to",)),
    ("a device of no kind", ["devices", "add", "AA:BB", "--kind", "toaster"], 2, ("--kind", "toaster")),
    ("assigning an unknown device", ["assign", "AA:BB", "s001"], 2, ("AA:BB", "not registered", "devices add")),
    ("an assignment from no time", ["assign", "AA:BB", "s001", "--from", "yesterday"], 2, ("--from", "ISO")),
    ("sql of a missing file", ["sql", "{tmp}/nope.sql"], 2, ("QUERY", "nope.sql", "no such")),
    ("sql of an empty file", ["sql", "{sql:}"], 2, ("q.sql", "empty")),
    ("sql that attaches a database", ["sql", "{sql:ATTACH 'x.db' AS x}"], 2, ("q.sql", "does not parse")),
    ("sql that globs files", ["sql", "{sql:SELECT * FROM glob('/etc/*')}"], 2, ("q.sql",)),
    ("sql that reads /etc/passwd", ["sql", "{sql:SELECT * FROM read_csv('/etc/passwd', delim=':')}"], 2, ("read_csv",)),
    ("sql that writes a file", ["sql", "{sql:COPY (SELECT 'x') TO '{tmp}/out.csv'}"], 2, ("only a query", "COPY")),
    ("sql with two statements", ["sql", "{sql:SELECT 1; SELECT 2}"], 2, ("2 statements",)),
    ("sql of an unknown query", ["sql", "nosuchquery"], 2, ("QUERY", "nosuchquery", "known")),
    ("sql on an empty lake", ["sql", "night_summaries", "--lake", "{tmp}/lake"], 2, ("no data in the lake yet",)),
    (
        "batch run on an empty lake",
        ["batch", "run", "--night", "2026-01-05", "--lake", "{tmp}/lake"],
        1,
        ("no raw data", "2026-01-05"),
    ),
    ("a night that is not a date", ["batch", "run", "--night", "notadate"], 2, ("--night", "notadate")),
    (
        "a backfill to 30 February",
        ["batch", "backfill", "--from", "2026-02-01", "--to", "2026-02-30"],
        2,
        ("--to", "2026-02-30", "calendar"),
    ),
    (
        "a backfill that runs backwards",
        ["batch", "backfill", "--from", "2026-02-05", "--to", "2026-02-01"],
        2,
        ("--to", "before"),
    ),
    ("heart rate 0 with contact", ["ble", "decode-hrm", "16000004"], 2, ("HEX", "16000004", "heart rate 0")),
    ("a truncated measurement", ["ble", "decode-hrm", "10"], 2, ("HEX",)),
    ("not hex", ["ble", "decode-bed", "zz"], 2, ("HEX", "'zz'")),
    ("an RR file that is missing", ["evaluate", "vitals", "--rr", "{tmp}/nope.csv"], 2, ("--rr", "nope.csv")),
    (
        "an RR file that is not RR",
        ["simulate", "--rr", "{sql:hello}", "--out", "{tmp}/sim"],
        2,
        ("--rr", "not an RR series"),
    ),
    ("a model file that is not one", ["evaluate", "sleep-accel", "{tmp}", "--model", "{sql:{}}"], 2, ("--model",)),
    (
        "bad retention days",
        ["opensearch", "setup", "--url", "http://127.0.0.1:1", "--retention-days", "vitals=x"],
        2,
        ("--retention-days",),
    ),
]


def _argv(argv: list[str], tmp_path: Path) -> list[str]:
    recordings = {
        "array": [HEAD, "[1, 2, 3]"],
        "broken": [HEAD, '{"t_ms": 1, "hex": "00" "3c"}'],
        "toaster": [{"address": "AA:01", "kind": "toaster"}],
        "nokind": [{"address": "AA:01"}],
        "badhex": [HEAD, {"t_ms": 1, "hex": "zz"}],
    }
    out = []
    for arg in argv:
        value = arg
        if arg.startswith("{rec:"):
            value = _recording(tmp_path, *recordings[arg[5:-1]])
        elif arg.startswith("{sql:"):
            (tmp_path / "q.sql").write_text(arg[5:-1].replace("{tmp}", str(tmp_path)))
            value = str(tmp_path / "q.sql")
        out.append(value.replace("{tmp}", str(tmp_path)))
    return out


@pytest.mark.parametrize(("case", "argv", "code", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence_naming_it(
    case: str,
    argv: list[str],
    code: int,
    fragments: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SLEEPSTACK_HOME", str(tmp_path / "home"))
    assert main(_argv(argv, tmp_path)) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepstack: error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["stack", "up", "--port", "99999"], "--port: 99999 is not a port"),
        (["stack", "up", "--port", "http"], "--port: 'http' is not a port number"),
    ],
)
def test_argument_errors_name_the_flag(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2  # argparse's refusals are usage errors too: one sentence, exit 2
    err = capsys.readouterr().err
    assert fragment in err and err.startswith("sleepstack: error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLEEPSTACK_ALERT_RULES", '{"no_such_rule": 1}'),
        ("SLEEPSTACK_SEND_LINGER_MS", "-5"),
        ("SLEEPSTACK_SEND_LINGER_MS", "1e9"),
        ("SLEEPSTACK_STAGING_RR", "yes"),
    ],
)
def test_a_bad_setting_names_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["ble", "decode-hrm", "063c"]) == 2
    assert variable in capsys.readouterr().err


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sleepstack.cli", "collect", "--replay", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("sleepstack: error: --replay:")


def test_a_child_never_inherits_an_opensearch_the_settings_do_not_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sleepstack.settings import Settings

    monkeypatch.setenv("OPENSEARCH_URL", "https://somewhere.example:9200")
    monkeypatch.setenv("SLEEPSTACK_OPENSEARCH_DIST", "/opt/opensearch")
    demo = Settings.from_env({"SLEEPSTACK_HOME": str(tmp_path)})  # the demo's own settings: the embedded store
    env = demo.child_env()
    assert "OPENSEARCH_URL" not in env and "SLEEPSTACK_OPENSEARCH_DIST" not in env
    assert Settings.from_env().child_env()["OPENSEARCH_URL"] == "https://somewhere.example:9200"
