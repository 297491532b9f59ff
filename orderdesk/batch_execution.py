"""A batch's operations run one after another, in order, each counted on its own: against
the rate limits (the request itself was counted once), with its own deadline, loaders and,
in the view's create_response, its own cap on the answer's size. Sequential, not gathered:
a mutation then a query reads the mutation's write, and mutations apply in the order they
were sent.

A batch is one request, which the client and any proxy time as one: it may take
BATCH_DEADLINE_FACTOR times what one operation may, so an operation stopped at its own
deadline leaves the rest of the batch as long again, and no longer. What has not started
when the batch's deadline passes is answered EXECUTION_TIMEOUT in its place, unapplied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from handlers.access import identity_of
from handlers.rate_limit import RateLimited
from orderdesk.bootstrap import Services
from orderdesk.operation_choice import SUBSCRIPTIONS_ELSEWHERE
from orderdesk.operation_limits import timed_out
from orderdesk.operation_requests import RequestRefused
from orderdesk.persisted_documents import Chosen
from orderdesk.rate_limits import client_address
from schema.context import RequestContext

if TYPE_CHECKING:
    from orderdesk.graphql_view import GraphQLView

BATCH_DEADLINE_FACTOR = 2


async def execute_batch(
    view: GraphQLView,
    request: Request,
    request_adapter: Any,
    operations: list[GraphQLRequestData],
    context: RequestContext,
    sub_response: Response,
) -> list[ExecutionResult]:
    request.state.batch = True
    await _spend(request, context, len(operations))
    chosen = [await view.choose(request, operation, context) for operation in operations]
    for index, each in enumerate(chosen):
        if isinstance(each, Chosen) and view.is_subscription(each.operation):
            raise RequestRefused(
                f"operation {index} of the batch is a subscription: {SUBSCRIPTIONS_ELSEWHERE}",
                code="BAD_REQUEST",
                batchIndex=index,
            )
    results: list[ExecutionResult] = []

    async def run_each() -> None:
        for each in chosen:
            results.append(
                await _run_one(view, request, request_adapter, each, context, sub_response)
            )

    try:
        await view.batch_deadlines.run(run_each())
    except TimeoutError:
        seconds = view.batch_deadlines.seconds
        if len(results) < len(chosen):
            # The operation running when the deadline passed was stopped mid-way.
            results.append(timed_out(seconds))
        results += [timed_out(seconds, NOT_STARTED) for _ in chosen[len(results) :]]
    return results


async def _run_one(
    view: GraphQLView,
    request: Request,
    request_adapter: Any,
    each: Chosen | ExecutionResult,
    context: RequestContext,
    sub_response: Response,
) -> ExecutionResult:
    if isinstance(each, ExecutionResult):
        return each
    refused = view.refusal_of_unnamed(each.operation)
    if refused is not None:
        return refused
    context.start_operation()
    try:
        result = await view.deadlines.run(
            view.execute_single(
                request, request_adapter, sub_response, context, None, each.operation
            )
        )
    except TimeoutError:
        result = timed_out(view.execution_timeout)
    except HTTPException as error:
        # An operation name the document does not have, say: that operation's error.
        reason = view.reason_of(error)
        result = ExecutionResult(
            data=None, errors=[GraphQLError(reason, extensions={"code": "BAD_REQUEST"})]
        )
    await view.register(request, each, result)
    return result


NOT_STARTED = (
    "the batch did not finish within {seconds:g} s and this operation was not started; "
    "nothing of it was applied: send it again"
)


async def _spend(request: Request, context: RequestContext, size: int) -> None:
    services: Services = request.app.state.services
    limits = services.rate_limits
    if limits is None or size <= 1:
        return
    extra = size - 1  # the request itself was counted by RateLimitMiddleware and get_context
    address = client_address(request.scope)
    if address is not None and (wait := await limits.admit_address(address, cost=extra)):
        raise RateLimited(wait)
    identity = identity_of(context.ctx)
    if identity is not None and (wait := await limits.admit_identity(identity.subject, cost=extra)):
        raise RateLimited(wait)
