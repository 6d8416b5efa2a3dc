"""Use cases of casework, a module a group: families (recording, finding),
the shared record, entries, involvements, the family's consent form and its
access log; what they all need is in `common` (and, for those that read or
write a form version, `form_versions`). One function per use case; each takes
the session, the vault, the actor and `now`, commits once, and raises domain
errors.

The order of checks follows the contract: the family must be visible (else
`FamilyNotFound`), then the actor must be entitled to the act
(`NotPermitted`), then values must be valid (`InvalidInput`), then the act
must fit the current state (`Conflict`).
"""
