"""Closed vocabularies shared by the packages."""

from enum import StrEnum


class Role(StrEnum):
    PRACTITIONER = "practitioner"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Reports only (coordination.reports); never family content.
    EVALUATOR = "evaluator"


class InvolvementStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


# Staff roles that may read family content at all.
CASEWORK_ROLES = frozenset({Role.PRACTITIONER, Role.COORDINATOR})
