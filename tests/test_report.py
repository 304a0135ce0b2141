"""``sleepstack report``: the night's self-contained HTML, its PDF, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sleepstack.cli import main
from sleepstack.report import write_report
from sleepstack.settings import Settings
from tests.dashboard_helpers import fill_home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    return fill_home(tmp_path_factory.mktemp("report"), hours=4.5)


def test_the_report_is_one_self_contained_file(home: tuple[Settings, str], tmp_path: Path) -> None:
    settings, night = home
    (html,) = write_report(settings, "s002", night, tmp_path / "r.html")
    text = html.read_text()
    assert "<script src=" not in text and '<link rel="stylesheet"' not in text  # nothing to fetch
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text)  # no remote resource
    for part in ('id="hypnogram"', 'id="hr-trace"', 'id="br-trace"', 'id="stages"', 'id="score"', "hr-mlp-v1"):
        assert part in text
    assert "uPlot" in text  # the chart library, inlined
    assert 'id="screen-cvhr_per_hour"' in text  # the strap sends RR: the night has the heart-rate screen
    assert 'id="screen-pauses_per_hour"' in text and 'id="bed-exits"' in text  # and the bed its pauses


def test_the_report_shows_the_ahi_estimate_with_its_interval_and_the_models_figures(
    home: tuple[Settings, str], tmp_path: Path
) -> None:
    """The night's AHI figures as the curated table holds them, and the detector's validated figures."""
    from batch_layer.stage_models import model_card, model_cards
    from core.nights.apnoea import APNOEA_MODEL
    from serving.web.api import night_detail
    from sleepstack import wiring

    settings, night = home
    summary = night_detail(wiring.sql_engine(settings), "s002", night, model_cards())["summary"]  # type: ignore[index]
    assert summary["apnoea_model"] == APNOEA_MODEL and summary["ahi_lo"] <= summary["ahi_est"] <= summary["ahi_hi"]
    text = write_report(settings, "s002", night, tmp_path / "r.html")[0].read_text()
    assert 'id="ahi"' in text and 'id="apnoea-model"' in text
    shown = re.search(r'id="ahi-interval">([\d.]+)\u2013([\d.]+) /h', text)
    assert shown is not None
    assert float(shown[1]) == pytest.approx(summary["ahi_lo"], abs=0.051)
    assert float(shown[2]) == pytest.approx(summary["ahi_hi"], abs=0.051)
    card = model_card(APNOEA_MODEL)
    assert f"r {card['ahi_pearson_r']}" in text and card["limitations"] in text


def test_the_reports_metrics_carry_the_stagers_conformal_intervals(home: tuple[Settings, str], tmp_path: Path) -> None:
    """TST and the others read with the 90 % interval the staging model's card measured, around the night's value."""
    from batch_layer.stage_models import model_card, model_cards
    from serving.web.api import night_detail
    from sleepstack import wiring

    settings, night = home
    detail = night_detail(wiring.sql_engine(settings), "s002", night, model_cards())
    assert detail is not None
    s, card = detail["summary"], model_card(str(detail["summary"]["method"]))
    text = write_report(settings, "s002", night, tmp_path / "r.html")[0].read_text()
    if "intervals_90" not in card:
        assert "this model's card has none measured" in text
        return
    q = card["intervals_90"]["total_sleep_time_min"]["halfwidth"]
    shown = re.search(r'id="interval-total_sleep_time_min">90 %: (\d+)\u2013(\d+)', text)
    assert shown is not None
    assert float(shown[1]) == pytest.approx(max(0.0, s["total_sleep_time_min"] - q), abs=0.5)
    assert float(shown[2]) == pytest.approx(s["total_sleep_time_min"] + q, abs=0.5)
    assert 'id="interval-deep_min"' in text and 'id="intervals-note"' in text


@pytest.mark.browser
def test_the_report_prints_to_pdf(home: tuple[Settings, str], tmp_path: Path) -> None:
    settings, night = home
    html, pdf = write_report(settings, "s003", night, tmp_path / "report.html", pdf=True)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000
    assert "s003" in html.read_text()


def test_report_errors_are_typed_and_clear(
    home: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, night = home
    monkeypatch.setenv("SLEEPSTACK_HOME", str(settings.home))
    out = str(tmp_path / "x.html")
    assert main(["report", "--subject", "nobody", "--night", night, "--out", out]) == 1
    assert "no staged night" in capsys.readouterr().err
    assert main(["report", "--subject", "s001", "--night", "2026-13-01", "--out", out]) == 2
    assert "not a calendar date" in capsys.readouterr().err
    assert main(["report", "--subject", "s 1", "--night", night, "--out", out]) == 2
    assert "not a subject id" in capsys.readouterr().err
    monkeypatch.setenv("SLEEPSTACK_CHROMIUM", str(tmp_path / "no-chromium"))
    assert main(["report", "--subject", "s001", "--night", night, "--out", out, "--pdf"]) == 2
    assert "install Chromium" in capsys.readouterr().err


def test_the_dashboard_refuses_to_listen_off_loopback_without_tls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--host", "0.0.0.0"]) == 2  # noqa: S104 - the refusal under test
    err = capsys.readouterr().err
    assert "health data" in err and "--tls-cert" in err and "Traceback" not in err


def test_an_unreliable_nights_report_says_why_next_to_the_hypnogram(home: tuple[Settings, str]) -> None:
    from batch_layer.stage_models import model_cards
    from serving.web.api import night_detail
    from serving.web.pages import render_report
    from sleepstack import wiring

    settings, night = home
    detail = night_detail(wiring.sql_engine(settings), "s002", night, model_cards())
    assert detail is not None and detail["summary"]["staging_reliable"] is True
    assert 'id="staging-unreliable"' not in render_report(detail)
    why = "heart rate flat (SD 1.2 beats/min over the night, under 2)"
    flagged = {**detail, "summary": {**detail["summary"], "staging_reliable": False, "staging_unreliable_reason": why}}
    assert f'id="staging-unreliable">Staging unreliable: {why}.' in render_report(flagged)
