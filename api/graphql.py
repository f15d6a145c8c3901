"""The GraphQL view: one request = one database transaction, committed only on success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UNSET

from schema.context import AppServices, RequestContext
from schema.errors import classify

log = structlog.get_logger(__name__)
EXAMPLES = Path(__file__).parent / "graphiql_examples.graphql"


class WealthWiseGraphQL(GraphQL[RequestContext, None]):
    def __init__(self, schema: Any, services: AppServices, *, graphiql: bool) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
        )
        self.services = services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        context = RequestContext(
            request=request,
            response=response if isinstance(response, Response) else None,
            services=self.services,
        )
        request.state.wealthwise_context = context
        return context

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        finally:
            context = getattr(request.state, "wealthwise_context", None)
            if context is not None:
                # Reached only if process_result did not finish the session (an exception).
                await context.finish(commit=False)

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
        return HTMLResponse(html)
