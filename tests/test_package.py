"""``sleepstack package``: the Lambda zip and the Glue wheel and script."""

from __future__ import annotations

import site
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from sleepstack import package
from sleepstack.package import PackageError, build_glue_wheel, build_lambda, package_all
from tests.conftest import REPO_ROOT


def _no_dependencies(requirements: Iterable[str], target: Path) -> None:
    """Stands in for pip: the tests below use the dependencies of this environment."""
    assert "opensearch-py>=2.6" in requirements
    (target / "boto3").mkdir()  # as if a dependency had pulled boto3 in
    (target / "boto3" / "__init__.py").write_text("")


def _import_handler(root: Path, extra: list[str]) -> str:
    code = (
        "import sys; sys.path[:0] = sys.argv[1:]; import sleepstack.lambda_entry as h, sleepstack.wiring;"
        " import batch_layer.raw_landing;"
        " import sleepstack.notify.aws, sleepstack.notify.dynamo_outbox, serving.live_queries, access.ack_links;"
        " outside = [m.__file__ for m in (sleepstack.notify.aws, serving.live_queries, access.ack_links)"
        "            if not m.__file__.startswith(sys.argv[1])];"
        " assert not outside, outside;"
        " heavy = sorted({'bleak', 'pyspark', 'pyarrow', 'duckdb', 'local', 'ingest'} & set(sys.modules));"
        " assert not heavy, heavy;"
        " print(h.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), *extra], capture_output=True, text=True, check=False, cwd=root
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_lambda_zip_holds_the_handler_and_core_and_no_boto3(tmp_path: Path) -> None:
    out, zipped, unzipped = build_lambda(REPO_ROOT, tmp_path / "build", _no_dependencies)
    names = zipfile.ZipFile(out).namelist()
    assert "sleepstack/lambda_entry.py" in names and "speed_layer/handler.py" in names
    for pkg in package.LAMBDA_SOURCES:  # whole packages
        assert pkg in (
            "core",
            "dead_letters",
            "registry",
            "speed_layer",
            "batch_layer",
            "serving",
            "access",
            "sleepstack",
        )
        ours = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / pkg).rglob("*.py")}
        assert ours <= set(names), sorted(ours - set(names))
    # no stand-ins, no collector, no simulator (tests and the demo use it; a function never does)
    assert not any(n.startswith(("local/", "ingest/", "simulator/")) for n in names)
    assert "core/nights/models/rr-mlp-v3.json" in names
    assert not any(n.startswith("boto3/") or "__pycache__" in n or n.endswith(".pyc") for n in names)
    assert 0 < zipped < unzipped
    again, _, _ = build_lambda(REPO_ROOT, tmp_path / "again", _no_dependencies)
    assert again.read_bytes() == out.read_bytes()  # reproducible
    root = tmp_path / "unzipped"
    zipfile.ZipFile(out).extractall(root)
    assert _import_handler(root, []).startswith(str(root))


def test_lambda_over_the_unzipped_limit_fails_with_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "LAMBDA_UNZIPPED_LIMIT", 100_000)
    with pytest.raises(PackageError, match=r"MiB, over Lambda's"):
        build_lambda(REPO_ROOT, tmp_path, _no_dependencies)


def test_glue_wheel_installs_and_carries_core_and_the_batch_layer(tmp_path: Path) -> None:
    wheel = build_glue_wheel(REPO_ROOT, tmp_path / "glue", "0.1.0")
    assert wheel.name == "sleepstack_batch-0.1.0-py3-none-any.whl"
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # pip checks the RECORD hashes
    assert (target / "batch_layer" / "nightly_job.py").exists() and (target / "core" / "nights" / "nightly.py").exists()
    assert not (target / "simulator").exists() and not (target / "core" / "simulate.py").exists()
    meta = (target / "sleepstack_batch-0.1.0.dist-info" / "METADATA").read_text()
    assert "Requires-Dist: scipy" in meta and "pyspark" not in meta
    # the staging model's JSON travels with the code and loads from the installed wheel
    probe = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import batch_layer.stage_models as s; "
        f"assert s.__file__.startswith({str(target)!r}), s.__file__; print(s.bundled().hr.name)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "hr-mlp-v1", done.stderr


def test_package_all_writes_the_three_artefacts(tmp_path: Path) -> None:
    report = package_all(REPO_ROOT, tmp_path, "0.1.0", _no_dependencies)
    assert report.glue_script.read_text() == (REPO_ROOT / "glue_jobs" / "nightly_staging.py").read_text()
    assert "MiB zipped" in report.summary() and "of the 250 MiB limit" in report.summary()


@pytest.mark.slow
def test_real_lambda_package_fits_and_imports_with_only_the_runtime_boto3(tmp_path: Path) -> None:
    """Wheels for the Lambda platform from the package index; the handler imports from them."""
    out, _, unzipped = build_lambda(REPO_ROOT, tmp_path / "build")
    assert unzipped < package.LAMBDA_UNZIPPED_LIMIT
    names = set(zipfile.ZipFile(out).namelist())
    assert any(n.startswith("numpy/") for n in names) and any(n.startswith("opensearchpy/") for n in names)
    root = tmp_path / "unzipped"
    zipfile.ZipFile(out).extractall(root)
    runtime = tmp_path / "runtime"  # what the python3.11 runtime provides
    runtime.mkdir()
    venv_site = Path(site.getsitepackages()[0])
    for name in ("boto3", "botocore", "s3transfer", "jmespath"):
        (runtime / name).symlink_to(venv_site / name)
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + sys.argv[1:];"
        " import numpy, scipy.signal, opensearchpy, orjson, aws_lambda_powertools;"
        " import sleepstack.lambda_entry, sleepstack.wiring; print(numpy.__file__);"
        " import sleepstack.notify.aws, sleepstack.notify.dynamo_outbox, sleepstack.notify.routes_file, yaml"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(root), str(runtime)],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(root))


@pytest.mark.slow
def test_a_non_editable_install_carries_every_package_and_its_data(tmp_path: Path) -> None:
    """Package data is read through importlib.resources, so the wheel must hold it (no checkout paths)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("sleepstack-*.whl"))).namelist())
    for pkg in (
        "core",
        "dead_letters",
        "ingest",
        "speed_layer",
        "batch_layer",
        "serving",
        "local",
        "glue_jobs",
        "sleepstack",
    ):
        ours = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / pkg).rglob("*.py")}
        assert ours <= names, sorted(ours - names)
    data = {"infra/template.yaml", "infra/local/kinesalite-server.js", "infra/local/package-lock.json"}
    data |= {"core/nights/models/hr-mlp-v1.json", "serving/sql/night_summaries.sql"}
    assert data <= names, sorted(data - names)
