"""A subject's erasure in the S3 buckets of an AWS stack (the S3 part of ``sleepstack erase``).

Same selection as the local lake (:func:`local.erasure.subject_mask`): rows with
``subject_id == S``, plus rows of S's devices during S's assignments (its windows). The
buckets are versioned, so removing the current object is not enough:

* an object holding some of the subject's rows is rewritten without them (a new current
  version), then every other version of its key is deleted (``VersionId``);
* an object holding only the subject's rows is deleted with every version and delete marker;
* dead letters: every object of the dead-letter bucket (the speed layer's letters, one JSON
  letter each) and of the raw bucket's ``errors/`` (Firehose's error records, one JSON record
  per line) is read line by line, and a letter is the subject's by the local rule
  (:func:`local.erasure.letter_is_subjects`: named anywhere, its base64 payload decoded too;
  a payload of a window's device in the window; an undecodable payload of a window's device
  written, by the version's time, in the window). An object of only such letters is deleted
  with every version; one that also holds others' letters is rewritten without them (a new
  current version) and its other versions deleted; a noncurrent version holding one is
  deleted.

Idempotent: a rerun finds nothing to rewrite. :meth:`S3Erasure.scan` is the proof: it lists
and reads every version under the prefixes and counts the subject's rows and letters left.
``sleepstack erase`` runs it on AWS (:mod:`sleepstack.erase_aws`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.registry import Window
from local.erasure import letter_is_subjects, subject_mask, token

__all__ = ["CURATED_PREFIXES", "RAW_PREFIXES", "S3Erasure", "S3Stats"]

RAW_PREFIXES: Final = ("raw/",)
#: Firehose's error output in the raw bucket (the template's ``ErrorOutputPrefix``)
FIREHOSE_ERRORS: Final = "errors/"
CURATED_PREFIXES: Final = ("epochs/", "nights/")


@dataclass
class S3Stats:
    objects_rewritten: int = 0
    objects_deleted: int = 0
    versions_deleted: int = 0
    rows_removed: int = 0
    dead_letters: int = 0


@dataclass
class S3Erasure:
    """``client``: a boto3 S3 client; the buckets (None: not deployed, skipped)."""

    client: Any
    raw_bucket: str | None
    curated_bucket: str | None
    dead_letter_bucket: str | None

    def _lakes(self) -> Iterator[tuple[str, str]]:
        for bucket, prefixes in ((self.raw_bucket, RAW_PREFIXES), (self.curated_bucket, CURATED_PREFIXES)):
            if bucket:
                for prefix in prefixes:
                    yield bucket, prefix

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def _versions(self, bucket: str, prefix: str) -> list[tuple[str, str, bool]]:
        """(key, version id, is a delete marker) of every version under ``prefix``."""
        return [(k, v, marker) for k, v, marker, _, _ in self._listing(bucket, prefix)]

    def _listing(self, bucket: str, prefix: str) -> list[tuple[str, str, bool, bool, int]]:
        """(key, version id, is a delete marker, is the current version, written ms) under ``prefix``."""
        out: list[tuple[str, str, bool, bool, int]] = []
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for items, marker in ((page.get("Versions", []), False), (page.get("DeleteMarkers", []), True)):
                out += [
                    (v["Key"], v["VersionId"], marker, bool(v["IsLatest"]), int(v["LastModified"].timestamp() * 1000))
                    for v in items
                ]
        return out

    def _purge(self, bucket: str, key: str, keep: str | None = None) -> int:
        n = 0
        for k, vid, _ in self._versions(bucket, key):
            if k == key and vid != keep:
                self.client.delete_object(Bucket=bucket, Key=key, VersionId=vid)
                n += 1
        return n

    def _read(self, bucket: str, key: str, version: str | None = None) -> bytes:
        extra = {"VersionId": version} if version else {}
        return bytes(self.client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read())

    @staticmethod
    def _hits(body: bytes, subject_id: str, windows: Sequence[Window]) -> tuple[pa.Table, pa.ChunkedArray | None]:
        table = pq.read_table(io.BytesIO(body))
        return table, subject_mask(table, subject_id, windows)

    def erase(self, subject_id: str, windows: Sequence[Window]) -> S3Stats:
        """The lake's objects (:meth:`erase_lake`), then the dead letters (:meth:`erase_letters`)."""
        stats = self.erase_lake(subject_id, windows)
        stats.dead_letters = self.erase_letters(subject_id, windows)
        return stats

    def erase_lake(self, subject_id: str, windows: Sequence[Window]) -> S3Stats:
        """Every Parquet object and version of the raw and curated prefixes without the subject's rows."""
        stats = S3Stats()
        for bucket, prefix in self._lakes():
            for key in self._keys(bucket, prefix):
                if not key.endswith(".parquet"):
                    continue
                table, mask = self._hits(self._read(bucket, key), subject_id, windows)
                held = 0 if mask is None else int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
                if held == 0:
                    # the current version is clean; older versions may still hold the subject
                    stats.versions_deleted += self._purge_dirty(bucket, key, subject_id, windows)
                    continue
                stats.rows_removed += held
                if held == table.num_rows:
                    stats.versions_deleted += self._purge(bucket, key)
                    stats.objects_deleted += 1
                    continue
                if mask is None:  # pragma: no cover - held > 0 implies a mask
                    continue
                buf = io.BytesIO()
                pq.write_table(table.filter(pc.invert(mask)), buf)
                new = self.client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())["VersionId"]
                stats.versions_deleted += self._purge(bucket, key, keep=new)
                stats.objects_rewritten += 1
        return stats

    def _purge_dirty(self, bucket: str, key: str, subject_id: str, windows: Sequence[Window]) -> int:
        """Delete the noncurrent versions of ``key`` that still hold the subject's rows."""
        n = 0
        for k, vid, marker in self._versions(bucket, key):
            if k != key or marker:
                continue
            _, mask = self._hits(self._read(bucket, key, vid), subject_id, windows)
            if mask is not None and pc.any(mask).as_py():
                self.client.delete_object(Bucket=bucket, Key=key, VersionId=vid)
                n += 1
        return n

    def scan(self, subject_id: str, windows: Sequence[Window]) -> dict[str, int]:
        """The proof: the subject's rows (and dead letters) in every version of every object."""
        hits = {"s3_lake_rows": 0, "s3_dead_letters": 0}
        for bucket, prefix in self._lakes():
            for key, vid, marker in self._versions(bucket, prefix):
                if marker or not key.endswith(".parquet"):
                    continue
                _, mask = self._hits(self._read(bucket, key, vid), subject_id, windows)
                if mask is not None:
                    hits["s3_lake_rows"] += int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
        for bucket, prefix in self._letter_places():
            for key, vid, marker, _, written in self._listing(bucket, prefix):
                if not marker:
                    body = self._read(bucket, key, vid)
                    hits["s3_dead_letters"] += sum(self._mine(key, body, written, subject_id, windows))
        return hits

    # ------------------------------------------------------------------ dead letters
    def _letter_places(self) -> Iterator[tuple[str, str]]:
        if self.dead_letter_bucket:
            yield self.dead_letter_bucket, ""
        if self.raw_bucket:
            yield self.raw_bucket, FIREHOSE_ERRORS

    @staticmethod
    def _mine(key: str, body: bytes, written_ms: int, subject_id: str, windows: Sequence[Window]) -> list[bool]:
        """For each letter of the object (one per line; a pretty-printed letter is one), whether
        it is the subject's (all of them when the object's key names the subject)."""
        lines = [line for line in body.splitlines() if line.strip()] or [body]
        one_per_line = all(line.lstrip().startswith(b"{") and line.rstrip().endswith(b"}") for line in lines)
        if len(lines) > 1 and not one_per_line:
            lines = [body]  # one letter over several lines
        if token(subject_id).search(key):
            return [True] * len(lines)
        return [letter_is_subjects(line, written_ms, subject_id, windows) for line in lines]

    def erase_letters(self, subject_id: str, windows: Sequence[Window]) -> int:
        """Delete or rewrite the subject's letters (module docstring); how many letters went."""
        gone = 0
        for bucket, prefix in self._letter_places():
            for key, vid, marker, latest, written in self._listing(bucket, prefix):
                if marker:
                    continue
                body = self._read(bucket, key, vid)
                mine = self._mine(key, body, written, subject_id, windows)
                if not any(mine):
                    continue
                gone += sum(mine)
                lines = [line for line in body.splitlines() if line.strip()]
                if latest and not all(mine) and len(lines) == len(mine):
                    kept = b"".join(line + b"\n" for line, m in zip(lines, mine, strict=True) if not m)
                    self.client.put_object(Bucket=bucket, Key=key, Body=kept)
                self.client.delete_object(Bucket=bucket, Key=key, VersionId=vid)
        return gone
