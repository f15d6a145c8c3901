"""The app wires the realtime pieces: embedded, a committed post reaches a hub subscriber
through the outbox and the in-process relay."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from api.app import create_app
from api.realtime.hub import RealtimeEvent, workspace_channel
from schema.context import AppServices
from schema.ids import decode_id
from tests.graphql import Client, category_ids, create_account, post, register


async def test_a_post_reaches_a_hub_subscriber_through_the_outbox(services: AppServices) -> None:
    app = create_app(services.settings, services)
    async with (
        app.router.lifespan_context(app) as state,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
        ) as http,
    ):
        client = Client(http)
        session = await register(client)
        workspace = decode_id(session["workspaces"][0]["id"], "Workspace")
        account = await create_account(client, opening="100")
        hub: Any = state["hub"]
        async with hub.subscribe(workspace_channel(services.settings, workspace)) as stream:
            transaction = await post(
                client, account, (await category_ids(client))["Groceries"], "-5"
            )
            seen: list[RealtimeEvent] = []

            async def collect() -> None:
                async for item in stream:
                    if isinstance(item, RealtimeEvent):
                        seen.append(item)
                        if item.type == "transaction.posted":
                            return

            await asyncio.wait_for(collect(), timeout=5)
    posted = seen[-1]
    assert posted.workspace == workspace
    assert posted.data["transaction"] == str(decode_id(transaction, "Transaction"))
    assert posted.data["accounts"] == [str(decode_id(account, "Account"))]
