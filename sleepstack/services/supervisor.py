"""The supervisor's assembly: which services the local stack runs, and how each starts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from local.supervisor import ServiceSpec, Supervisor, wait_gone
from sleepstack import wiring
from sleepstack.services import PYTHON_SERVICES
from sleepstack.settings import Settings

__all__ = ["run_supervisor"]


def run_supervisor(settings: Settings) -> None:
    """Start the stream (and the OpenSearch node when it is the live store), then every
    Python service, and keep them running until SIGTERM (:class:`local.supervisor.Supervisor`)."""
    from local.kinesis import KinesaliteServer
    from local.template import load_template, stream_specs

    home = settings.paths
    stream = KinesaliteServer(home)
    specs_of_streams = stream_specs(load_template(settings.template), Environment=settings.environment)

    def start_stream() -> subprocess.Popen[bytes]:
        if (old := stream.state()) is not None:  # a stream left running by a supervisor that was killed
            stream.down()
            wait_gone(int(old["pid"]), timeout_s=10.0)
        proc, _ = stream.launch()
        return proc

    def streams_ready(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        url = stream.endpoint
        stream.create_streams(specs_of_streams, url)
        return {"url": url, "streams": [s.name for s in specs_of_streams]}

    env = settings.child_env()
    specs = [ServiceSpec("stream", start_stream, streams_ready, backing=True)]
    if settings.live_store == "opensearch":
        node_spec, url = _opensearch_service(settings)
        specs.append(node_spec)
        env["OPENSEARCH_URL"] = url  # the speed layer writes there, the dashboard reads there

    def python_service(name: str) -> Callable[[], subprocess.Popen[bytes]]:
        def start() -> subprocess.Popen[bytes]:
            home.logs.mkdir(parents=True, exist_ok=True)
            with home.log(name).open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-m", "sleepstack.services", name], stdout=out, stderr=subprocess.STDOUT, env=env
                )

        return start

    specs += [ServiceSpec(name, python_service(name)) for name in PYTHON_SERVICES]
    try:
        Supervisor(specs, home.supervisor_state).run()
    finally:
        home.stream_server.unlink(missing_ok=True)


def _opensearch_service(settings: Settings) -> tuple[ServiceSpec, str]:
    """The live store's OpenSearch node (``stack up --live-store opensearch``) and its address.

    Its data and ports are kept under the home's ``opensearch/``; once it answers, the
    speed layer's index templates (and ISM policies, where the plugin exists) are installed.
    """
    from local.opensearch_node import OpenSearchNode
    from speed_layer.opensearch_setup import install

    node = OpenSearchNode(wiring.opensearch_dist(settings), settings.paths.opensearch).keep_ports()

    def ready(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        node.proc = proc
        node.wait_healthy(timeout_s=60.0)
        report = install(wiring.opensearch_client(node.url), replicas=0)
        return {"url": node.url, "ism": not report.ism_missing}

    return ServiceSpec("opensearch", lambda: node.spawn(settings.child_env()), ready, backing=True), node.url
