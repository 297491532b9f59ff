"""Webhooks in GraphQL, staff only, a module per role: the types (types.py), the `webhooks`
and `webhookDeliveries` queries (queries.py), and registerWebhook and disableWebhook
(mutations.py). The signing secret appears in one place, RegisterWebhookSuccess.secret."""

from schema.webhooks.mutations import (
    DisableWebhookResult,
    RegisterWebhookResult,
    WebhookMutations,
)
from schema.webhooks.queries import WebhookQueries
from schema.webhooks.types import Webhook, WebhookDelivery, WebhookEvent

__all__ = [
    "DisableWebhookResult",
    "RegisterWebhookResult",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookMutations",
    "WebhookQueries",
]
