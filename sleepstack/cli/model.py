"""Commands for the staging model and the vitals' accuracy: ``evaluate``, ``train``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sleepstack.cli._helpers import print_figures, rr_argument
from sleepstack.cli.errors import UsageError
from sleepstack.settings import Settings, use_keras_backend

__all__ = ["register"]

#: ``train --data`` default: the shared data folder beside a checkout (run from its root).
DEFAULT_SLEEP_ACCEL = Path("..") / "shared" / "data" / "sleep-accel"
DEFAULT_SLPDB = Path("..") / "shared" / "data" / "slpdb-rr"
DEFAULT_APNEA_ECG = Path("..") / "shared" / "data" / "apnea-ecg"


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "apnea-ecg" or getattr(args, "apnea", False):
        return _evaluate_apnoea(args)
    if args.what in ("sleep-accel", "slpdb"):
        return _evaluate_staging(args)
    if args.what == "cvhr":
        return _evaluate_cvhr(args)
    if args.what == "report":
        return _evaluate_report(args)
    from simulator.nights import FIRST_NIGHT_T0_MS, SimConfig, simulate_night
    from simulator.vitals_accuracy import bed_vitals_accuracy

    rr = rr_argument(args.rr)
    night = simulate_night(SimConfig("eval", FIRST_NIGHT_T0_MS, seed=args.seed, apnea_per_hour=3.0, rr_source_ms=rr))
    from sleepstack.evaluation.staging import simulated_staging

    figures = {
        "rr_file": args.rr,
        "seed": args.seed,
        **bed_vitals_accuracy(night),
        "staging_on_simulated_strap": simulated_staging(night),
    }
    print_figures(figures, as_json=args.json)
    return 0


def _evaluate_cvhr(args: argparse.Namespace) -> int:
    from sleepstack.evaluation.apnea import evaluate_cvhr

    if not args.dir:
        raise UsageError("evaluate cvhr", "needs the slpdb-rr directory (meta.csv, rr/ and stages/)")
    figures = evaluate_cvhr(Path(args.dir))
    if args.json:
        print(json.dumps(figures))
    else:
        _print_with_rows(figures, "per_record")
    return 0


def _evaluate_apnoea(args: argparse.Namespace) -> int:
    from sleepstack.evaluation import apnea_ecg

    slpdb = args.what == "slpdb"
    if not args.dir:
        layout = "meta.csv, rr/ and stages/" if slpdb else "meta.csv, rr/ and apnea/"
        raise UsageError(f"evaluate {args.what}", f"needs the dataset directory ({layout})")
    if slpdb and (args.cv is not None or args.model or args.anchor or args.also_train_on or args.source != "hr"):
        raise UsageError("--apnea", "scores the committed apnoea model: leave out --cv, --model, --source and --anchor")
    if not slpdb and args.cv is not None and (args.cv == 1 or args.cv < 0):
        raise UsageError("--cv", f"{args.cv} folds: give 2 or more (0: one fold per subject)")
    if not slpdb and args.cv is not None and args.model:
        raise UsageError("--model", "--cv trains its own fold models: leave out --model")
    root = Path(args.dir)
    if slpdb:
        figures = apnea_ecg.evaluate_slpdb(root, _apnoea_model(None))
    elif args.cv is not None:
        figures = apnea_ecg.cross_validate(root, folds=args.cv, seed=args.seed)
    else:
        figures = apnea_ecg.evaluate(root, _apnoea_model(args.model))
    if args.json:
        print(json.dumps(figures))
    else:
        _print_with_rows(figures, "per_record")
    return 0


def _apnoea_model(path: str | None) -> Any:
    from batch_layer.stage_models import load_apnoea_model
    from core.nights.apnoea import ApnoeaModel

    if path is None:
        return load_apnoea_model()
    try:
        return ApnoeaModel.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("--model", f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError("--model", f"{path} is not a sleepstack apnoea model ({type(exc).__name__}: {exc})") from None


def _evaluate_report(args: argparse.Namespace) -> int:
    from sleepstack.evaluation.report_truth import audit_report

    if args.nights is not None and args.nights < 1:
        raise UsageError("--nights", f"{args.nights} nights: give 1 or more")
    figures = audit_report(**({"nights": args.nights} if args.nights else {}), seed=args.seed)
    if args.json:
        print(json.dumps(figures))
    else:
        _print_report_audit(figures)
    return 0


def _print_report_audit(figures: dict[str, Any]) -> None:
    """The audit as a table: one line per metric, then the goals."""
    print(f"{'metric':<26}{'unit':<10}{'nights':>7}{'median |err|':>14}{'worst |err|':>13}{'tolerance':>11}  within")
    for metric, m in figures["metrics"].items():
        cells = [("-" if m[k] is None else f"{m[k]:g}") for k in ("abs_error_median", "abs_error_worst", "tolerance")]
        ok = {True: "yes", False: "NO", None: "-"}[m["within_tolerance"]]
        print(f"{metric:<26}{m['unit']:<10}{m['nights']:>7}{cells[0]:>14}{cells[1]:>13}{cells[2]:>11}  {ok}")
    print_figures(figures["goals"], as_json=False)


def _print_with_rows(figures: dict[str, Any], rows: str) -> None:
    """Figures as aligned lines, then the rows under ``rows`` one per line."""
    table = figures.pop(rows)
    print_figures(figures, as_json=False)
    for row in table:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


def _check_staging_args(args: argparse.Namespace) -> None:
    """Option combinations ``evaluate sleep-accel|slpdb`` cannot run, as usage errors."""
    slpdb = args.what == "slpdb"
    if not args.dir:
        layout = "meta.csv, rr/ and stages/" if slpdb else "heart_rate/ and labels/"
        raise UsageError(f"evaluate {args.what}", f"needs the dataset directory ({layout})")
    if args.anchor and (args.cv is not None or args.model or args.also_train_on):
        raise UsageError("--anchor", "scores a pretrained model: leave out --cv, --model and --also-train-on")
    if args.members is not None and args.members < 1:
        raise UsageError("--members", "must be 1 or more")
    if args.train_seed < 0:
        raise UsageError("--train-seed", "must be 0 or more")
    if args.also_train_on and args.cv is None:
        raise UsageError("--also-train-on", "pools corpora in cross-validation: add --cv K (0: one fold per subject)")


def _evaluate_staging(args: argparse.Namespace) -> int:
    from batch_layer.stage_models import load_model
    from core.nights.classifier import DEFAULT_MODEL, RR_MODEL
    from sleepstack.evaluation import staging

    _check_staging_args(args)
    root = Path(args.dir)
    slpdb = args.what == "slpdb"
    if args.anchor:
        use_keras_backend()
        figures = staging.anchor_slpdb(root)
    elif args.cv is not None and slpdb:
        pooled = Path(args.also_train_on) if args.also_train_on else None
        figures = staging.cross_validate_slpdb(
            root, source=args.source, folds=args.cv, also_train_on=pooled, seed=args.train_seed, members=args.members
        )
    elif args.cv is not None:
        figures = staging.cross_validate(root, folds=args.cv)
    else:
        model = _model(args.model) if args.model else load_model(RR_MODEL if args.source == "rr" else DEFAULT_MODEL)
        figures = (staging.evaluate_slpdb if slpdb else staging.evaluate)(root, model)
    if args.json:
        print(json.dumps(figures))
    else:
        _print_staging(figures)
    return 0


_BLOCKS = ("sleep_accel", "slpdb_without_rr", "pooled")  # pooled cross-validation's other figures


def _print_staging(figures: dict[str, Any]) -> None:
    blocks = {k: figures.pop(k) for k in _BLOCKS if k in figures}
    _print_with_rows(figures, "per_subject")
    for name, block in blocks.items():
        block.pop("per_subject")
        print(f"\n{name}:")
        print_figures(block, as_json=False)


def _model(path: str) -> Any:
    from core.nights.classifier import StageModel

    try:
        return StageModel.from_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("--model", f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError("--model", f"{path} is not a sleepstack stage model ({type(exc).__name__}: {exc})") from None


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from batch_layer.stage_models import model_resource
    from core.nights.apnoea import APNOEA_MODEL
    from core.nights.classifier import RR_MODEL
    from sleepstack.evaluation.staging import train, train_rr

    if args.model == APNOEA_MODEL:
        return _train_apnoea(args)
    if args.model == RR_MODEL:
        accel = Path(args.sleep_accel or DEFAULT_SLEEP_ACCEL)
        model = train_rr(Path(args.data or DEFAULT_SLPDB), accel, seed=args.seed)
    else:
        if args.sleep_accel:
            raise UsageError("--sleep-accel", f"only {RR_MODEL} trains on two corpora; give hr-mlp-v1's with --data")
        model = train(Path(args.data or DEFAULT_SLEEP_ACCEL), seed=args.seed)
    out = Path(args.out) if args.out else Path(str(model_resource(model.name)))
    out.write_text(model.to_json())
    counts = model.training["class_counts"]
    print(f"wrote {out}: {model.name}, {len(model.training['subjects'])} subjects, epochs per stage {counts}")
    return 0


def _train_apnoea(args: argparse.Namespace) -> int:
    from batch_layer.stage_models import model_resource
    from sleepstack.evaluation.apnea_ecg import train

    if args.sleep_accel:
        raise UsageError("--sleep-accel", "the apnoea model trains on apnea-ecg alone (--data)")
    if args.seed != 0:
        raise UsageError("--seed", "the apnoea model's training has no random start: leave out --seed")
    model = train(Path(args.data or DEFAULT_APNEA_ECG))
    out = Path(args.out) if args.out else Path(str(model_resource(model.name)))
    out.write_text(model.to_json())
    t = model.training
    print(
        f"wrote {out}: {model.name}, {len(t['records'])} records, {t['minutes']} minutes ({t['apnoea_minutes']} apnoea)"
    )
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("evaluate", help="measure accuracy and print figures")
    what = s.add_subparsers(dest="what", required=True, metavar="WHAT")

    def evaluate(name: str, help_text: str, dataset: str | None = None) -> argparse.ArgumentParser:
        e: argparse.ArgumentParser = what.add_parser(name, help=help_text)
        if dataset:
            e.add_argument("dir", nargs="?", help=f"the {dataset} directory")
        e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
        return e

    e = evaluate("vitals", "bed vitals against the simulator's truth, and staging on a simulated strap night")
    e.add_argument("--rr", help="real RR series driving the simulated beats (li2024 CSV or ms per line)")
    e.add_argument("--seed", type=int, default=1, help="the simulation's seed")
    for name, dataset in (("sleep-accel", "sleep-accel dataset"), ("slpdb", "slpdb-rr dataset")):
        e = evaluate(name, f"staging against polysomnography ({dataset})", dataset)
        e.add_argument("--cv", type=int, help="leave-subjects-out CV with this many folds (0: one per subject)")
        e.add_argument("--model", help="a model JSON file (default: the committed model)")
        if name == "slpdb":
            e.add_argument(
                "--source",
                choices=["hr", "rr"],
                default="hr",
                help="stage from heart rate alone, or from heart rate and beat-to-beat HRV (the rr-mlp-v3 model)",
            )
            e.add_argument(
                "--also-train-on",
                help="--cv: a sleep-accel directory whose subjects join the folds (figures per corpus and pooled)",
            )
            e.add_argument(
                "--anchor",
                choices=["sleepecg"],
                help="score SleepECG's pretrained wrn-gru-mesa on the same records (needs the anchors extra)",
            )
            e.add_argument("--train-seed", type=int, default=0, help="--cv: the first training seed (the spread)")
            e.add_argument("--members", type=int, help="--cv: networks per model (default: as committed, hr 1, rr 3)")
            e.add_argument(
                "--apnea",
                action="store_true",
                help="score the committed apnoea model on the scorers' respiratory events"
                " (30-s epochs mapped to minutes)",
            )
        else:
            e.set_defaults(source="hr", also_train_on=None, anchor=None, train_seed=0, members=None, apnea=False)
    e = evaluate("apnea-ecg", "per-minute apnoea, AHI and record class from RR against Apnea-ECG's labels", "apnea-ecg")
    e.add_argument("--cv", type=int, help="subject-grouped CV with this many folds (0: one per subject)")
    e.add_argument("--seed", type=int, default=0, help="--cv: the seed that deals subjects to folds")
    e.add_argument("--model", help="an apnoea model JSON file (default: the committed model)")
    evaluate("cvhr", "the CVHR apnoea screening index against slpdb-rr's scored respiratory events", "slpdb-rr")
    e = evaluate("report", "every number of the night report against the simulator's truth, through both layers")
    e.add_argument("--nights", type=int, help="simulated nights to audit (default 6: every scenario once)")
    e.add_argument("--seed", type=int, default=1, help="the simulation's first seed")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser(
        "train",
        help="train a model: hr-mlp-v1 on sleep-accel, rr-mlp-v3 on slpdb-rr and sleep-accel,"
        " apnoea-rr-lr-v2 on apnea-ecg",
    )
    s.add_argument(
        "--model",
        choices=["hr-mlp-v1", "rr-mlp-v3", "apnoea-rr-lr-v2"],
        default="hr-mlp-v1",
        help="which model to train",
    )
    s.add_argument(
        "--data",
        help="dataset directory (default ../shared/data/sleep-accel, ../shared/data/slpdb-rr"
        " or ../shared/data/apnea-ecg)",
    )
    s.add_argument("--sleep-accel", help="rr-mlp-v3: the sleep-accel directory (default ../shared/data/sleep-accel)")
    s.add_argument("--out", help="artefact path (JSON; default: the packaged core/nights/models/<model>.json)")
    s.add_argument("--seed", type=int, default=0, help="the training seed")
    s.set_defaults(func=_cmd_train)
