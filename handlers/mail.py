"""Email as reaction handlers see it: a message, and a mailer that sends it once per key.

The mailer behind this port (orderdesk/ wires it) sends over SMTP, or writes .eml files
when no SMTP server is configured; either way a key already sent is not sent again.

A feature's emails are templates in a folder beside its handlers, three per email:
`<name>.subject.txt`, `<name>.txt` (the plain-text body) and, optionally, `<name>.html`;
`render` fills them in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from domain.money import canonical_amount


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


def render(templates: Path, name: str, to: str, /, **values: Any) -> Email:
    """The email `name` from the folder `templates`, filled in with `values`.

    HTML is escaped (a product named `<script>` shows as text), plain text is not; a value
    a template names but was not given is an error, never an empty gap. The subject is made
    one line, so no value can add a header. Amounts print with `{{ amount | money(currency) }}`.
    """
    environment = _environment(templates)
    subject = environment.get_template(f"{name}.subject.txt").render(values)
    text = environment.get_template(f"{name}.txt").render(values)
    html_name = f"{name}.html"
    html = (
        environment.get_template(html_name).render(values)
        if (templates / html_name).is_file()
        else None
    )
    return Email(to=to, subject=" ".join(subject.split()), text=text, html=html)


def _money(amount: Decimal | int, currency: str) -> str:
    return f"{canonical_amount(Decimal(amount))} {currency}"


@functools.cache
def _environment(templates: Path) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(templates),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["money"] = _money
    return environment
