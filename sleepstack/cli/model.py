"""Commands for the staging model and the vitals' accuracy: ``evaluate``, ``train``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.errors import UsageError
from sleepstack.cli._helpers import print_figures, rr_argument
from sleepstack.settings import Settings, use_keras_backend

__all__ = ["register"]

#: ``train --data`` default: the shared data folder beside a checkout (run from its root).
DEFAULT_SLEEP_ACCEL = Path("..") / "shared" / "data" / "sleep-accel"
DEFAULT_SLPDB = Path("..") / "shared" / "data" / "slpdb-rr"


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.what in ("sleep-accel", "slpdb"):
        return _evaluate_staging(args)
    from core.simulate import FIRST_NIGHT_T0_MS, SimConfig, simulate_night
    from core.vitals_accuracy import bed_vitals_accuracy

    rr = rr_argument(args.rr)
    night = simulate_night(SimConfig("eval", FIRST_NIGHT_T0_MS, seed=args.seed, apnea_per_hour=3.0, rr_source_ms=rr))
    figures = {"rr_file": args.rr, "seed": args.seed, **bed_vitals_accuracy(night)}
    print_figures(figures, as_json=args.json)
    return 0


def _evaluate_staging(args: argparse.Namespace) -> int:
    from core.stage_classifier import DEFAULT_MODEL, RR_MODEL, load_model
    from sleepstack.evaluation import staging

    if not args.dir:
        layout = "heart_rate/ and labels/" if args.what == "sleep-accel" else "meta.csv, rr/ and stages/"
        raise UsageError(f"evaluate {args.what}", f"needs the dataset directory ({layout})")
    root = Path(args.dir)
    slpdb = args.what == "slpdb"
    if args.source == "rr" and not slpdb:
        raise UsageError("--source", "rr needs beat-to-beat intervals: evaluate slpdb")
    if args.anchor:
        if not slpdb:
            raise UsageError("--anchor", "the anchor stages slpdb records: evaluate slpdb DIR --anchor sleepecg")
        if args.cv is not None or args.model or args.also_train_on:
            raise UsageError("--anchor", "scores a pretrained model: leave out --cv, --model and --also-train-on")
        use_keras_backend()
        figures = staging.anchor_slpdb(root)
    elif args.cv is not None:
        if slpdb:
            pooled = Path(args.also_train_on) if args.also_train_on else None
            figures = staging.cross_validate_slpdb(root, source=args.source, folds=args.cv, also_train_on=pooled)
        else:
            figures = staging.cross_validate(root, folds=args.cv)
    else:
        model = _model(args.model) if args.model else load_model(RR_MODEL if args.source == "rr" else DEFAULT_MODEL)
        figures = (staging.evaluate_slpdb if slpdb else staging.evaluate)(root, model)
    if args.json:
        print(json.dumps(figures))
    else:
        per_subject = figures.pop("per_subject")
        print_figures(figures, as_json=False)
        for row in per_subject:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _model(path: str) -> Any:
    from core.stage_classifier import StageModel

    try:
        return StageModel.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("--model", f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError("--model", f"{path} is not a sleepstack stage model ({type(exc).__name__}: {exc})") from None


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from core.stage_classifier import RR_MODEL, model_resource
    from sleepstack.evaluation.staging import train, train_slpdb

    if args.model == RR_MODEL:
        model = train_slpdb(Path(args.data or DEFAULT_SLPDB), seed=args.seed)
    else:
        model = train(Path(args.data or DEFAULT_SLEEP_ACCEL), seed=args.seed)
    out = Path(args.out) if args.out else Path(str(model_resource(model.name)))
    out.write_text(model.to_json())
    counts = model.training["class_counts"]
    print(f"wrote {out}: {model.name}, {len(model.training['subjects'])} subjects, epochs per stage {counts}")
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("evaluate", help="measure accuracy and print figures")
    s.add_argument(
        "what",
        choices=["vitals", "sleep-accel", "slpdb"],
        help="bed vitals vs simulator truth, or staging vs PSG (sleep-accel; slpdb-rr, from heart rate)",
    )
    s.add_argument("dir", nargs="?", help="sleep-accel / slpdb: dataset directory")
    s.add_argument(
        "--cv", type=int, help="sleep-accel: leave-subjects-out CV with this many folds (0: one per subject)"
    )
    s.add_argument("--model", help="sleep-accel / slpdb: a model JSON file (default: the committed model)")
    s.add_argument(
        "--source",
        choices=["hr", "rr"],
        default="hr",
        help="slpdb: stage from heart rate alone, or from heart rate and beat-to-beat HRV (the rr-mlp-v1 model)",
    )
    s.add_argument(
        "--also-train-on", help="slpdb --cv: a sleep-accel directory whose nights join every fold's training"
    )
    s.add_argument(
        "--anchor",
        choices=["sleepecg"],
        help="slpdb: score SleepECG's pretrained wrn-gru-mesa on the same records (needs the anchors extra)",
    )
    s.add_argument("--rr", help="vitals: real RR series driving the simulated beats (li2024 CSV or ms per line)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("train", help="train a staging model: hr-mlp-v1 on sleep-accel, rr-mlp-v1 on slpdb-rr")
    s.add_argument("--model", choices=["hr-mlp-v1", "rr-mlp-v1"], default="hr-mlp-v1")
    s.add_argument("--data", help="dataset directory (default ../shared/data/sleep-accel or ../shared/data/slpdb-rr)")
    s.add_argument("--out", help="artefact path (JSON; default: the packaged core/models/<model>.json)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_train)
