"""The HTTP edge: health checks (real Redis), GraphiQL, request ids, transport rules."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from schema.context import AppServices


async def _get(services: AppServices, path: str, **settings: Any) -> httpx.Response:
    app = create_app(services.settings.model_copy(update=settings), services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
    ) as client:
        return await client.get(path, headers={"accept": "text/html"})


async def test_ready_checks_the_database_and_redis(services: AppServices, redis_url: str) -> None:
    response = await _get(services, "/health/ready", redis_url=redis_url)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_ready_reports_an_unreachable_redis(services: AppServices) -> None:
    response = await _get(services, "/health/ready", redis_url="redis://127.0.0.1:1/0")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")


async def test_graphiql_serves_the_saved_example_operations(services: AppServices) -> None:
    response = await _get(services, "/graphql")
    assert response.status_code == 200
    assert "mutation Login" in response.text and "query AccountsAndBalances" in response.text


async def test_graphiql_can_be_turned_off(services: AppServices) -> None:
    response = await _get(services, "/graphql", graphiql=False)
    assert response.status_code != 200 or "graphiql" not in response.text.lower()


async def test_every_response_carries_a_request_id(services: AppServices) -> None:
    response = await _get(services, "/health/live")
    assert len(response.headers["x-request-id"]) == 32


async def test_the_web_client_is_served_at_the_root(services: AppServices) -> None:
    response = await _get(services, "/")
    assert response.status_code == 200 and "WealthWise" in response.text


async def test_mutations_over_get_are_refused(services: AppServices) -> None:
    app = create_app(services.settings, services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
    ) as client:
        response = await client.get(
            "/graphql",
            params={"query": "mutation { logout { sessionsEnded } }"},
            headers={"accept": "application/json"},
        )
    assert response.status_code in (400, 405)


async def test_an_unexpected_exception_answers_a_masked_coded_500_with_every_header(
    services: AppServices,
) -> None:
    app = create_app(services.settings, services)

    async def broken(_request: Request) -> Response:
        raise RuntimeError("SELECT secret FROM somewhere")

    app.router.routes.insert(0, Route("/broken", broken))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
    ) as client:
        response = await client.get("/broken")
    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in response.text and "SELECT" not in response.text
    for header in ("x-request-id", "content-security-policy", "x-content-type-options"):
        assert header in response.headers, header
