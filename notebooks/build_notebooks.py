"""Writes the three notebooks from the cells below (run: python notebooks/build_notebooks.py).

The notebooks are committed without outputs; the test suite executes them (tests/test_notebooks.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import sys
from pathlib import Path

ROOT = Path.cwd() if (Path.cwd() / "core").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))
SLEEP_ACCEL = ROOT.parent / "shared" / "data" / "sleep-accel"
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
"""

ONE_NIGHT = [
    new_markdown_cell(
        "# One night, explored\n\n"
        "Part 1: a real night from sleep-accel (Apple Watch heart rate, PSG hypnogram). It is staged by a\n"
        "model trained **without** this subject, so the hypnogram is an honest out-of-sample picture.\n\n"
        "Part 2: a simulated night with a bed sensor, through the same per-night function the Spark job runs\n"
        "(`core.nights.nightly.stage_subject_night`), with heart-rate and breathing traces against the simulator's truth."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "from core.signals.hr_features import hr_epoch_features\n"
        "from core.nights.agreement import staging_agreement\n"
        "from sleepstack.datasets.sleep_accel import epoch_mean_hr\n"
        "from sleepstack.evaluation.staging import load_corpus, training_set\n"
        "from core.nights.classifier import fit_stage_model\n\n"
        "nights = load_corpus(SLEEP_ACCEL)\n"
        "held_out = nights[0]\n"
        "model = fit_stage_model(training_set(nights[1:]), max_iter=150)\n"
        "hr = epoch_mean_hr(held_out)\n"
        "pred = model.predict(hr_epoch_features(hr))\n"
        "scored = held_out.stages >= 0\n"
        "fig = staging_agreement(held_out.stages[scored], pred[scored])\n"
        "print(held_out.subject, {k: round(v, 3) for k, v in fig.items()})\n"
        "assert fig['epochs'] > 500 and fig['kappa_3'] > 0.0"
    ),
    new_code_cell(
        "hours = np.arange(len(hr)) * 30 / 3600\n"
        "order = {0: 3, 3: 2, 1: 1, 2: 0}  # draw wake on top, deep at the bottom\n"
        "f, ax = plt.subplots(3, 1, figsize=(11, 7), sharex=True)\n"
        "ax[0].step(hours, [order.get(int(s), np.nan) for s in held_out.stages], where='post')\n"
        "ax[0].set_yticks([0, 1, 2, 3], ['deep', 'light', 'REM', 'wake']); ax[0].set_title('PSG')\n"
        "ax[1].step(hours, [order[int(s)] for s in pred], where='post', color='C1')\n"
        "ax[1].set_yticks([0, 1, 2, 3], ['deep', 'light', 'REM', 'wake']); ax[1].set_title('heart-rate model (unseen subject)')\n"
        "ax[2].plot(hours, hr, lw=0.8); ax[2].set_ylabel('HR (bpm)'); ax[2].set_xlabel('hours since PSG start')\n"
        "plt.tight_layout()"
    ),
    new_code_cell(
        "from core.contract import to_row\n"
        "from core.contract.epochs import night_of\n"
        "from batch_layer.stage_models import bundled\nfrom core.nights.nightly import stage_subject_night, summarize_night\n"
        "from simulator.nights import SimConfig, night_records, simulate_night\n\n"
        "sim = simulate_night(SimConfig('demo-subject', 1_767_651_000_000, seed=5, apnea_per_hour=6.0))\n"
        "raw = pd.DataFrame([to_row(r) for r in night_records(sim, strap_device=None, bed_device='bed-1')])\n"
        "raw['night'] = night_of(sim.t0_ms)\n"
        "epochs = stage_subject_night(raw, models=bundled())\n"
        "summary = summarize_night(epochs, bundled())\n"
        "summary.T"
    ),
    new_code_cell(
        "truth = sim.epochs\n"
        "t = (epochs['epoch_start_ms'] - sim.t0_ms) / 3.6e6\n"
        "f, ax = plt.subplots(3, 1, figsize=(11, 7), sharex=True)\n"
        "ax[0].step(truth.t_s / 3600, [order[int(s)] for s in truth.stage], where='post', label='simulator truth')\n"
        "ax[0].step(t, [order.get(s, np.nan) if pd.notna(s) else np.nan for s in epochs['stage']], where='post', label='staged', alpha=0.7)\n"
        "ax[0].set_yticks([0, 1, 2, 3], ['deep', 'light', 'REM', 'wake']); ax[0].legend(loc='upper right')\n"
        "ax[1].plot(truth.t_s / 3600, truth.hr_bpm, label='truth'); ax[1].plot(t, epochs['hr_bpm'], label='bed sensor', alpha=0.7)\n"
        "ax[1].set_ylabel('HR (bpm)'); ax[1].legend(loc='upper right')\n"
        "ax[2].plot(truth.t_s / 3600, truth.br_per_min, label='truth'); ax[2].plot(t, epochs['br_per_min'], label='bed sensor', alpha=0.7)\n"
        "ax[2].set_ylabel('breaths/min'); ax[2].set_xlabel('hours'); ax[2].legend(loc='upper right')\n"
        "plt.tight_layout()\n"
        "assert summary.iloc[0]['status'] == 'staged' and summary.iloc[0]['pauses_per_hour'] is not None"
    ),
]

COHORT = [
    new_markdown_cell(
        "# A cohort through SQL\n\n"
        "Builds a small curated lake with the per-night function the nightly job applies (three simulated\n"
        "subjects, two nights each), then runs the named Athena queries from `serving/sql/` on it through the\n"
        "local engine (DuckDB; the same text runs on Athena). Point `LAKE` at another lake (e.g. the demo's,\n"
        "`.sleepstack/demo/lake`) to analyse that instead."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "import tempfile\n"
        "from core.contract import to_row\n"
        "from core.contract.epochs import night_of\n"
        "from batch_layer.stage_models import bundled\nfrom core.nights.nightly import stage_subject_night, summarize_night\n"
        "from simulator.nights import SimConfig, night_records, simulate_night\n\n"
        "LAKE = Path(tempfile.mkdtemp(prefix='cohort-'))\n"
        "epochs, nights = [], []\n"
        "for k in range(3):\n"
        "    for d in range(2):\n"
        "        sim = simulate_night(SimConfig(f's{k:03d}', 1_767_651_000_000 + d * 86_400_000, seed=10 * k + d, apnea_per_hour=3.0 * k))\n"
        "        raw = pd.DataFrame([to_row(r) for r in night_records(sim, strap_device=None, bed_device=f'bed-{k}')])\n"
        "        raw['night'] = night_of(sim.t0_ms)\n"
        "        e = stage_subject_night(raw, models=bundled())\n"
        "        epochs.append(e); nights.append(summarize_night(e, bundled()))\n"
        "for name, frames in (('epochs', epochs), ('nights', nights)):\n"
        "    df = pd.concat(frames)\n"
        "    for night, part in df.groupby('night'):\n"
        "        out = LAKE / 'curated' / name / f'night={night}'\n"
        "        out.mkdir(parents=True, exist_ok=True)\n"
        "        part.drop(columns='night').to_parquet(out / 'part-0.parquet', index=False)\n"
        "print(LAKE)"
    ),
    new_code_cell(
        "from local.duckdb_sql import LocalSqlEngine\nfrom serving.sql_engine import load_query, query_names\n\n"
        "sql = LocalSqlEngine(LAKE)\n"
        "print(query_names())\n"
        "summaries = sql.query(load_query('night_summaries'))\n"
        "assert len(summaries) == 6\n"
        "summaries"
    ),
    new_code_cell("sql.query(load_query('stage_distribution_trend'))"),
    new_code_cell("sql.query(load_query('hr_by_stage'))"),
    new_code_cell(
        "pauses = sql.query(load_query('breathing_pause_nights'))\n"
        "print(load_query('breathing_pause_nights'))\n"
        "pauses"
    ),
    new_code_cell(
        "pct = sql.query(load_query('cohort_percentiles'))\n"
        "assert pct.iloc[0]['nights'] == 6\n"
        "pct.T"
    ),
    new_code_cell(
        "ax = summaries.pivot(index='night', columns='subject_id', values='sleep_score').plot.bar(figsize=(8, 3))\n"
        "ax.set_ylabel('sleep score (0-100)'); plt.tight_layout()"
    ),
]

EVALUATION = [
    new_markdown_cell(
        "# The staging model, evaluated\n\n"
        "Leave-subjects-out cross-validation on sleep-accel (Walch et al. 2019): every figure here is for\n"
        "nights the scoring model never saw. This notebook uses 3 folds to stay quick; the README's figures\n"
        "come from `sleepstack evaluate sleep-accel DIR --cv 0` (one fold per subject)."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "from sleepstack.evaluation.staging import cross_validate\n\n"
        "cv = cross_validate(SLEEP_ACCEL, folds=3)\n"
        "{k: v for k, v in cv.items() if k not in ('per_subject', 'confusion_4')}"
    ),
    new_code_cell(
        "labels = ['wake', 'light', 'deep', 'REM']\n"
        "cm = np.array(cv['confusion_4'])\n"
        "recall = cm / cm.sum(axis=1, keepdims=True)\n"
        "f, ax = plt.subplots(figsize=(5, 4))\n"
        "ax.imshow(recall, cmap='Blues', vmin=0, vmax=1)\n"
        "for i in range(4):\n"
        "    for j in range(4):\n"
        "        ax.text(j, i, f'{recall[i, j]:.2f}\\n({cm[i, j]})', ha='center', va='center', fontsize=8)\n"
        "ax.set_xticks(range(4), labels); ax.set_yticks(range(4), labels)\n"
        "ax.set_xlabel('predicted'); ax.set_ylabel('PSG'); ax.set_title('row-normalised confusion (out of fold)')\n"
        "plt.tight_layout()\n"
        "pd.DataFrame(cm, index=labels, columns=labels)"
    ),
    new_code_cell(
        "per = pd.DataFrame(cv['per_subject']).sort_values('kappa_4')\n"
        "ax = per.plot.barh(x='subject', y=['kappa_4', 'kappa_3'], figsize=(7, 6))\n"
        "ax.axvline(0.45, ls=':', c='k'); ax.set_xlabel(\"Cohen's kappa\"); plt.tight_layout()\n"
        "assert len(per) == 21 and cv['kappa_3'] > 0.3\n"
        "per[['subject', 'epochs', 'kappa_4', 'kappa_3', 'kappa_2', 'tst_truth_min', 'tst_pred_min', 'tst_error_min']]"
    ),
]


def main(out: Path = HERE) -> None:
    for name, cells in (
        ("01_one_night.ipynb", ONE_NIGHT),
        ("02_cohort_sql.ipynb", COHORT),
        ("03_model_evaluation.ipynb", EVALUATION),
    ):
        for i, cell in enumerate(cells):
            cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: the builder's output is reproducible
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
        nbformat.validate(nb)
        nbformat.write(nb, out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
