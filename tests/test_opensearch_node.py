"""The local OpenSearch node's launcher: every way it cannot start is a clear NodeError, fast."""

from __future__ import annotations

import socket
import time
import zipfile
from pathlib import Path

import pytest

from local.opensearch_node import DIST_COORDINATES, NodeError, OpenSearchNode, install_dist


def _fake_dist(tmp: Path, script: str = "#!/bin/sh\nsleep 30\n") -> Path:
    dist = tmp / "opensearch-2.19.6"
    (dist / "bin").mkdir(parents=True)
    (dist / "config" / "jvm.options.d").mkdir(parents=True)
    (dist / "bin" / "opensearch").write_text(script)
    (dist / "bin" / "opensearch").chmod(0o755)
    return dist


def _env_with_java(tmp: Path) -> dict[str, str]:
    java = tmp / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    return {"JAVA_HOME": str(tmp / "jdk"), "PATH": "/usr/bin:/bin"}


def test_not_installed_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="make opensearch"):
        OpenSearchNode(tmp_path / "opensearch-2.19.6", tmp_path / "home").start({"PATH": "/usr/bin:/bin"})


def test_no_java_is_named(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path)
    with pytest.raises(NodeError, match="no Java"):
        OpenSearchNode(dist, tmp_path / "home").start({"JAVA_HOME": str(tmp_path / "nojdk"), "PATH": str(tmp_path)})


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(NodeError, match=f"port {port} on 127.0.0.1 is taken"):
            OpenSearchNode(dist, tmp_path / "home", http_port=port).start(_env_with_java(tmp_path))


def test_a_node_that_dies_reports_its_last_error_at_once(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path, "#!/bin/sh\necho 'starting'\necho 'ERROR: max file descriptors too low'\nexit 78\n")
    t0 = time.monotonic()
    with pytest.raises(NodeError, match=r"exited \(78\): ERROR: max file descriptors too low"):
        OpenSearchNode(dist, tmp_path / "home").start(_env_with_java(tmp_path), timeout_s=30)
    assert time.monotonic() - t0 < 10


def test_a_node_that_never_answers_is_stopped_and_reported_within_the_timeout(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path)  # sleeps, never listens
    node = OpenSearchNode(dist, tmp_path / "home")
    t0 = time.monotonic()
    with pytest.raises(NodeError, match="did not become healthy within 2 s"):
        node.start(_env_with_java(tmp_path), timeout_s=2)
    assert time.monotonic() - t0 < 10
    assert node.proc is not None and node.proc.poll() is not None  # not left running


def test_ports_are_kept_per_home(tmp_path: Path) -> None:
    a = OpenSearchNode(tmp_path / "d", tmp_path / "home").keep_ports()
    b = OpenSearchNode(tmp_path / "d", tmp_path / "home").keep_ports()
    assert (a.http_port, a.transport_port) == (b.http_port, b.transport_port) and a.http_port != a.transport_port


def test_an_archive_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    group, artifact, version, _ = DIST_COORDINATES.split(":")
    archive = tmp_path.joinpath("m2", *group.split("."), artifact, version, f"{artifact}-{version}.zip")
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("opensearch-2.19.6/README.md", "not the real thing")
    with pytest.raises(NodeError, match="SHA-256"):
        install_dist(tmp_path / "build" / "opensearch-2.19.6", m2=tmp_path / "m2")


def test_the_distribution_folder_must_be_named_for_its_version(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match=r"opensearch-2\.19\.6"):
        install_dist(tmp_path / "somewhere")


def test_a_refused_download_says_what_maven_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '[ERROR] Could not resolve artifact: 403 Forbidden'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    with pytest.raises(NodeError, match=r"Maven could not fetch .*403 Forbidden"):
        install_dist(tmp_path / "build" / "opensearch-2.19.6", m2=tmp_path / "m2")
