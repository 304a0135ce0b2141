"""Named alert rule sets from a TOML file, each the thresholds of :class:`core.live.alerts.AlertRules`.

Format: one table per set under ``sets``; keys left out keep the default::

    [sets.default]

    [sets.sensitive]
    pause_min_s = 8
    hr_high_bpm = 110

Every error names the file and the key (``rules.toml: sets.sensitive.pause_min_s: ...``)
and is an :class:`core.errors.InputError` (exit 2 on the command line).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from core.errors import InputError
from core.live.alerts import AlertRules

__all__ = ["load_rule_sets", "parse_rule_sets"]


def load_rule_sets(path: Path) -> dict[str, AlertRules]:
    """The rule sets of the file at ``path``, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such rules file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot be read ({type(exc).__name__})") from None
    return parse_rule_sets(text, str(path))


def parse_rule_sets(text: str, name: str) -> dict[str, AlertRules]:
    """The rule sets of a TOML document; ``name`` names it in errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(name, f"not valid TOML ({exc})") from None
    extra = sorted(set(doc) - {"sets"})
    if extra:
        raise InputError(f"{name}: {extra[0]}", "unknown table; rule sets go under [sets.NAME]")
    sets = doc.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise InputError(name, "holds no rule set; give at least one [sets.NAME] table")
    defaults = AlertRules()
    out: dict[str, AlertRules] = {}
    for set_name, values in sets.items():
        where = f"{name}: sets.{set_name}"
        if not isinstance(values, dict):
            raise InputError(where, "must be a table of thresholds")
        for key, value in values.items():
            if key not in AlertRules.__dataclass_fields__:
                known = ", ".join(AlertRules.__dataclass_fields__)
                raise InputError(f"{where}.{key}", f"unknown threshold; known: {known}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InputError(f"{where}.{key}", f"must be a positive number, not {value!r}")
        out[set_name] = defaults.with_overrides(values)
    return out
