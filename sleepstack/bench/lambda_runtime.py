"""``sleepstack bench lambda``: the packaged zip in AWS's Lambda runtime emulator, cold start and memory.

The zip (:func:`sleepstack.package.build_lambda`, wheels for the Lambda platform) is
unzipped as the task root and run by the Runtime Interface Emulator through
``awslambdaric`` with only what the python3.11 runtime provides
(:mod:`sleepstack.emulator`), configured as the template configures the function
(``SLEEPSTACK_TARGET=aws``, its tables, bucket and OpenSearch endpoint). What it talks to
is on loopback: moto's server for DynamoDB and S3 (``AWS_ENDPOINT_URL``) and
:class:`BulkSink`, an OpenSearch ``_bulk`` endpoint that keeps the documents.

Each round starts a fresh execution environment (a cold start), invokes the speed-layer
handler with a Kinesis event of plain records and one of a KPL aggregate, then starts the
Firehose transform's environment and invokes it once. Figures (medians of the rounds):
``init_ms`` (the emulator's Init Duration: Python, the runtime client and the handler
module's imports), ``first_invoke_ms`` (the first invocation, which wires the clients),
``warm_invoke_ms``, and ``peak_rss_mb`` (the runtime process's peak resident memory; the
emulator's own "Max Memory Used" only echoes the memory size).
"""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from core.contract import Record, to_wire
from sleepstack.emulator import EmulatedFunction, build_emulator, runtime_dir

__all__ = [
    "NOTIFIER_HANDLER",
    "SPEED_HANDLER",
    "TRANSFORM_HANDLER",
    "AwsStandIns",
    "BulkSink",
    "aws_standins",
    "bench_lambda",
    "firehose_event",
    "speed_layer_event",
    "speed_layer_function",
    "unzip_package",
]

SPEED_HANDLER: Final = "sleepstack.lambda_entry.lambda_handler"
TRANSFORM_HANDLER: Final = "sleepstack.lambda_entry.firehose_transform_handler"
NOTIFIER_HANDLER: Final = "sleepstack.lambda_entry.notifier_handler"
_REGION: Final = "us-east-1"
_ARN: Final = f"arn:aws:kinesis:{_REGION}:000000000000:stream/sleepstack-dev-ingest"


class BulkSink:
    """An OpenSearch ``_bulk`` endpoint on loopback that keeps what it is sent: ``docs`` by (index, id).

    It also answers ``_search`` on the alert indices with every alert document it holds
    (the query is not evaluated: the notifier, which asks, re-derives what it needs), so
    the notifier function can run against it."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests = 0
        sink = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                path = self.path.split("?")[0]
                if path.endswith("/_search") and "-alerts" in path:
                    hits = [
                        {"_index": i, "_id": d, "_source": doc}
                        for (i, d), doc in sorted(sink.docs.items())
                        if "-alerts-" in i
                    ]
                    self._answer(200, {"took": 1, "hits": {"total": {"value": len(hits)}, "hits": hits}})
                    return
                if not path.endswith("/_bulk"):
                    self._answer(404, {"error": f"not served here: {self.path}"})
                    return
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                items = []
                for action, doc in zip(lines[::2], lines[1::2], strict=True):
                    ((op, meta),) = action.items()
                    sink.docs[(meta["_index"], meta["_id"])] = doc
                    items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201}})
                self._answer(200, {"took": 1, "errors": False, "items": items})

            do_GET = do_POST  # a search may come as GET with a body

            def _answer(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class AwsStandIns:
    """moto's server (DynamoDB, S3) and a :class:`BulkSink`, with the function's environment for them."""

    endpoint: str
    opensearch: BulkSink
    env: dict[str, str] = field(default_factory=dict)
    #: The notifier function's variables (the template's), and the queue subscribed to its topic.
    notifier_env: dict[str, str] = field(default_factory=dict)
    clinical_queue_url: str = ""

    def client(self, service: str) -> Any:
        import boto3

        make: Any = boto3.client
        return make(
            service,
            region_name=_REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="emulated",
            aws_secret_access_key="emulated",  # noqa: S106 - moto accepts any
        )


def _create_tables(client: Any, template: dict[str, Any], names: dict[str, str]) -> None:
    """The template's DynamoDB tables (key schema, attributes, indexes as written there), on demand."""
    for logical_id, name in names.items():
        props = template["Resources"][logical_id]["Properties"]
        extra: dict[str, Any] = {}
        if props.get("GlobalSecondaryIndexes"):
            extra["GlobalSecondaryIndexes"] = [
                {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for gsi in props["GlobalSecondaryIndexes"]
            ]
        client.create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )


@contextmanager
def aws_standins(*, dead_letter_bucket: bool = True) -> Iterator[AwsStandIns]:
    """Start moto's server and the bulk sink; the template's tables exist, and the dead-letter bucket
    unless ``dead_letter_bucket`` is False (its writes then fail, as with a bucket one cannot reach)."""
    import logging

    from moto.server import ThreadedMotoServer

    from local.template import load_template

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sink = BulkSink()
    stand = AwsStandIns(f"http://{host}:{port}", sink)
    # moto's backends live in this process: start from nothing, whatever ran before
    reset = urllib.request.Request(f"{stand.endpoint}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - loopback http, our own server
    try:
        tables = {
            "SpeedLayerStateTable": "sleepstack-dev-speed-layer-state",
            "RegistryTable": "sleepstack-dev-registry",
            "NotifierOutboxTable": "sleepstack-dev-notifier-outbox",
        }
        _create_tables(stand.client("dynamodb"), load_template(), tables)
        if dead_letter_bucket:
            stand.client("s3").create_bucket(Bucket="sleepstack-dev-dead-letters")
        topic = stand.client("sns").create_topic(Name="sleepstack-dev-clinical-alerts")["TopicArn"]
        sqs = stand.client("sqs")
        stand.clinical_queue_url = sqs.create_queue(QueueName="clinical-alerts-reader")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=stand.clinical_queue_url, AttributeNames=["QueueArn"])
        stand.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
        lambda_given = {
            # what Lambda gives every function (credentials of its role), pointed at the stand-ins
            "AWS_REGION": _REGION,
            "AWS_DEFAULT_REGION": _REGION,
            "AWS_ACCESS_KEY_ID": "emulated",
            "AWS_SECRET_ACCESS_KEY": "emulated",
            "AWS_SESSION_TOKEN": "emulated",
            "AWS_ENDPOINT_URL": stand.endpoint,
        }
        stand.env = {
            # the function's variables, as the template sets them
            "SLEEPSTACK_TARGET": "aws",
            "SLEEPSTACK_ENV": "dev",
            "SLEEPSTACK_DEAD_LETTER_BUCKET": "sleepstack-dev-dead-letters",
            "SLEEPSTACK_STATE_TABLE": tables["SpeedLayerStateTable"],
            "SLEEPSTACK_REGISTRY_TABLE": tables["RegistryTable"],
            "OPENSEARCH_URL": sink.url,
            "POWERTOOLS_SERVICE_NAME": "sleepstack-speed-layer",
            **lambda_given,
        }
        stand.notifier_env = {
            "SLEEPSTACK_TARGET": "aws",
            "SLEEPSTACK_ENV": "dev",
            "SLEEPSTACK_TZ": "UTC",
            "SLEEPSTACK_REGISTRY_TABLE": tables["RegistryTable"],
            "SLEEPSTACK_OUTBOX_TABLE": tables["NotifierOutboxTable"],
            "SLEEPSTACK_CLINICAL_TOPIC_ARN": topic,
            "SLEEPSTACK_NOTIFY_POLL_S": "1",
            "OPENSEARCH_URL": sink.url,
            "POWERTOOLS_SERVICE_NAME": "sleepstack-notifier",
            **lambda_given,
        }
        yield stand
    finally:
        sink.close()
        server.stop()


def unzip_package(zip_path: Path, task_root: Path) -> Path:
    """Unzip the Lambda package as the task root (``/var/task`` on Lambda)."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(task_root)
    return task_root


def speed_layer_event(payloads: list[tuple[str, bytes]], *, first_seq: int = 10**20) -> dict[str, Any]:
    """A Kinesis event of (partition key, data) records, as the event source mapping sends it."""
    from local.event_source_mapping import kinesis_event

    now = datetime.now(tz=UTC)
    rows = [
        {"PartitionKey": k, "SequenceNumber": str(first_seq + i), "Data": d, "ApproximateArrivalTimestamp": now}
        for i, (k, d) in enumerate(payloads)
    ]
    return kinesis_event(rows, shard_id="shardId-000000000000", arn=_ARN, region=_REGION)


def firehose_event(payloads: list[bytes]) -> dict[str, Any]:
    """A Firehose data-transformation event (Kinesis stream source) of ``payloads``."""
    now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
    return {
        "invocationId": "emulated-invocation",
        "deliveryStreamArn": f"arn:aws:firehose:{_REGION}:000000000000:deliverystream/sleepstack-dev-raw",
        "sourceKinesisStreamArn": _ARN,
        "region": _REGION,
        "records": [
            {
                "recordId": f"{i:08d}",
                "approximateArrivalTimestamp": now_ms,
                "data": base64.b64encode(p).decode(),
                "kinesisRecordMetadata": {
                    "sequenceNumber": str(10**20 + i),
                    "subsequenceNumber": 0,
                    "partitionKey": "p",
                    "shardId": "shardId-000000000000",
                    "approximateArrivalTimestamp": now_ms,
                },
            }
            for i, p in enumerate(payloads)
        ],
    }


def speed_layer_function(
    emulator: Path,
    task_root: Path,
    runtime: Path,
    env: dict[str, str],
    handler: str = SPEED_HANDLER,
    log: Path | None = None,
) -> EmulatedFunction:
    return EmulatedFunction(emulator, task_root, runtime, handler, env=env, memory_mb=1024, timeout_s=120, log=log)


def _records(minutes: int = 4) -> list[Record]:
    from sleepstack.bench.fixtures import simulated_night_records

    recs = simulated_night_records("emu", seed=3)
    start = len(recs) // 3
    t0 = recs[start].event_time_ms
    return [r for r in recs[start:] if r.event_time_ms < t0 + minutes * 60_000]


def bench_lambda(rounds: int = 3, build: Path | None = None) -> dict[str, Any]:
    """Cold start, first and warm invocation and peak memory of the packaged zip in the emulator."""
    from ingest.aggregation import pack_records
    from sleepstack.bench.fixtures import one_shard
    from sleepstack.package import build_lambda, source_root

    build = build or source_root() / "build"
    emulator, runtime = build_emulator(build), runtime_dir(build)
    recs = _records()
    half = len(recs) // 2
    plain = speed_layer_event([(r.device_id, to_wire(r)) for r in recs[:half]])
    packed = [(p.partition_key, p.data) for p in pack_records(recs[half:], shard_of=one_shard)]
    aggregated = speed_layer_event(packed, first_seq=10**20 + half)
    transform = firehose_event([to_wire(r) for r in recs[:200]])
    figures: dict[str, list[float]] = {k: [] for k in ("init_ms", "first_invoke_ms", "warm_invoke_ms", "peak_rss_mb")}
    transform_fig: dict[str, list[float]] = {"init_ms": [], "peak_rss_mb": []}
    with tempfile.TemporaryDirectory(prefix="sleepstack-bench-lambda-") as tmp:
        zip_path, zipped, unzipped = build_lambda(source_root(), Path(tmp) / "build")
        task_root = unzip_package(zip_path, Path(tmp) / "task")
        for r in range(rounds):
            with aws_standins() as stand:
                with speed_layer_function(
                    emulator, task_root, runtime, stand.env, log=Path(tmp) / f"speed-{r}.log"
                ) as fn:
                    for event in (plain, aggregated):
                        resp = fn.invoke(event)
                        if resp != {"batchItemFailures": []}:
                            raise RuntimeError(f"the emulated speed layer failed: {resp}\n{fn.log_text()[-2000:]}")
                first, warm = fn.reports[0], fn.reports[1]
                figures["init_ms"].append(fn.init_ms or 0.0)
                figures["first_invoke_ms"].append(first.duration_ms)
                figures["warm_invoke_ms"].append(warm.duration_ms)
                figures["peak_rss_mb"].append(fn.peak_rss_mb)
                with speed_layer_function(
                    emulator, task_root, runtime, stand.env, TRANSFORM_HANDLER, log=Path(tmp) / f"transform-{r}.log"
                ) as tf:
                    out = tf.invoke(transform)
                    if {x["result"] for x in out["records"]} != {"Ok"}:
                        raise RuntimeError(f"the emulated transform did not land every record: {out}")
                transform_fig["init_ms"].append(tf.init_ms or 0.0)
                transform_fig["peak_rss_mb"].append(tf.peak_rss_mb)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    return {
        "rounds": rounds,
        "emulator": str(emulator),
        "zip_mib": round(zipped / (1 << 20), 1),
        "unzipped_mib": round(unzipped / (1 << 20), 1),
        "memory_size_mb": 1024,
        "speed_layer_records_per_invoke": [half, len(recs) - half],
        "speed_layer_init_ms": med(figures["init_ms"]),
        "speed_layer_first_invoke_ms": med(figures["first_invoke_ms"]),
        "speed_layer_warm_invoke_ms": med(figures["warm_invoke_ms"]),
        "speed_layer_peak_rss_mb": med(figures["peak_rss_mb"]),
        "transform_init_ms": med(transform_fig["init_ms"]),
        "transform_peak_rss_mb": med(transform_fig["peak_rss_mb"]),
    }
