"""What the notifications service needs from outside itself."""
from __future__ import annotations

from typing import Protocol, Sequence


class CaseContacts(Protocol):
    def contacts(self, county: str, case_id: str) -> dict | None:
        """cases.participant_contacts: the case's participants with names and contact details;
        None when the case is not in that county. Raises Unavailable."""


class Senders(Protocol):
    """The delivery channels (adapters/channels.py). Each raises TemporaryFailure (retry later,
    perhaps after retry_after seconds) or PermanentFailure (never retry)."""

    def email(self, *, message_id: str, to: str, subject: str, body: str,
              attachments: Sequence[tuple[str, str, bytes]]) -> str: ...

    def sms(self, *, message_id: str, to: str, body: str) -> str: ...

    def letter(self, *, message_id: str, address_lines: list[str], postcode: str, pdf: bytes) -> str: ...

    def webhook(self, *, url: str, secret: str, message_id: str, body: bytes) -> str: ...

    def provider_status(self, provider_ref: str) -> str: ...
