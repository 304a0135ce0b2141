"""``sleepstack package``: the deployable artefacts, under ``build/``.

* ``build/lambda.zip`` — the speed-layer function, the raw delivery's transformation
  function and the notifier (:mod:`sleepstack.notify.aws`): the whole packages ``core``,
  ``dead_letters``, ``registry`` (subjects' alert thresholds and labels), ``speed_layer``,
  ``serving`` (the notifier reads alert episodes through :mod:`serving.live_queries`; the
  SQL engines import DuckDB and pyathena only when used), ``access`` (acknowledgement links),
  ``batch_layer`` (the transform is :mod:`batch_layer.raw_landing`; Spark and Arrow are
  imported only by the nightly job's modules) and the composition root ``sleepstack``
  (its entry points :mod:`sleepstack.lambda_entry`; the rest imports its heavy
  dependencies only when a command runs, never in a function), and the third-party packages the handler
  imports, installed for the Lambda runtime (Python 3.11 on Amazon Linux 2,
  x86_64: manylinux2014 wheels only, so nothing compiled here leaks in). boto3/botocore
  come with the runtime and are left out. Test suites and byte-code caches inside the
  dependencies are dropped. The sizes are reported against Lambda's limits (50 MiB zipped
  for a direct upload, 250 MiB unzipped in all) and exceeding the unzipped limit fails.
* ``build/glue/sleepstack_batch-<version>-py3-none-any.whl`` — ``core`` and
  ``batch_layer`` as a wheel for the Glue job's ``--additional-python-modules``
  (Glue 5.1 provides Spark, numpy, pandas and pyarrow; the wheel's requirements are chosen
  in :mod:`sleepstack.glue_runtime` so that pip leaves those as they are and adds scipy).
* ``build/glue/nightly_staging.py`` — the job script.

Upload the three to ``s3://<ArtifactsBucket>/sleepstack/<version>/`` (docs/deploy.md).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.errors import SleepstackError
from sleepstack.glue_runtime import GLUE_REQUIREMENTS, unmet_pins

__all__ = [
    "LAMBDA_UNZIPPED_LIMIT",
    "LAMBDA_ZIPPED_LIMIT",
    "PackageError",
    "PackageReport",
    "build_glue_wheel",
    "build_lambda",
    "package_all",
    "pip_install_for_lambda",
]

MIB: Final = 1 << 20
LAMBDA_ZIPPED_LIMIT: Final = 50 * MIB  # direct upload; larger zips must go through S3
LAMBDA_UNZIPPED_LIMIT: Final = 250 * MIB  # function code and layers, unzipped
#: What the Lambda handler imports beyond the standard library and the runtime's boto3.
LAMBDA_REQUIREMENTS: Final = (
    "aws-lambda-powertools>=3.0",
    "opensearch-py>=2.6",
    "orjson>=3.10",
    "numpy>=2.0,<3",
    "scipy>=1.13,<2",
    "pyyaml>=6,<7",  # the notifier's routes file, when one is set
)
#: Our packages in the function (whole packages, never single files), under :func:`source_root`.
LAMBDA_SOURCES: Final = (
    "core",
    "dead_letters",
    "registry",
    "speed_layer",
    "batch_layer",
    "serving",
    "access",
    "sleepstack",
)
GLUE_SOURCES: Final = ("core", "registry", "batch_layer")
_DROP_DIRS: Final = {"__pycache__", "tests"}
#: numpy.testing (which scipy imports) imports from numpy's own test packages: keep numpy whole.
_KEEP_TESTS_UNDER: Final = {"numpy"}

Installer = Callable[[Iterable[str], Path], None]


class PackageError(SleepstackError):
    """An artefact could not be built, or is over a service limit."""


def source_root() -> Path:
    """The directory that holds sleepstack's packages (the checkout, or site-packages)."""
    spec = importlib.util.find_spec("core")
    if spec is None or not spec.submodule_search_locations:
        raise PackageError("the sleepstack packages are not importable; install the project first")
    return Path(next(iter(spec.submodule_search_locations))).parent


@dataclass(frozen=True, slots=True)
class PackageReport:
    lambda_zip: Path
    lambda_zipped_bytes: int
    lambda_unzipped_bytes: int
    glue_wheel: Path
    glue_script: Path

    def summary(self) -> str:
        z, u = self.lambda_zipped_bytes / MIB, self.lambda_unzipped_bytes / MIB
        limit = f"the {LAMBDA_ZIPPED_LIMIT // MIB} MiB direct-upload limit"
        if self.lambda_zipped_bytes <= LAMBDA_ZIPPED_LIMIT:
            direct = f"within {limit}"
        else:
            direct = f"over {limit}: deploy it from S3, as the template does"
        return (
            f"{self.lambda_zip}: {z:.1f} MiB zipped ({direct}), {u:.1f} MiB unzipped"
            f" ({u / (LAMBDA_UNZIPPED_LIMIT / MIB):.0%} of the {LAMBDA_UNZIPPED_LIMIT // MIB} MiB limit)\n"
            f"{self.glue_wheel}\n{self.glue_script}"
        )


def pip_install_for_lambda(requirements: Iterable[str], target: Path) -> None:
    """Install ``requirements`` into ``target`` as wheels for the Lambda runtime (PyPI)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--platform",
        "manylinux2014_x86_64",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
        "--only-binary=:all:",
        "--upgrade",
        *requirements,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackageError(f"pip could not install the Lambda dependencies:\n{done.stderr.strip()[-2000:]}")


def _dropped(rel: Path) -> bool:
    parts = rel.parts
    if rel.suffix == ".pyc" or "__pycache__" in parts[:-1]:
        return True
    return parts[0] not in _KEEP_TESTS_UNDER and any(p in _DROP_DIRS for p in parts[:-1])


def _copy_sources(repo: Path, sources: Iterable[str], dest: Path) -> None:
    for src in sources:
        path = repo / src
        if path.is_dir():
            shutil.copytree(path, dest / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules"))
        else:
            (dest / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / src)


def _write_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """One reproducible zip entry: fixed timestamp and permissions, deflated."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _zip_dir(root: Path, out: Path) -> int:
    """Zip ``root`` deterministically (sorted, fixed timestamps); returns unzipped bytes."""
    total = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if _dropped(rel):
                continue
            data = path.read_bytes()
            total += len(data)
            _write_entry(zf, rel.as_posix(), data)
    return total


def build_lambda(repo: Path, build: Path, install: Installer = pip_install_for_lambda) -> tuple[Path, int, int]:
    """Build ``build/lambda.zip``; returns (path, zipped bytes, unzipped bytes)."""
    staging = build / "lambda"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    install(LAMBDA_REQUIREMENTS, staging)
    for provided in ("boto3", "botocore", "s3transfer"):  # in the runtime; never ship a second copy
        shutil.rmtree(staging / provided, ignore_errors=True)
    _copy_sources(repo, LAMBDA_SOURCES, staging)
    out = build / "lambda.zip"
    unzipped = _zip_dir(staging, out)
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise PackageError(
            f"{out} unzips to {unzipped / MIB:.1f} MiB, over Lambda's {LAMBDA_UNZIPPED_LIMIT // MIB} MiB limit"
        )
    return out, out.stat().st_size, unzipped


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_glue_wheel(repo: Path, out_dir: Path, version: str) -> Path:
    """A pure-Python wheel of ``core`` and ``batch_layer`` for Glue (PEP 427 layout).

    Its ``Requires-Dist`` are :data:`~sleepstack.glue_runtime.GLUE_REQUIREMENTS`; a pin that
    would make pip replace a module Glue provides (or float a module it lacks) fails the build.
    """
    unmet = unmet_pins(GLUE_REQUIREMENTS)
    if unmet:
        raise PackageError("the Glue wheel would not install cleanly: " + "; ".join(unmet))
    name = "sleepstack_batch"
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for src in GLUE_SOURCES:
        for path in sorted((repo / src).rglob("*")):
            # modules, and the package data they load (the staging model's JSON)
            if path.suffix in {".py", ".json"} and "__pycache__" not in path.parts:
                files[path.relative_to(repo).as_posix()] = path.read_bytes()
    requires = "".join(f"Requires-Dist: {r}\n" for r in GLUE_REQUIREMENTS)
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: sleepstack core and batch layer for the nightly Glue job\n{requires}"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: sleepstack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            _write_entry(zf, p, d)
    return out


def package_all(repo: Path, build: Path, version: str, install: Installer = pip_install_for_lambda) -> PackageReport:
    """Build every artefact under ``build``."""
    lambda_zip, zipped, unzipped = build_lambda(repo, build, install)
    glue = build / "glue"
    wheel = build_glue_wheel(repo, glue, version)
    script = glue / "nightly_staging.py"
    shutil.copy2(repo / "glue_jobs" / "nightly_staging.py", script)
    return PackageReport(lambda_zip, zipped, unzipped, wheel, script)
