"""Every path under a local stack's home (``$SLEEPSTACK_HOME``), in one place.

The layout (all owner-only; nothing here is meant to be edited by hand)::

    <home>/
      lake/                      raw and curated tables (Parquet), the lake's dead letters
      stream/                    kinesalite's LevelDB (the stream's records)
      stream-port.json           the stream's port, kept across restarts
      stream-server.json         the running kinesalite server: pid and port
      serving/live.sqlite        the embedded live store (vitals and alert documents)
      serving/state.sqlite       the speed layer's per-device epoch state
      serving/speed-ledger.sqlite  record ids the speed layer applied (reconcile)
      registry.sqlite            subjects, devices and who wears which device when
      reassign/<id>.json         the journal of each correction of an assignment (``sleepstack reassign``)
      erase/<key>.json           the journal of each subject's erasure (``sleepstack erase``; no identifiers once done)
      exports.jsonl              the exports made (subject, format, files): erasing a subject deletes its exports
      checkpoints/<consumer>.json  shard checkpoints of the speed layer and the delivery
      dead-letters/              what the speed layer and the CLI quarantined
      spool/collector.sqlite     the collector's durable spool
      run/                       the control plane (:mod:`local.control`): heartbeats,
                                 requests, the supervisor's and the scheduler's state
      logs/<service>.log         each service's structured log
      dashboard/token            the dashboard's break-glass token
      dashboard/accounts.sqlite  the dashboard's users, sessions and API tokens (hashed)
      dashboard/alert-acks.sqlite  who acknowledged which alert, and the one-click links used
      dashboard/ack-key          the key signing the one-click acknowledgement links
      audit/access.jsonl(.head)  the access audit: who saw which subject's data (hash-chained)
      opensearch/                the local OpenSearch node (``--live-store opensearch``)
      sim/, truth/               simulated recordings and the demo's ground truth
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Home"]


@dataclass(frozen=True)
class Home:
    """The paths of one home; nothing is created until a writer needs it."""

    root: Path

    # --------------------------------------------------------------- data
    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def stream_data(self) -> Path:
        return self.root / "stream"

    @property
    def stream_port(self) -> Path:
        return self.root / "stream-port.json"

    @property
    def stream_server(self) -> Path:
        return self.root / "stream-server.json"

    @property
    def live_db(self) -> Path:
        return self.root / "serving" / "live.sqlite"

    @property
    def state_db(self) -> Path:
        return self.root / "serving" / "state.sqlite"

    @property
    def registry_db(self) -> Path:
        return self.root / "registry.sqlite"

    def reassign_journal(self, op: str) -> Path:
        """The journal of one correction of an assignment (:mod:`sleepstack.reassign`)."""
        return self.root / "reassign" / f"{op}.json"

    def erase_journal(self, key: str) -> Path:
        """The journal of one subject's erasure (:mod:`sleepstack.erase`), named by its erasure key."""
        return self.root / "erase" / f"{key}.json"

    @property
    def exports_index(self) -> Path:
        """One JSON line per export made by the CLI (:func:`local.erasure.record_export`)."""
        return self.root / "exports.jsonl"

    @property
    def ledger_db(self) -> Path:
        return self.root / "serving" / "speed-ledger.sqlite"

    def checkpoints(self, consumer: str) -> Path:
        """Shard checkpoints of one stream consumer (``speed-layer``, ``delivery``)."""
        return self.root / "checkpoints" / f"{consumer}.json"

    @property
    def dead_letters(self) -> Path:
        return self.root / "dead-letters"

    @property
    def spool(self) -> Path:
        return self.root / "spool" / "collector.sqlite"

    @property
    def opensearch(self) -> Path:
        return self.root / "opensearch"

    @property
    def dashboard_token(self) -> Path:
        return self.root / "dashboard" / "token"

    @property
    def accounts_db(self) -> Path:
        """The dashboard's users, sessions and API tokens (:mod:`local.accounts`)."""
        return self.root / "dashboard" / "accounts.sqlite"

    @property
    def alert_acks_db(self) -> Path:
        """Alert acknowledgements and the used one-click links (:mod:`local.alert_acks`)."""
        return self.root / "dashboard" / "alert-acks.sqlite"

    @property
    def outbox_db(self) -> Path:
        """The notifier's outbox of alert messages (:mod:`local.outbox`)."""
        return self.root / "notify" / "outbox.sqlite"

    @property
    def ack_key(self) -> Path:
        """The HMAC key of the one-click acknowledgement links (:mod:`access.ack_links`)."""
        return self.root / "dashboard" / "ack-key"

    @property
    def audit_log(self) -> Path:
        """The hash-chained access audit (:mod:`access.audit`); its head beside it."""
        return self.root / "audit" / "access.jsonl"

    @property
    def sim(self) -> Path:
        return self.root / "sim"

    @property
    def truth(self) -> Path:
        return self.root / "truth"

    # --------------------------------------------------------------- control plane
    @property
    def run(self) -> Path:
        return self.root / "run"

    def heartbeat(self, service: str) -> Path:
        return self.run / f"{service}.json"

    @property
    def supervisor_state(self) -> Path:
        return self.run / "supervisor.json"

    @property
    def scheduler_state(self) -> Path:
        return self.run / "scheduler-state.json"

    @property
    def flush_request(self) -> Path:
        return self.run / "flush-request.json"

    @property
    def stage_request(self) -> Path:
        return self.run / "stage-request.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"
