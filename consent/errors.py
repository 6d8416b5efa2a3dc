"""Consent failures in domain words; `coordination.api.problems` maps them to HTTP."""


class ConsentError(Exception):
    """Base of consent failures."""


class NoConsentForm(ConsentError):
    """The family has never had a consent form recorded."""


class NotAgreedToKnow(ConsentError):
    """The family has not agreed that this agency may know of it."""

    def __init__(self, agency: str) -> None:
        super().__init__(
            f"the family's consent form does not grant agency '{agency}' the involvement "
            "cell: the family has not agreed that this agency may know of it"
        )
        self.agency = agency


class FormImmutable(ConsentError):
    """Something tried to change a stored consent form version."""
