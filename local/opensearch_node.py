"""A real single-node OpenSearch on loopback: obtained from Maven Central, started, checked, stopped.

**What.** OpenSearch 2.19.6's ``integ-test-zip`` distribution
(``org.opensearch.distribution.integ-test-zip:opensearch:2.19.6:zip``, 56 MB: the server
and its ``transport-netty4`` module, no bundled JDK; it runs on the machine's Java 17), and
the ``reindex`` and ``lang-painless`` modules from their jars (:mod:`local.opensearch_modules`),
pinned by version and SHA-256 (:data:`DIST_SHA256`). :func:`install_dist` fetches it
with Maven into the local repository and unpacks it under ``build/opensearch/`` (ignored
by git; ``make opensearch``). The Index State Management plugin is not published to Maven Central (its
job-scheduler dependency is, alone it is of no use), so policies cannot be installed
on this node; :func:`speed_layer.opensearch_setup.install` detects that and says so.

**How it runs.** :class:`OpenSearchNode` writes a config directory of its own under the
data directory (``opensearch.yml``: single node, loopback only, the chosen HTTP and
transport ports, the data and log paths; a small heap) and starts ``bin/opensearch`` on
it. OpenSearch refuses to run as root. Where this process is root (CI), the node starts
in a new user namespace in which it is uid 1000 (``unshare --user --map-user``): it has
no capabilities on the host, and what it writes is still owned by this user outside,
so the data stays owner-only under ``SLEEPSTACK_HOME``. :meth:`OpenSearchNode.start`
returns once the cluster is yellow or green, and raises :class:`NodeError` naming the
cause (no Java, not installed, port taken, the node's own last log line) within
``timeout_s`` — never a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from core.errors import SleepstackError
from local.maven import fetch_artifact
from local.opensearch_modules import install_modules, modules_marker

__all__ = [
    "DIST_COORDINATES",
    "DIST_SHA256",
    "OPENSEARCH_VERSION",
    "NodeError",
    "OpenSearchNode",
    "cluster_health",
    "default_dist",
    "free_port",
    "install_dist",
]

OPENSEARCH_VERSION: Final = "2.19.6"
DIST_COORDINATES: Final = f"org.opensearch.distribution.integ-test-zip:opensearch:{OPENSEARCH_VERSION}:zip"
#: SHA-256 of opensearch-2.19.6.zip as Maven Central serves it (checked before unpacking).
DIST_SHA256: Final = "71d6d8b1c637f3faecda0752b184b1cc526fc6eaad59ec1408c6327bb00b9293"
#: The uid the node has inside its user namespace when started by root.
_NAMESPACE_UID: Final = 1000


class NodeError(SleepstackError):
    """The OpenSearch node cannot be obtained or started; the message says why."""


def default_dist(build: Path) -> Path:
    """Where ``make opensearch`` unpacks the distribution under the checkout's ``build``."""
    return build / "opensearch" / f"opensearch-{OPENSEARCH_VERSION}"


def install_dist(dist: Path, *, m2: Path | None = None) -> Path:
    """Fetch the pinned distribution with Maven (its local repository is the cache), check
    its SHA-256 and unpack it as ``dist`` (a folder named ``opensearch-<version>``)."""
    if dist.name != f"opensearch-{OPENSEARCH_VERSION}":
        raise NodeError(f"{dist} must be a folder named opensearch-{OPENSEARCH_VERSION}")
    marker = f"{DIST_SHA256}\n{modules_marker()}\n"
    installed = dist / ".installed"
    if installed.exists() and installed.read_text() == marker:
        return dist
    if shutil.which("mvn") is None:
        raise NodeError("Maven (mvn) is needed to fetch OpenSearch from Maven Central: apt-get install maven")
    repo = m2 or Path.home() / ".m2" / "repository"
    group, artifact, version, _ = DIST_COORDINATES.split(":")
    archive = repo.joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.zip")
    fetch_artifact(DIST_COORDINATES, archive, DIST_SHA256, NodeError)
    dist.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dist, ignore_errors=True)
    with zipfile.ZipFile(archive) as z:
        z.extractall(dist.parent)
    for script in (dist / "bin").iterdir():
        script.chmod(0o755)
    install_modules(dist, repo, NodeError)
    installed.write_text(marker)
    return dist


def cluster_health(url: str) -> dict[str, Any] | None:
    """``GET <url>/_cluster/health``, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=2) as resp:  # noqa: S310 - our loopback node
            out: dict[str, Any] = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _java(env: Mapping[str, str]) -> str:
    java_home = env.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java", path=env.get("PATH"))
    if not java or not Path(java).exists():
        raise NodeError(
            "no Java found (JAVA_HOME or java on PATH): OpenSearch needs Java 17"
            " (apt-get install openjdk-17-jre-headless)"
        )
    return str(java)


@dataclass
class OpenSearchNode:
    """One node: ``dist`` (an installed distribution), ``home`` (its config, data and logs)."""

    dist: Path
    home: Path
    http_port: int = 0
    transport_port: int = 0
    heap_mb: int = 512
    #: extra ``opensearch.yml`` settings (e.g. a small write queue for a throttling test)
    settings: dict[str, Any] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.home / "logs" / "sleepstack-node.log"

    def _configure(self) -> Path:
        conf = self.home / "config"
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(self.dist / "config", conf)
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        yml = {
            "cluster.name": "sleepstack-local",
            "node.name": "sleepstack-local-0",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            "path.data": str(self.home / "data"),
            "path.logs": str(self.home / "logs"),
            "action.destructive_requires_name": True,
            **(self.settings or {}),
        }
        (conf / "opensearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in yml.items()))
        heap = f"-Xms{self.heap_mb}m\n-Xmx{self.heap_mb}m\n"
        (conf / "jvm.options.d" / "sleepstack-heap.options").write_text(heap)
        return conf

    def start(self, env: Mapping[str, str], *, timeout_s: float = 60.0) -> OpenSearchNode:
        """Start the node (``env``: the environment to start it in, e.g. ``Settings.child_env()``)
        and wait until it answers with a yellow or green cluster."""
        self.spawn(env)
        self.wait_healthy(timeout_s)
        return self

    def keep_ports(self) -> OpenSearchNode:
        """Use the ports this home's node had before (``node.json``), choosing and saving them once,
        so a restarted node has the same address."""
        saved = self.home / "node.json"
        try:
            ports = json.loads(saved.read_text())
        except (FileNotFoundError, ValueError):
            ports = {"http_port": free_port(), "transport_port": free_port()}
            self.home.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(ports))
        self.http_port, self.transport_port = int(ports["http_port"]), int(ports["transport_port"])
        return self

    def spawn(self, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start the node's process (not waiting for it to answer: :meth:`wait_healthy`)."""
        self.dist, self.home = self.dist.resolve(), self.home.resolve()
        if not (self.dist / "bin" / "opensearch").exists():
            raise NodeError(f"OpenSearch is not installed at {self.dist}: run `make opensearch`")
        java = _java(env)
        for name in ("http_port", "transport_port"):
            port = getattr(self, name)
            if port and _port_taken(port):
                raise NodeError(f"port {port} on 127.0.0.1 is taken: the node's {name.replace('_', ' ')} must be free")
            if not port:
                setattr(self, name, free_port())
        conf = self._configure()
        node_env = {
            **env,
            "OPENSEARCH_PATH_CONF": str(conf),
            "OPENSEARCH_TMPDIR": str(self.home / "tmp"),
            "JAVA_HOME": str(Path(java).resolve().parent.parent),
        }
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        argv = [str(self.dist / "bin" / "opensearch")]
        if os.geteuid() == 0:  # OpenSearch refuses root: run it as uid 1000 of its own user namespace
            argv = ["unshare", "--user", f"--map-user={_NAMESPACE_UID}", f"--map-group={_NAMESPACE_UID}", *argv]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=self.home, env=node_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self.proc

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Return once the cluster is yellow or green; :class:`NodeError` naming the cause otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise NodeError(f"the OpenSearch node exited ({self.proc.returncode}): {self._last_error()}")
            health = self.health()
            if health and health.get("status") in ("yellow", "green"):
                return
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"the OpenSearch node did not become healthy within {timeout_s:.0f} s: {self._last_error()}")

    def health(self) -> dict[str, Any] | None:
        """``_cluster/health``, or None while the node does not answer."""
        return cluster_health(self.url)

    def _last_error(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "no log"
        picked = [ln for ln in lines if "ERROR" in ln or "Exception" in ln or "error" in ln.lower()]
        return (picked or lines or ["empty log"])[-1][-400:]

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
