"""Wire core + adapters from settings: the only place that picks local or AWS edges.

Every client and store the entry points use is built here from :class:`Settings`: the
Kinesis client (kinesalite or AWS), the live store and its queries (embedded or
OpenSearch), the SQL engine (DuckDB or Athena), the state
store (SQLite or DynamoDB), the dead-letter sink (a directory or S3) and the speed-layer
handler bound to them. The local stand-ins are imported only when the target is local.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.live.alerts import AlertRules
from dead_letters import DeadLetterSink, LocalDeadLetters, S3DeadLetters
from sleepstack.settings import Settings
from speed_layer.handler import SpeedLayerHandler
from speed_layer.opensearch_setup import HttpPost, urllib_post
from speed_layer.state_store import DynamoStateStore, StateStore
from speed_layer.store import LiveStore, OpenSearchLiveStore

if TYPE_CHECKING:  # serving is not in the Lambda zip, which imports this module: imported where used
    from access.accounts import AccountStore
    from access.audit import AuditLog
    from core.notify import Route
    from core.outbox import OutboxStore
    from local.alert_acks import AlertAcks
    from registry.store import RegistryStore
    from serving.live_queries import LiveQueries
    from serving.sql_engine import SqlEngine
    from sleepstack.erase_aws import AwsStores
    from sleepstack.notify.engine import Notifier
    from speed_layer.subject_rules import SubjectRules

__all__ = [
    "aws_outbox",
    "dashboards_post",
    "dead_letters",
    "kinesis_client",
    "live_queries",
    "live_store",
    "local_endpoint",
    "opensearch_client",
    "opensearch_dist",
    "opensearch_for",
    "speed_layer_handler",
    "sql_engine",
    "state_store",
    "stream_name",
]


def local_endpoint(settings: Settings) -> str:
    """This home's local Kinesis endpoint: its port is kept across restarts, so a client made
    while the stream restarts simply retries. StackError when the stack was never started."""
    from local.kinesis import KinesaliteServer, StackError

    stream = KinesaliteServer(settings.paths)
    if (state := stream.state()) is not None:
        return f"http://127.0.0.1:{state['port']}"
    if port := stream.saved_port():
        return f"http://127.0.0.1:{port}"
    raise StackError("the local stack is not running: start it with `sleepstack stack up`")


def kinesis_client(settings: Settings, endpoint: str | None = None) -> Any:
    """A Kinesis client: AWS for target ``aws``; else kinesalite at ``endpoint`` or the running stack's."""
    if settings.target == "aws":
        import boto3
        from botocore.config import Config

        config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16)
        return boto3.client("kinesis", region_name=settings.region, config=config)
    from local.kinesis import local_kinesis_client

    return local_kinesis_client(endpoint or local_endpoint(settings))


def stream_name(settings: Settings) -> str:
    """The record stream's name, as the template names it for this environment."""
    from local.template import load_template, stream_specs

    return stream_specs(load_template(settings.template), Environment=settings.environment)[0].name


def opensearch_client(url: str, *, sigv4_region: str | None = None) -> Any:
    """An opensearch-py client; with ``sigv4_region`` requests are signed for an AWS domain.

    The production domain uses fine-grained access control with IAM principals, so every
    request is SigV4-signed (service ``es``) with the function's or user's credentials.
    """
    from opensearchpy import OpenSearch

    if sigv4_region is None:
        return OpenSearch(hosts=[url], timeout=30)
    import boto3
    from opensearchpy import Urllib3AWSV4SignerAuth

    auth = Urllib3AWSV4SignerAuth(boto3.Session().get_credentials(), sigv4_region, "es")
    # the domain's https endpoint (the template's); a plain http one only for a loopback stand-in
    tls = not url.startswith("http://")
    return OpenSearch(hosts=[url], http_auth=auth, use_ssl=tls, verify_certs=tls, timeout=30)


def dashboards_post(sigv4_region: str | None = None) -> HttpPost:
    """How the Dashboards import is sent: plain, or SigV4-signed for an AWS domain."""
    if sigv4_region is None:
        return urllib_post
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ConfigError("AWS credentials", "are needed to sign the OpenSearch Dashboards import; none were found")

    def signed(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        req = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(credentials, "es", sigv4_region).add_auth(req)
        return urllib_post(url, dict(req.headers.items()), body)

    return signed


def _sigv4_region(settings: Settings) -> str | None:
    return settings.region if settings.target == "aws" else None


def opensearch_for(settings: Settings, url: str) -> tuple[Any, HttpPost]:
    """Client and Dashboards sender for ``url``, signed when the target is AWS."""
    region = _sigv4_region(settings)
    return opensearch_client(url, sigv4_region=region), dashboards_post(region)


def live_store(settings: Settings, path: Path | None = None) -> LiveStore:
    """OpenSearch when ``OPENSEARCH_URL`` is set, else the embedded store (at ``path``)."""
    if settings.opensearch_url:
        return OpenSearchLiveStore(opensearch_client(settings.opensearch_url, sigv4_region=_sigv4_region(settings)))
    from local.live_store import LocalLiveStore

    return LocalLiveStore(path or settings.paths.live_db)


def live_queries(settings: Settings, path: Path | None = None) -> LiveQueries:
    """What the live views read: the same store :func:`live_store` writes."""
    if settings.opensearch_url:
        from serving.live_queries import OpenSearchLiveQueries

        return OpenSearchLiveQueries(opensearch_client(settings.opensearch_url, sigv4_region=_sigv4_region(settings)))
    from local.live_store import LocalLiveStore

    return LocalLiveStore(path or settings.paths.live_db)


def opensearch_dist(settings: Settings) -> Path:
    """The local OpenSearch distribution: ``SLEEPSTACK_OPENSEARCH_DIST`` or the checkout's ``build/opensearch``."""
    from local.opensearch_node import default_dist
    from sleepstack.package import source_root

    return settings.opensearch_dist or default_dist(source_root() / "build")


def sql_engine(settings: Settings, lake: Path | None = None) -> SqlEngine:
    """Athena (aws) or DuckDB over the local lake (a snapshot of it: open one per batch run)."""
    if settings.target == "aws":
        from pyathena import connect

        from serving.sql_engine import AthenaSqlEngine

        conn = connect(
            s3_staging_dir=settings.athena_s3_staging, region_name=settings.region, work_group=settings.athena_workgroup
        )
        return AthenaSqlEngine(conn, database=f"sleepstack_{settings.environment}")
    from local.duckdb_sql import LocalSqlEngine

    return LocalSqlEngine(lake or settings.lake)


def state_store(settings: Settings, path: Path | None = None) -> StateStore:
    if settings.target == "aws":
        if not settings.state_table:
            raise ConfigError("SLEEPSTACK_STATE_TABLE", "must be set when SLEEPSTACK_TARGET=aws")
        import boto3

        return DynamoStateStore(boto3.client("dynamodb", region_name=settings.region), settings.state_table)
    from local.state_store import LocalStateStore

    return LocalStateStore(path or settings.paths.state_db)


def registry(settings: Settings, *, create: bool = True) -> RegistryStore:
    """Subjects, devices and assignments: DynamoDB on AWS, the home's SQLite file locally.

    ``create=False``: a home without a registry gets an empty one in memory instead of a
    new file (a command that only reads, or is refused, creates nothing)."""
    if settings.target == "aws":
        if not settings.registry_table:
            raise ConfigError("SLEEPSTACK_REGISTRY_TABLE", "must be set when SLEEPSTACK_TARGET=aws")
        import boto3

        from registry.dynamodb import DynamoRegistry

        return DynamoRegistry(boto3.client("dynamodb", region_name=settings.region), settings.registry_table)
    from local.registry import LocalRegistry

    if not create and not settings.paths.registry_db.exists():
        return LocalRegistry(Path(":memory:"))
    return LocalRegistry(settings.paths.registry_db)


def accounts(settings: Settings, *, create: bool = True) -> AccountStore:
    """The dashboard's users, sessions and API tokens: an SQLite file of the home, on either
    target (the dashboard runs beside its home; on AWS too it reads the cloud through it).

    ``create=False``: a home without accounts gets an empty store in memory (creates nothing)."""
    from local.accounts import LocalAccounts

    if not create and not settings.paths.accounts_db.exists():
        return LocalAccounts(Path(":memory:"))
    return LocalAccounts(settings.paths.accounts_db)


def aws_outbox(settings: Settings) -> OutboxStore:
    """The notifier's DynamoDB outbox (``SLEEPSTACK_OUTBOX_TABLE``)."""
    if not settings.outbox_table:
        raise ConfigError("SLEEPSTACK_OUTBOX_TABLE", "must be set for the notifier when SLEEPSTACK_TARGET=aws")
    import boto3

    from sleepstack.notify.dynamo_outbox import DynamoOutbox

    return DynamoOutbox(boto3.client("dynamodb", region_name=settings.region), settings.outbox_table)


def alert_acks(settings: Settings) -> AlertAcks:
    """Who acknowledged which alert, and the one-click links used: an SQLite file of the home
    (the dashboard writes it, the notifier reads it to stop escalating)."""
    from local.alert_acks import AlertAcks

    return AlertAcks(settings.paths.alert_acks_db)


def audit_log(settings: Settings) -> AuditLog:
    """The access audit of this home (created owner-only at its first entry)."""
    from access.audit import AuditLog

    return AuditLog(settings.paths.audit_log)


def dead_letters(settings: Settings, local_dir: Path | None = None) -> DeadLetterSink:
    if settings.target == "aws":
        if not settings.dead_letter_bucket:
            raise ConfigError("SLEEPSTACK_DEAD_LETTER_BUCKET", "must be set when SLEEPSTACK_TARGET=aws")
        import boto3

        return S3DeadLetters(boto3.client("s3", region_name=settings.region), settings.dead_letter_bucket)
    return LocalDeadLetters(local_dir or settings.paths.dead_letters)


def speed_layer_handler(
    settings: Settings,
    *,
    store: LiveStore | None = None,
    states: StateStore | None = None,
    letters: DeadLetterSink | None = None,
    **kwargs: Any,
) -> SpeedLayerHandler:
    """The speed-layer handler bound to the settings' stores (or to the ones given); with
    ``SLEEPSTACK_EPOCH_WRITES`` on, writing states at epoch boundaries (a takeover reads the
    stream again through this target's Kinesis client)."""
    rules = AlertRules.from_dict(settings.alert_rules)
    states = states or state_store(settings)
    if settings.epoch_writes and "epoch_writes" not in kwargs:
        from speed_layer.epoch_writes import EpochWriter
        from speed_layer.replay import KinesisReplay

        kwargs["epoch_writes"] = EpochWriter(states, KinesisReplay(_LazyClient(lambda: kinesis_client(settings))))
    return SpeedLayerHandler(
        store or live_store(settings),
        states,
        letters or dead_letters(settings),
        rules=rules,
        rules_for=subject_rules(settings, rules),
        **kwargs,
    )


class _LazyClient:
    """A client made on its first use: a handler that never takes a shard over never needs one
    (locally, the stream's endpoint is known only once the stack runs)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._client = make, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


def subject_rules(settings: Settings, defaults: AlertRules) -> SubjectRules | None:
    """Each subject's alert rules from the registry (None on AWS without ``SLEEPSTACK_REGISTRY_TABLE``)."""
    from speed_layer.subject_rules import SubjectRules

    if settings.target == "aws" and not settings.registry_table:
        return None
    held: list[RegistryStore] = []

    def overrides(subject_id: str) -> dict[str, float] | None:
        if settings.target == "local" and not settings.paths.registry_db.exists():
            return None  # no registry yet: nobody has overrides
        if not held:
            held.append(registry(settings, create=False))
        subject = held[0].get_subject(subject_id)
        return dict(subject.alert_overrides) if subject is not None else None

    return SubjectRules(defaults, overrides)


def aws_erasure_stores(settings: Settings) -> AwsStores:
    """The deployed stores a subject's erasure empties on AWS (``sleepstack erase``,
    :mod:`sleepstack.erase_aws`): every one must be named, or nothing is erased."""
    named = {
        "SLEEPSTACK_REGISTRY_TABLE": settings.registry_table,
        "OPENSEARCH_URL": settings.opensearch_url,
        "SLEEPSTACK_STATE_TABLE": settings.state_table,
        "SLEEPSTACK_RAW_BUCKET": settings.raw_bucket,
        "SLEEPSTACK_CURATED_BUCKET": settings.curated_bucket,
        "SLEEPSTACK_DEAD_LETTER_BUCKET": settings.dead_letter_bucket,
        "SLEEPSTACK_OUTBOX_TABLE": settings.outbox_table,
    }
    missing = [k for k, v in named.items() if not v]
    if missing:
        raise ConfigError(
            missing[0],
            f"must be set to erase on AWS (SLEEPSTACK_TARGET=aws); unset: {', '.join(missing)}"
            " (the stack's outputs name them: docs/erasure.md)",
        )
    import boto3

    from sleepstack.erase_aws import AwsStores
    from sleepstack.s3_erasure import S3Erasure

    s3 = boto3.client("s3", region_name=settings.region)
    url = settings.opensearch_url or ""  # named: checked above
    return AwsStores(
        registry(settings),
        OpenSearchLiveStore(opensearch_client(url, sigv4_region=_sigv4_region(settings))),
        state_store(settings),
        S3Erasure(s3, settings.raw_bucket, settings.curated_bucket, settings.dead_letter_bucket),
        aws_outbox(settings),
    )


def _refuse_escalation_without_acks(routes: Sequence[Route], source: str) -> None:
    """The AWS notifier has no acknowledgement store yet: a later tier would page its
    recipients whether or not somebody answered, so a route with more than one tier is
    refused there (docs/alerts.md, "On AWS")."""
    from core.notify import RouteError

    for route in routes:
        if len(route.tiers) > 1:
            raise RouteError(
                f"{source}: route {route.name!r}",
                f"escalates ({len(route.tiers)} tiers), but acknowledgements do not reach the AWS notifier yet,"
                " so every tier would be sent whether or not somebody answered; give it one tier on AWS",
            )


def notifier(settings: Settings, *, clock: Callable[[], float] | None = None) -> Notifier | None:
    """The notifier of this home (:mod:`sleepstack.notify.engine`), or ``None`` when it has
    nobody to tell (it idles then: never a default recipient).

    Locally: the routes file, the SQLite outbox, SMTP and webhooks. On AWS
    (``SLEEPSTACK_TARGET=aws``): the DynamoDB outbox, and the clinical SNS topic as one more
    channel that a built-in route (:func:`sleepstack.notify.aws.topic_route`) publishes every
    alert transition to; a routes file, SMTP and webhooks still add theirs."""
    import time

    from sleepstack.notify.channels import Channel, EmailChannel, WebhookChannel
    from sleepstack.notify.engine import Notifier
    from sleepstack.notify.routes_file import load_routes

    aws = settings.target == "aws"
    routes = load_routes(settings.alert_routes) if settings.alert_routes is not None else []
    if aws:
        _refuse_escalation_without_acks(routes, str(settings.alert_routes))
    channels: dict[str, Channel] = {}
    if aws and settings.clinical_topic_arn:
        import boto3

        from sleepstack.notify.aws import topic_route
        from sleepstack.notify.channels import SnsChannel

        routes.append(topic_route(settings.clinical_topic_arn))
        channels["sns"] = SnsChannel(boto3.client("sns", region_name=settings.region))
    if not routes:
        return None
    if settings.smtp_host:
        channels["email"] = EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            cafile=settings.smtp_cafile,
        )
    if settings.webhook_secret:
        channels["webhook"] = WebhookChannel(settings.webhook_secret.encode())
    reg = registry(settings)

    def subject_info(doc: Mapping[str, Any]) -> tuple[Sequence[str], str, str]:
        subject = reg.get_subject(str(doc.get("subject_id", "")))
        device = reg.get_device(str(doc.get("device_id", "")))
        label = (device.label if device is not None else "") or str(doc.get("subject_id", ""))
        return (subject.groups, label, subject.tz) if subject is not None else ((), label, settings.tz)

    crash: Callable[[], None] | None = None
    if settings.notify_crash_window_s:
        window = settings.notify_crash_window_s

        def crash() -> None:  # the kill -9 test's window between acceptance and commit
            time.sleep(window)

    if aws:  # no acknowledgement store or dashboard links on AWS yet (docs/alerts.md)
        return Notifier(
            routes,
            live_queries(settings),
            aws_outbox(settings),
            channels,
            subject_info=subject_info,
            alerts_store=live_store(settings),
            clock=clock or time.time,
        )
    from local.outbox import Outbox
    from sleepstack.dashboard import ack_key

    return Notifier(
        routes,
        live_queries(settings),
        Outbox(settings.paths.outbox_db),
        channels,
        acks=alert_acks(settings),
        subject_info=subject_info,
        dashboard_base=settings.dashboard_base,
        link_key=ack_key(settings),
        alerts_store=live_store(settings),
        clock=clock or time.time,
        crash_after_send=crash,
    )
