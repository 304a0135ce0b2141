"""``sleepstack alerts backtest``: the alarm burden of alert rule sets, measured on nights (docs/alarm-burden.md).

Nights come from the raw lake (``--nights``), the simulator with its truth (``--simulate``)
or slpdb's recordings (``--slpdb``); each is replayed through the speed layer's own code
under every rule set of ``--rules`` (:mod:`sleepstack.backtest`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings

__all__ = ["register"]

_COLUMNS = (
    ("rule_set", "rule set", "<14"),
    ("kind", "kind", "<16"),
    ("nights", "nights", ">7"),
    ("alerts_per_night", "alerts/night", ">13"),
    ("time_to_alert_s_median", "time to alert s", ">16"),
    ("time_in_alarm_min_per_night", "in alarm min/night", ">19"),
    ("events", "events", ">7"),
    ("sensitivity", "sensitivity", ">12"),
    ("ppv", "PPV", ">7"),
)


def _cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from sleepstack.backtest import backtest, load_rule_sets

    if args.simulate is not None and args.simulate < 1:
        raise UsageError("--simulate", f"{args.simulate} nights: give 1 or more")
    if args.seed is not None and args.simulate is None:
        raise UsageError("--seed", "seeds the simulated nights: give it with --simulate")
    if args.subject is not None and args.nights is None:
        raise UsageError("--subject", "selects lake nights: give it with --nights")
    if args.subject_overrides and args.nights is None:
        raise UsageError("--subject-overrides", "applies the registry's subjects to lake nights: give it with --nights")
    rule_sets = load_rule_sets(Path(args.rules))
    subject_rules = None
    if args.subject_overrides:
        from sleepstack import wiring

        def subject_rules(rules: Any) -> Any:
            return wiring.subject_rules(settings, rules)

    result = backtest(_nights(args, settings), rule_sets, subject_rules)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _nights(args: argparse.Namespace, settings: Settings) -> Iterator[Any]:
    from sleepstack.backtest import lake_nights, simulated_nights, slpdb_nights

    if args.simulate is not None:
        return simulated_nights(args.simulate, 0 if args.seed is None else args.seed)
    if args.slpdb is not None:
        root = Path(args.slpdb)
        if not (root / "meta.csv").is_file():
            raise UsageError("--slpdb", f"{root} is not an slpdb-rr directory (meta.csv, rr/ and stages/)")
        return slpdb_nights(root)
    from core.contract.epochs import resolve_nights

    nights = resolve_nights(args.nights, settings.tz, datetime.now(tz=UTC), arg="--nights")
    return lake_nights(settings.lake / "raw", nights, settings.tz, args.subject)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _print_table(result: dict[str, Any]) -> None:
    known = ", ".join(f"{n} {kind}" for kind, n in sorted(result["true_events"].items())) or "none"
    print(f"{len(result['nights'])} nights, {result['hours']:g} h; true events: {known}")
    print(" ".join(f"{title:{fmt}}" for _, title, fmt in _COLUMNS))
    for row in result["rows"]:
        print(" ".join(f"{_cell(row[key]):{fmt}}" for key, _, fmt in _COLUMNS))
    tol = ", ".join(f"{k} {v:g} s" for k, v in result["matching"]["tolerance_s"].items())
    print(f"matching: an alert matches an event it overlaps, the event widened by its tolerance ({tol}); '-': no truth")


def register(sub: Any) -> None:
    s = sub.add_parser(
        "backtest",
        help="replay nights through alert rule sets: alerts/night, time to alert, time in alarm, sensitivity, PPV",
        description=__doc__.splitlines()[0],
    )
    s.add_argument(
        "--rules", required=True, help="TOML file of named rule sets: [sets.NAME] with AlertRules thresholds"
    )
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--nights", help="lake nights: 'yesterday' or YYYY-MM-DD[,YYYY-MM-DD...] (noon to noon)")
    source.add_argument("--simulate", type=int, metavar="N", help="N simulated nights with their true events")
    source.add_argument("--slpdb", metavar="DIR", help="slpdb-rr directory: its ECG beats as strap nights")
    s.add_argument("--subject", help="with --nights: only this subject's nights")
    s.add_argument("--seed", type=int, help="with --simulate: the cohort's seed (default 0)")
    s.add_argument(
        "--subject-overrides",
        action="store_true",
        help="with --nights: each subject's registry overrides on top of every set, as the speed layer applies them",
    )
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.set_defaults(func=_cmd_backtest)
