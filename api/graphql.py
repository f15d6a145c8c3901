"""The GraphQL view: one request = one database transaction, committed only on success."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
)
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UNSET
from strawberry.utils.aio import aclosing

from api.realtime.connection import ConnectionContext, ConnectionRefused
from api.realtime.fanout import CURRENT_OPERATION, SharedOperation
from api.security import csrf_rejected, csrf_safe, error_response, graphiql_csp
from schema.context import AppServices, RequestContext
from schema.errors import classify

log = structlog.get_logger(__name__)
EXAMPLES = Path(__file__).parent / "graphiql_examples.graphql"


class TransportWS(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """graphql-transport-ws with our close codes for a refused connection_init, and the
    connection's bookkeeping released when it ends."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if isinstance(self.context, ConnectionContext):
            self.context.complete = self.complete_held
        try:
            await super().handle_connection_init(message)
        except ConnectionRefused as refusal:
            await self.websocket.close(code=refusal.code, reason=refusal.reason)
        if self.connection_init_received:
            # Cancelled by now: holding it for the connection's life would keep its
            # CancelledError and the frames that traceback names (~1 KB per connection).
            self.connection_init_timeout_task = None

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        """Strawberry's, except that a subscription which joined a shared feed
        (api/realtime/fanout.py) is not completed when its own stream returns: its task
        ends there, and the connection writes the feed's results under the operation's id
        until the client completes it (`cleanup_operation`) or the feed is over."""
        # Reset when the task ends: a finished task keeps its context, and with it this.
        token = CURRENT_OPERATION.set(
            SharedOperation(
                operation.id,
                operation.query,
                operation.variables,
                operation.operation_name,
                self.schema,
            )
        )
        context = self.context
        try:
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            held = context.held(operation.id) if isinstance(context, ConnectionContext) else None
            if held is not None:  # a member of a shared feed now: nothing more to run
                if held.feed is not None:  # keep one copy of the document for all members
                    operation.query = held.feed.operation.query
                operation.variables = None
                return
            await operation.send_operation_message(
                CompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return
        except Exception as error:
            if isinstance(context, ConnectionContext):
                context.let_go(operation.id)  # it may have joined a feed before failing
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        finally:
            CURRENT_OPERATION.reset(token)

    async def cleanup_operation(self, operation_id: str) -> None:
        """The client's `complete`: a shared feed's member leaves it."""
        if isinstance(self.context, ConnectionContext):
            self.context.let_go(operation_id)
        await super().cleanup_operation(operation_id)

    async def complete_held(self, operation_id: str) -> None:
        """A held member's feed is over: `complete`, as a stream's end would send."""
        operation = self.operations.get(operation_id)
        if operation is not None:
            await operation.send_operation_message(
                CompleteMessage(id=operation_id, type="complete")
            )

    async def handle_task_exception(self, error: Exception) -> None:
        """An operation still sending after the server closed the socket (a slow consumer,
        an expired session) is no error worth a traceback; anything else is."""
        closing = isinstance(self.context, ConnectionContext) and self.context.closing
        if closing and isinstance(error, RuntimeError):
            log.debug("websocket_send_after_close", error=str(error))
            return
        await super().handle_task_exception(error)

    async def shutdown(self) -> None:
        try:
            if isinstance(self.context, ConnectionContext):
                self.context.let_all_go()
            await super().shutdown()
        finally:
            if isinstance(self.context, ConnectionContext):
                self.context.complete = None  # it refers back to this handler
                await self.context.release()


class WealthWiseGraphQL(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = TransportWS

    def __init__(self, schema: Any, services: AppServices, *, graphiql: bool) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
            allowed_origins=settings.resolved_allowed_origins,
            # graphql-transport-ws only: its connection_init carries the sign-in.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_seconds),
            max_subscriptions_per_connection=settings.ws_max_subscriptions_per_connection,
        )
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as error:  # Strawberry answers these as plain text: use JSON
            response = error_response(
                error.status_code, _http_error_code(error), error.reason or "Bad request"
            )
        await response(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        if isinstance(request, WebSocket):
            return ConnectionContext(
                request=request,
                response=None,
                services=self.services,
                hub=getattr(request.state, "hub", None),
                registry=getattr(request.state, "connections", None),
                fanout=getattr(request.state, "fanout", None),
                request_id=structlog.contextvars.get_contextvars().get("request_id"),
            )
        context = RequestContext(
            request=request,
            response=response if isinstance(response, Response) else None,
            services=self.services,
        )
        request.state.wealthwise_context = context
        return context

    async def on_ws_connect(self, context: RequestContext) -> dict[str, object] | None:
        assert isinstance(context, ConnectionContext)
        return await context.sign_in()

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if (
            isinstance(request, Request)
            and not self.should_render_graphql_ide(self.request_adapter_class(request))
            and not csrf_safe(request.headers)
        ):
            return csrf_rejected()
        try:
            return await super().run(request, context, root_value)
        finally:
            context = getattr(request.state, "wealthwise_context", None)
            if context is not None:
                # Reached only if process_result did not finish the session (an exception).
                await context.finish(commit=False)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Cancel an operation that runs past the timeout; its transaction is rolled back."""
        timeout = self.services.settings.query_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await super().execute_single(
                    request=request,
                    request_adapter=request_adapter,
                    sub_response=sub_response,
                    context=context,
                    root_value=root_value,
                    request_data=request_data,
                )
        except TimeoutError:
            log.warning("operation_timeout", operation=request_data.operation_name, s=timeout)
            return ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"The operation took longer than {timeout:g} s and was cancelled; "
                        "nothing was changed",
                        extensions={"code": "TIMEOUT"},
                    )
                ],
            )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        context: RequestContext | None = getattr(request.state, "wealthwise_context", None)
        if context is not None:
            if result.errors:
                await context.finish(commit=False)
            else:
                try:
                    await context.finish(commit=True)
                except Exception:
                    log.exception("commit_failed")
                    self.services.keyring.forget()
                    return {
                        "data": None,
                        "errors": [
                            {
                                "message": "The change could not be saved; nothing was changed",
                                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                            }
                        ],
                    }
        if result.errors:
            # Errors raised outside the operation hook (e.g. a parse error from the parser
            # cache) miss the ErrorCodes extension: classify them here too.
            result.errors = [classify(error) for error in result.errors]
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        examples = EXAMPLES.read_text()
        html = self.graphql_ide_html.replace(
            "const EXAMPLE_QUERY = `",
            "const EXAMPLE_QUERY = `" + examples.replace("`", "\\`") + "\n",
        )
        csp = graphiql_csp(html, request.headers.get("host"))
        return HTMLResponse(html, headers={"content-security-policy": csp})


def _http_error_code(error: HTTPException) -> str:
    """A code for the transport errors Strawberry raises (bad body, method, batching)."""
    reason = error.reason or ""
    if reason == "Batching is not enabled":
        return "BATCHING_DISABLED"
    if reason == "Unsupported content type":
        return "UNSUPPORTED_CONTENT_TYPE"
    if "not allowed when using GET" in reason:
        return "OPERATION_NOT_ALLOWED"
    return {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, "BAD_REQUEST")
