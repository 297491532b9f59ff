"""An in-process mediator for CQRS: commands and queries to one handler each, notifications
to many, streams to one, all through composable behaviors. Standard library only."""

from mediator.context import HANDLER_NAME, Context, ContextKey
from mediator.errors import (
    ConfigurationError,
    DeadlineExceeded,
    MediatorError,
    NoHandlerError,
    PublishError,
)
from mediator.mediator import Mediator
from mediator.messages import Command, Notification, Query, Request, StreamRequest
from mediator.publishers import Concurrent, Publisher, Sequential
from mediator.registry import Registry
from mediator.routes import Route
from mediator.types import Next, NextStream

__all__ = [
    "HANDLER_NAME",
    "Command",
    "Concurrent",
    "ConfigurationError",
    "Context",
    "ContextKey",
    "DeadlineExceeded",
    "Mediator",
    "MediatorError",
    "Next",
    "NextStream",
    "NoHandlerError",
    "Notification",
    "PublishError",
    "Publisher",
    "Query",
    "Registry",
    "Request",
    "Route",
    "Sequential",
    "StreamRequest",
]
