"""Email as reaction handlers see it: a message, and a mailer that sends it once per key.

The mailer behind this port (orderdesk/ wires it) sends over SMTP, or writes .eml files
when no SMTP server is configured; either way a key already sent is not sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    """The plain-text body."""
    html: str | None = None
    """The HTML alternative, when there is one."""


class Mailer(Protocol):
    async def send(self, email: Email, *, key: str, correlation_id: str) -> None:
        """Send `email` unless one was already sent under `key` (a reaction's effect key);
        raises if it could not be sent, so that the reaction is retried."""
        ...
