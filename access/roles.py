"""Roles, what each may do, and the principal a request acts as.

Four roles (issue 27), each scoped to groups of subjects (a study or a ward):

| role | may |
|---|---|
| ``admin`` | everything: users (CLI), the registry, the audit, and every view |
| ``clinician`` | live views, nights, reports, compliance, the registry (read), exports, acknowledging alerts |
| ``researcher`` | staged nights, reports and exports (pseudonymous ids only); no live views |
| ``viewer`` | the live views, read-only |

A principal sees a subject when they share a group; the group ``*`` is every subject
(admins, and the installation's break-glass token). A subject the registry does not
know (nights staged before it was registered) is in no group: only ``*`` sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from core.errors import InputError

__all__ = ["ALL_GROUPS", "GRANTS", "AccessError", "Permission", "Principal", "Role", "check_group", "check_name"]

ALL_GROUPS: Final = "*"
_NAME: Final = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
_GROUP: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63}|\*)$")


class AccessError(InputError):
    """An account, role or group is refused; ``what`` names the field."""


class Role(StrEnum):
    ADMIN = "admin"
    CLINICIAN = "clinician"
    RESEARCHER = "researcher"
    VIEWER = "viewer"


class Permission(StrEnum):
    """What a route needs (:data:`serving.web.access.POLICY` names one per route)."""

    SIGNED_IN = "signed_in"  # any account: the page shell, who am I, sign out
    LIVE = "live"  # live vitals, samples, alerts, the cohort
    NIGHTS = "nights"  # staged nights, hypnograms, reports
    COMPLIANCE = "compliance"  # the coordinator's grid of nights and devices
    REGISTRY_READ = "registry_read"
    REGISTRY_EDIT = "registry_edit"
    AUDIT = "audit"  # who looked at which patient
    EXPORT = "export"  # a subject's data as files (Parquet, CSV, FHIR, EDF+)
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alert (stops its escalation)


GRANTS: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: frozenset(Permission),
    Role.CLINICIAN: frozenset(
        {
            Permission.SIGNED_IN,
            Permission.LIVE,
            Permission.NIGHTS,
            Permission.COMPLIANCE,
            Permission.REGISTRY_READ,
            Permission.EXPORT,
            Permission.ACKNOWLEDGE,
        }
    ),
    Role.RESEARCHER: frozenset({Permission.SIGNED_IN, Permission.NIGHTS, Permission.EXPORT}),
    Role.VIEWER: frozenset({Permission.SIGNED_IN, Permission.LIVE}),
}


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccessError("name", f"{name!r} is not a user name (2-64 of lower-case letters, digits, ._-)")
    return name


def check_group(group: str) -> str:
    if not _GROUP.match(group):
        raise AccessError("group", f"{group!r} is not a group (letters, digits, ._-; or * for every subject)")
    return group


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user (``via`` session or token) or the break-glass token."""

    name: str
    role: Role
    groups: frozenset[str] = field(default_factory=frozenset)
    via: str = "session"  # session | token | break-glass

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    @property
    def sees_all(self) -> bool:
        return ALL_GROUPS in self.groups

    def sees(self, subject_groups: Iterable[str]) -> bool:
        """Whether a subject in ``subject_groups`` is within this principal's scope."""
        return self.sees_all or not self.groups.isdisjoint(subject_groups)
