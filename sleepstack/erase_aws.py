"""A subject's erasure on an AWS stack: the stores of :class:`sleepstack.erase.Eraser` there.

The same operation as on a local stack (the plan read before anything changes, the
journal, the steps, the scan that proves it, the tombstone), over the deployed stores:

1. ``registry``: the DynamoDB registry (:class:`registry.dynamodb.DynamoRegistry`): its
   assignments, its record, its id in the history replaced by its erasure key;
2. ``live``: OpenSearch, one ``_delete_by_query`` per kind
   (:meth:`speed_layer.store.OpenSearchLiveStore.erase_subject`);
3. ``state``: the speed layer's DynamoDB state of its devices where the state names it;
4. ``lake``: the raw and curated buckets, every version (:meth:`sleepstack.s3_erasure.S3Erasure.erase_lake`);
5. ``dead_letters``: the dead-letter bucket and Firehose's ``errors/``
   (:meth:`~sleepstack.s3_erasure.S3Erasure.erase_letters`);
6. ``notifier_outbox``: the notifier's DynamoDB outbox, its messages about the subject's
   alert episodes (:meth:`core.outbox.OutboxStore.erase_subject`);
7. ``verify``: every one of them read again (:meth:`AwsStores.scan`), every S3 version too;
8. ``tombstone``: the registry's ``erased`` entry and the access audit's.

The journal and its lock are in the operator's home (``$SLEEPSTACK_HOME/erase/``), as for a
local stack: run it again from the same home to resume. Not reached from here: the
collector's spool (on the bedside machine; run ``erase`` there), exports the users
downloaded, the Athena results bucket (expires in a day) and the backups docs/erasure.md
lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.outbox import OutboxStore
from core.registry import Window
from local.erasure import Scan, registry_hits, state_hits
from registry.store import RegistryStore
from sleepstack.erase import Journal
from sleepstack.s3_erasure import S3Erasure
from speed_layer.state_store import StateStore
from speed_layer.store import OpenSearchLiveStore

__all__ = ["AWS_DATA_STEPS", "AwsStores"]

#: the steps that remove data from an AWS stack, in order
AWS_DATA_STEPS: Final = ("live", "state", "lake", "dead_letters", "notifier_outbox")


@dataclass
class AwsStores:
    """The deployed stores: the registry, the live store, the device state, the buckets and
    the notifier's outbox."""

    registry_store: RegistryStore
    live: OpenSearchLiveStore
    states: StateStore
    s3: S3Erasure
    outbox: OutboxStore
    data_steps: tuple[str, ...] = AWS_DATA_STEPS

    def registry(self) -> RegistryStore:
        return self.registry_store

    def scan(self, subject_id: str, windows: Sequence[Window]) -> Scan:
        out = Scan()
        out.hits["live_store"] = self.live.count_subject(subject_id, windows)
        out.hits.update(self.s3.scan(subject_id, windows))
        out.hits.update(registry_hits(self.registry_store, subject_id))
        devices = sorted({d for d, _, _ in windows})
        out.hits["device_state"] = len(state_hits(self.states.get_many(devices), subject_id))
        out.hits["notifier_outbox"] = self.outbox.erase_subject(subject_id, windows, dry_run=True)
        return out

    def erase(self, step: str, journal: Journal) -> dict[str, Any]:
        subject_id, windows = journal.subject_id, journal.window_tuples()
        if step == "live":
            return {"live_documents": self.live.erase_subject(subject_id, windows)}
        if step == "state":
            states = self.states.get_many(journal.devices)
            return {"device_states": self.states.delete_many(state_hits(states, subject_id))}
        if step == "lake":
            stats = self.s3.erase_lake(subject_id, windows)
            return {
                "lake_rows": stats.rows_removed,
                "lake_objects_rewritten": stats.objects_rewritten,
                "lake_objects_deleted": stats.objects_deleted,
                "lake_versions_deleted": stats.versions_deleted,
            }
        if step == "dead_letters":
            return {"dead_letters": self.s3.erase_letters(subject_id, windows)}
        if step == "notifier_outbox":
            return {"notifier_messages": self.outbox.erase_subject(subject_id, windows)}
        raise ValueError(f"no erasure step {step!r} on AWS")
