"""Webhooks' mutations: registerWebhook, whose answer is the one place the signing secret
is ever shown, and disableWebhook."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from domain.errors import DomainError
from domain.webhooks import MAX_REASON, MAX_URL
from handlers.pipeline import ReadModelLagging
from handlers.webhooks import (
    CheckWebhookUrl,
    DisableWebhook,
    GetWebhooks,
    RegisteredWebhook,
    RegisterWebhook,
    WebhookView,
)
from handlers.written import Written
from schema.context import Info
from schema.errors import Error, NotAuthorizedError, NotFoundError, ValidationError
from schema.ids import local_id
from schema.messages import ask, lagging, run_command
from schema.results import refusal
from schema.webhooks.types import WEBHOOK, Webhook, WebhookEvent


@strawberry.input(description="An endpoint to send events to.")
class RegisterWebhookInput:
    url: str = strawberry.field(
        description=f"An https:// (or http://) URL of at most {MAX_URL} characters, without a "
        "user name or password, whose host has public addresses only (unless the service "
        "allows private ones)."
    )
    events: list[WebhookEvent] = strawberry.field(
        description="The events to send it: at least one, each once."
    )

    def command(self) -> RegisterWebhook:
        return RegisterWebhook(url=self.url, events=tuple(e.value for e in self.events))


@strawberry.input(description="A webhook to send nothing more.")
class DisableWebhookInput:
    id: strawberry.ID = strawberry.field(description="The webhook's global id (Webhook.id).")
    reason: str | None = strawberry.field(
        default=None,
        description=f'Why, at most {MAX_REASON} characters; null: "disabled by staff". '
        "Disabling a disabled webhook changes nothing and keeps its first reason.",
    )

    def command(self) -> DisableWebhook:
        return DisableWebhook(local_id(self.id, WEBHOOK), reason=self.reason)


@strawberry.type(description="The webhook is registered and active.")
class RegisterWebhookSuccess:
    webhook: Webhook = strawberry.field(description="The new webhook.")
    secret: str = strawberry.field(
        description="The secret its requests are signed with (Orderdesk-Signature: "
        "HMAC-SHA256 of `<t>.<body>`). Shown in this answer only and never again: keep it "
        "now; a lost secret means registering the endpoint anew."
    )


@strawberry.type(description="The webhook is disabled.")
class DisableWebhookSuccess:
    webhook: Webhook = strawberry.field(description="The webhook, no longer active.")


RegisterWebhookResult = Annotated[
    RegisterWebhookSuccess | ValidationError | NotAuthorizedError,
    strawberry.union(
        "RegisterWebhookResult",
        description="The new webhook with its secret, or why it was refused: ValidationError "
        "(the URL, an address webhooks may not reach, the events) or NotAuthorizedError "
        "(staff only).",
    ),
]
DisableWebhookResult = Annotated[
    DisableWebhookSuccess | ValidationError | NotFoundError | NotAuthorizedError,
    strawberry.union(
        "DisableWebhookResult",
        description="The disabled webhook, or why it was refused: ValidationError (the "
        "reason), NotFoundError or NotAuthorizedError (staff only).",
    ),
]


def registered_view(written: RegisteredWebhook) -> WebhookView:
    return WebhookView(
        id=written.entity_id,
        url=written.url,
        events=written.events,
        active=True,
        disabled_reason=None,
        created_at=written.created_at or datetime.now(UTC),
        disabled_at=None,
        version=written.version,
    )


async def _webhook_written(info: Info, written: Written) -> Webhook:
    """The webhook a command wrote, as its read model shows it now."""
    found = await ask(info, GetWebhooks((written.entity_id,)))
    view = found.get(written.entity_id)
    if view is None or view.version < written.version:
        raise lagging(written)
    return Webhook.from_view(view)


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        graphql_type=RegisterWebhookResult,
        description="Register an endpoint to be sent events as they happen; the answer "
        "carries its signing secret, once." + " Staff only: others get a NotAuthorizedError.",
    )
    async def register_webhook(
        self,
        info: Info,
        input: Annotated[
            RegisterWebhookInput, strawberry.argument(description="The endpoint and its events.")
        ],
    ) -> RegisterWebhookSuccess | Error:
        # Where the host resolves to is asked first, outside the registration's transaction.
        try:
            await info.context.mediator.send(CheckWebhookUrl(input.url), info.context.ctx.copy())
        except DomainError as error:
            return refusal(error, RegisterWebhookResult, info.field_name)

        async def success(written: Written) -> RegisterWebhookSuccess:
            assert isinstance(written, RegisteredWebhook)
            try:
                webhook = await _webhook_written(info, written)
            except ReadModelLagging:
                # The secret is in this answer only: it must not be lost to a lagging read
                # model, so the webhook is shown as it was registered.
                webhook = Webhook.from_view(registered_view(written))
            return RegisterWebhookSuccess(webhook=webhook, secret=written.secret)

        return await run_command(info, input.command, success, RegisterWebhookResult)

    @strawberry.mutation(
        graphql_type=DisableWebhookResult,
        description="Stop sending a webhook anything; its waiting deliveries are cancelled."
        + " Staff only: others get a NotAuthorizedError.",
    )
    async def disable_webhook(
        self,
        info: Info,
        input: Annotated[DisableWebhookInput, strawberry.argument(description="The webhook.")],
    ) -> DisableWebhookSuccess | Error:
        async def success(written: Written) -> DisableWebhookSuccess:
            return DisableWebhookSuccess(webhook=await _webhook_written(info, written))

        return await run_command(info, input.command, success, DisableWebhookResult)
