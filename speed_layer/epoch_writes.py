"""State writes at epoch boundaries: a container-local cache under a per-shard lease (ADR 0007).

A strap's open epoch gains a row every second; writing its state after every invocation
costs one DynamoDB write per device per second. Here a device's state is written only
when something durable changes — its epoch closes, a bed frame or a device status is
applied, an alert or technical run opens or closes: anything of the state but the open
epoch's rows (:func:`durable`) — or when it has been dirty longer than ``max_dirty_ms``
(a strap that fell silent mid-epoch). The rows in between live in the container's cache.

The cache is valid only while the container holds its shard's lease (the KCL pattern:
one item per shard, an owner and a counter, renewed by one conditional write per
invocation) and the batch starts after what the cache has folded. Otherwise the
container takes the lease over and rebuilds exactly: each device's stored state carries
the sequence number its records reach (:class:`~speed_layer.state_store.Persisted`), the
lease carries a horizon at or before every such position of a device whose cache was
ahead of its stored state, and the shard's records from the horizon up to the batch are
read again from the stream (immutable for its retention) and folded through the same
:func:`speed_layer.processing.apply_records`, each device's only past its own position.
Their documents are discarded: they were indexed when those records were first applied.

Order within an invocation (the handler's): :meth:`EpochWriter.begin` (the lease write,
and a rebuild if needed) -> fold -> index the documents -> write :meth:`EpochWriter.plan`'s
states -> :meth:`EpochWriter.commit`. The cache changes only at ``commit``: an invocation
that dies anywhere before leaves it at the state before the batch, which is where Lambda's
retry (or its bisected halves) starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from core.contract import Record
from core.live.alerts import AlertRules
from speed_layer.processing import apply_records
from speed_layer.state_store import Lease, Persisted, StateStore

__all__ = ["EpochWriteStats", "EpochWriter", "Replay", "durable"]

#: A dirty device (cache ahead of its stored state) is written after this long, so a lease's
#: horizon, and with it a takeover's replay, stays within about two epochs of the stream.
MAX_DIRTY_MS: Final = 60_000

#: ``replay(source, shard, after_seq, before_seq)``: the valid records of the stream
#: ``source`` (its ARN) on ``shard`` with ``after_seq < sequence number < before_seq``, in
#: order, as ``(sequence number, record)``.
Replay = Callable[[str, str, int, int], Iterable[tuple[int, Record]]]


def durable(state: Mapping[str, Any]) -> dict[str, Any]:
    """What of a device's state is written when it changes: all but the open epoch's rows."""
    return {k: v for k, v in state.items() if k != "open"}


@dataclass
class _Entry:
    state: dict[str, Any]
    stored: Persisted | None
    #: arrival time (ms) of the batch that made the cache ahead of the stored state; None: not ahead
    dirty_since_ms: int | None = None


@dataclass
class EpochWriteStats:
    lease_writes: int = 0
    takeovers: int = 0
    #: records folded again from the stream on takeovers
    replayed: int = 0
    state_reads: int = 0
    state_writes: int = 0


@dataclass
class _Shard:
    """The cache of one shard's devices and the lease it is valid under."""

    lease: Lease | None = None
    #: the cache holds every applied record of the shard with a sequence number below this
    below: int | None = None
    #: the horizon the cache was rebuilt from: where a device stored without a position replays from
    floor: int | None = None
    devices: dict[str, _Entry] = field(default_factory=dict)

    def horizon(self) -> int | None:
        """Where a rebuild of this cache must replay from (exclusive)."""
        assert self.below is not None  # noqa: S101 - only asked of a valid cache
        floor = self.below - 1 if self.floor is None else self.floor
        ahead = [
            e.stored.after_seq if e.stored is not None and e.stored.after_seq is not None else floor
            for e in self.devices.values()
            if e.dirty_since_ms is not None
        ]
        return min([*ahead, self.below - 1])


@dataclass
class EpochWriter:
    """One container's caches of its shards' device states, and the rules for writing them.

    ``replay(source, shard, after_seq, before_seq)``: the stream's records (``source``: the
    event source ARN the batch came from), as :class:`speed_layer.replay.KinesisReplay` reads them.
    """

    states: StateStore
    replay: Replay
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    max_dirty_ms: int = MAX_DIRTY_MS
    stats: EpochWriteStats = field(default_factory=EpochWriteStats)
    _shards: dict[str, _Shard] = field(default_factory=dict)

    def begin(
        self,
        source: str,
        shard: str,
        first_seq: int,
        devices: Iterable[str],
        rules: AlertRules,
        rules_for: Callable[[str], AlertRules] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The states of ``devices`` before the batch that starts at ``first_seq`` on ``shard``
        (``rules``, ``rules_for``: the handler's, for a rebuild's fold)."""
        devices = set(devices)
        cache = self._shards.get(shard)
        lease = None
        if cache is not None and cache.lease is not None and cache.below is not None and first_seq >= cache.below:
            self.stats.lease_writes += 1
            lease = self.states.renew_lease(shard, self.owner, cache.lease.counter, cache.horizon())
        if cache is None or lease is None:
            cache = self._take_over(source, shard, first_seq, devices, rules, rules_for)
        else:
            cache.lease = lease
            self._load(cache, devices - cache.devices.keys())
        return {d: cache.devices[d].state for d in devices if d in cache.devices}

    def plan(
        self, shard: str, new_states: Mapping[str, dict[str, Any]], last_seq: int, arrival_ms: int
    ) -> dict[str, Persisted]:
        """The states to write after a batch whose applied records end at ``last_seq``."""
        cache = self._shards[shard]
        out: dict[str, Persisted] = {}
        for device, state in new_states.items():
            entry = cache.devices.get(device)
            stored = entry.stored if entry else None
            since = entry.dirty_since_ms if entry else None
            stale = since is not None and arrival_ms - since >= self.max_dirty_ms
            if (
                stored is None  # a device's first state: from now on it has a position
                or stored.after_seq is None
                or durable(state) != durable(stored.state)
                or (stale and state != stored.state)
            ):
                out[device] = Persisted(state, last_seq)
        for device, entry in cache.devices.items():
            if device in new_states or entry.dirty_since_ms is None or entry.stored is None:
                continue
            if arrival_ms - entry.dirty_since_ms >= self.max_dirty_ms:  # silent since: its rows go to the store
                out[device] = Persisted(entry.state, last_seq)
        return out

    def commit(
        self,
        shard: str,
        new_states: Mapping[str, dict[str, Any]],
        written: Mapping[str, Persisted],
        last_seq: int,
        arrival_ms: int,
    ) -> None:
        """The batch is applied and ``written`` stored: the cache moves past ``last_seq``."""
        cache = self._shards[shard]
        self.stats.state_writes += len(written)
        for device, state in new_states.items():
            cache.devices.setdefault(device, _Entry(state, None)).state = state
        for device, stored in written.items():
            cache.devices[device].stored = stored
        for entry in cache.devices.values():
            ahead = entry.stored is None or entry.state != entry.stored.state
            entry.dirty_since_ms = (entry.dirty_since_ms or arrival_ms) if ahead else None
        cache.below = last_seq + 1

    def drop(self, shard: str) -> None:
        """Forget a shard's cache (its lease went to another container)."""
        self._shards.pop(shard, None)

    def _take_over(
        self,
        source: str,
        shard: str,
        first_seq: int,
        devices: set[str],
        rules: AlertRules,
        rules_for: Callable[[str], AlertRules] | None,
    ) -> _Shard:
        self._shards.pop(shard, None)  # until the rebuild is complete, there is no valid cache
        self.stats.lease_writes += 1
        self.stats.takeovers += 1
        # a shard without a lease (or its horizon) has no cache ahead of the store before this
        # batch: a later takeover replays from here at the earliest
        lease, old = self.states.take_lease(shard, self.owner, first_seq - 1)
        horizon = old.horizon if old is not None else None
        replayed = list(self.replay(source, shard, horizon, first_seq)) if horizon is not None else []
        self.stats.replayed += len(replayed)
        ids = devices | {rec.device_id for _, rec in replayed}
        stored = self.states.get_positioned(ids)
        self.stats.state_reads += len(ids)
        # every device a committed batch applied has a stored state (its first state is written):
        # one without is erased since, and its records are not folded back into a state
        past = [
            rec
            for seq, rec in replayed
            if (p := stored.get(rec.device_id)) is not None and (p.after_seq is None or seq > p.after_seq)
        ]
        before = {d: p.state for d, p in stored.items()}
        folded = apply_records(past, before, rules, rules_for).states if past else {}
        cache = _Shard(lease, first_seq, horizon)
        for device in ids:
            p = stored.get(device)
            state = folded.get(device, p.state if p is not None else None)
            if state is not None:
                ahead = p is None or state != p.state
                cache.devices[device] = _Entry(state, p, 0 if ahead else None)  # ahead: written at the next chance
        self._shards[shard] = cache
        return cache

    def _load(self, cache: _Shard, missing: set[str]) -> None:
        """Devices the cache has not seen since it took the shard: their stored state is current."""
        if not missing:
            return
        stored = self.states.get_positioned(missing)
        self.stats.state_reads += len(missing)
        for device, p in stored.items():
            cache.devices[device] = _Entry(p.state, p)
