"""One artefact from Maven Central, by Maven into its local repository (the cache), checked by SHA-256."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from core.errors import SleepstackError

__all__ = ["fetch_artifact", "sha256_of"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_artifact(coordinates: str, path: Path, sha256: str, error: type[SleepstackError]) -> Path:
    """``path`` (where Maven's repository keeps ``coordinates``), fetched with ``mvn dependency:get``
    unless already there, and refused unless its SHA-256 is ``sha256``; ``error`` names a failure."""
    if not path.exists():
        done = subprocess.run(
            ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not path.exists():
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise error(f"Maven could not fetch {coordinates}: {' / '.join(tail) or 'no output'}")
    if (got := sha256_of(path)) != sha256:
        raise error(f"{path} has SHA-256 {got}, not the pinned {sha256}: delete it and retry")
    return path
