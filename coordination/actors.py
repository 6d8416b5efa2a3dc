"""Who is asking: a staff member (through a token) or a family (through a
session opened with its receipt code and PIN)."""

from __future__ import annotations

from dataclasses import dataclass

from coordination.roles import CASEWORK_ROLES, Role


@dataclass(frozen=True)
class Actor:
    username: str | None = None
    staff_id: int | None = None
    agency_id: str | None = None
    role: Role | None = None
    minimal_data: bool = False
    family_id: str | None = None  # set only for a family's own session
    request_id: str | None = None

    @property
    def is_family(self) -> bool:
        return self.family_id is not None

    @property
    def does_casework(self) -> bool:
        return self.role in CASEWORK_ROLES

    @property
    def role_name(self) -> str | None:
        return "family" if self.is_family else (str(self.role) if self.role else None)

    @property
    def label(self) -> str:
        """How this actor is named in history: a username, or 'family'."""
        return "family" if self.is_family else str(self.username)
