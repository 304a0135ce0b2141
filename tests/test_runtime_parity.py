"""Production parity: what the tests run is what the template deploys.

The nightly job runs on Glue 5.1 (Spark 3.5.6, Python 3.11): pyproject pins that PySpark and
the tests import it. The OpenSearch domain runs the major.minor of the node the integration
suite starts. The Glue wheel's requirements leave every module Glue provides as it is.
"""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pyspark
import pytest
from packaging.requirements import Requirement

from local.opensearch_node import OPENSEARCH_VERSION
from local.template import load_template
from sleepstack import glue_runtime, package
from sleepstack.glue_runtime import GLUE_PROVIDED, GLUE_REQUIREMENTS, GLUE_SPARK, GLUE_VERSION, unmet_pins
from sleepstack.package import PackageError, build_glue_wheel
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template(REPO_ROOT / "infra" / "template.yaml")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_the_template_runs_the_glue_version_whose_spark_the_project_pins(
    doc: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    job = doc["Resources"]["NightlyJob"]["Properties"]
    assert job["GlueVersion"] == GLUE_VERSION == "5.1"
    assert job["Command"] == job["Command"] | {"Name": "glueetl", "PythonVersion": "3"}
    (pin,) = [Requirement(d) for d in pyproject["project"]["dependencies"] if Requirement(d).name == "pyspark"]
    assert str(pin.specifier) == f"=={GLUE_SPARK}" == "==3.5.6"
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.12"  # Glue 5.1's Python 3.11


def test_the_tests_run_on_the_glue_spark() -> None:
    assert pyspark.__version__ == GLUE_SPARK


def test_the_opensearch_domain_runs_the_tested_nodes_major_minor(doc: dict[str, Any]) -> None:
    (domain,) = [r for r in doc["Resources"].values() if r["Type"] == "AWS::OpenSearchService::Domain"]
    major_minor = ".".join(OPENSEARCH_VERSION.split(".")[:2])
    assert domain["Properties"]["EngineVersion"] == f"OpenSearch_{major_minor}" == "OpenSearch_2.19"


def test_the_glue_wheels_pins_leave_glues_modules_alone() -> None:
    assert unmet_pins() == []
    for text in GLUE_REQUIREMENTS:
        req = Requirement(text)
        assert req.name not in {"pyspark", "py4j"}  # Glue's own Spark, never a second one
        if req.name in GLUE_PROVIDED:
            assert GLUE_PROVIDED[req.name] in req.specifier


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("numpy>=2.4", "would replace Glue 5.1's numpy 2.3.4"),
        ("pandas<2.3", "would replace Glue 5.1's pandas 2.3.3"),
        ("scipy>=1.13,<2", "does not provide scipy, so pin it exactly"),
        ("edfio", "does not provide edfio, so pin it exactly"),
    ],
)
def test_a_pin_pip_would_act_on_is_named(pin: str, reason: str) -> None:
    (unmet,) = unmet_pins((*GLUE_REQUIREMENTS, pin))
    assert unmet.startswith(pin) and reason in unmet


def test_the_wheel_declares_exactly_the_glue_pins(tmp_path: Path) -> None:
    wheel = build_glue_wheel(REPO_ROOT, tmp_path, "0.1.0")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("sleepstack_batch-0.1.0.dist-info/METADATA").decode()
    declared = [line.removeprefix("Requires-Dist: ") for line in meta.splitlines() if line.startswith("Requires-Dist")]
    assert declared == list(GLUE_REQUIREMENTS)


def test_a_wheel_that_would_replace_a_glue_module_is_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "GLUE_REQUIREMENTS", (*glue_runtime.GLUE_REQUIREMENTS, "pyarrow>=23"))
    with pytest.raises(PackageError, match=r"pyarrow>=23 would replace Glue 5.1's pyarrow 22.0.0"):
        build_glue_wheel(REPO_ROOT, tmp_path, "0.1.0")
    assert not list(tmp_path.iterdir())
