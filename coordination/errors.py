"""Failures in domain words. `coordination.api.problems` maps each to HTTP
and `coordination.cli` to a one-line message; nothing else knows status codes."""

from __future__ import annotations


class OneStoryError(Exception):
    """Base of every expected failure."""


class NotAuthenticated(OneStoryError):
    """No credential, or an unknown, expired or revoked one. One message for all."""

    def __init__(self) -> None:
        super().__init__("a valid bearer token is required")


class RoleNotPermitted(OneStoryError):
    """The caller's role may not use this route at all."""


class FamilyNotFound(OneStoryError):
    """The family does not exist or is not visible to the caller: one answer for both.

    `reason` is for the audit log only (absent, not_visible, expired) and is
    never shown to the caller.
    """

    def __init__(self, reason: str = "absent", family_id: str | None = None) -> None:
        super().__init__("no such family")
        self.reason = reason
        self.family_id = family_id


class NotPermitted(OneStoryError):
    """Visible, but this act needs something the caller lacks."""


class InvalidInput(OneStoryError):
    """Values are invalid; `errors` names each one."""

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail or "the request has invalid values")
        self.errors = errors


class MinimalDataViolation(InvalidInput):
    """A minimal-data agency sent something beyond what it may record."""


class Conflict(OneStoryError):
    """The act conflicts with the current state; the message says how.

    `reason` is a code for the audit log (`not_agreed`: the family has not
    agreed to what the act needs; else `conflict`)."""

    def __init__(self, message: str, reason: str = "conflict") -> None:
        super().__init__(message)
        self.reason = reason


class Throttled(OneStoryError):
    """Too many failed attempts; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


class NotFound(OneStoryError):
    """A named thing (user, agency) does not exist; used by the CLI."""
