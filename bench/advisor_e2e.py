"""The offline analyst end to end through the API: question to first delta and to done, as
a client sees it (askAdvisor over HTTP, advisorAnswer over a WebSocket).

    PYTHONPATH=. .venv/bin/python -m bench.advisor_e2e [--rounds 10]

Builds the 36 demo months anchored at today in a temporary SQLite database, serves the API
with uvicorn in this process (the embedded default: no key, in-process task queue and
relay), signs in, and asks the issue's four questions `--rounds` times each. For each it
times, from just before the askAdvisor POST: the askAdvisor answer, the first event of the
answer that carries text (the SNAPSHOT, if the answer had started, or a TEXT_DELTA), and
DONE. The baseline, in the same run: a `{ me { user { id } } }` POST round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.app import build_services
from domain.core.settings import Settings
from tests import services as test_services
from tests.advisor.households import PASSWORD, demo_household
from tests.graphql import Client
from tests.realtime.ws import GraphQLWS, serving

QUESTIONS = (
    "How much did we spend on groceries last month?",
    "Compare our dining spend this quarter with last quarter",
    "What subscriptions are we paying for?",
    "If we save 20,000 a month at 8% for 10 years, what do we have?",
)
ASK = "mutation($q: String!) { askAdvisor(question: $q) { answer { id } } }"
ANSWER = (
    "subscription($id: ID!) { advisorAnswer(messageId: $id) { kind text message { content } } }"
)
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:7.1f} / {p95 * 1000:7.1f}"


async def _ask(base: str, client: Client, token: str, question: str) -> tuple[float, float, float]:
    started = time.perf_counter()
    answer_id = (await client.ok(ASK, q=question))["askAdvisor"]["answer"]["id"]
    asked = time.perf_counter() - started
    first: float | None = None
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": token})
        await ws.subscribe("a", ANSWER, {"id": answer_id})
        while True:
            event = (await ws.data("a", within=60))["advisorAnswer"]
            text = event["text"] or (event["message"] or {}).get("content")
            if first is None and text:
                first = time.perf_counter() - started
            if event["kind"] == "DONE":
                done = time.perf_counter() - started
                return asked, first if first is not None else done, done


async def main(settings: Settings, rounds: int) -> None:
    household = await demo_household(settings, "Bench", anchor=dt.date.today())
    await household.engine.dispose()
    services = build_services(settings)
    async with serving(services) as base, httpx.AsyncClient(base_url=base) as http:
        client = Client(http)
        response = await http.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"e": household.email, "p": PASSWORD}},
        )
        token = response.cookies.get("ww_access")
        assert token, response.text
        http.headers["authorization"] = f"Bearer {token}"
        baseline: list[float] = []
        for _ in range(rounds * 4):
            started = time.perf_counter()
            await client.ok("{ me { user { id } } }")
            baseline.append(time.perf_counter() - started)
        print(f"advisor end to end, {rounds} rounds, demo data (SQLite), p50 / p95 ms")
        print(f"baseline: a `me` query round trip {_ms(baseline)}")
        print(f"{'question':<64} {'askAdvisor':>17} {'first text':>17} {'done':>17}")
        for question in QUESTIONS:
            await _ask(base, client, token, question)  # warm: vocabulary, caches
            timings = [await _ask(base, client, token, question) for _ in range(rounds)]
            asked, first, done = (list(column) for column in zip(*timings, strict=True))
            print(f"{question:<64} {_ms(asked):>17} {_ms(first):>17} {_ms(done):>17}")
        ratio = statistics.median(done) / statistics.median(baseline)
        print(f"done / baseline (p50, last question): {ratio:.1f}x")
    await services.engine.dispose()


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10)
    args: Any = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        settings = test_services.settings_for(Path(tmp), None)
        test_services.migrate(settings)  # runs its own event loop: before ours
        asyncio.run(main(settings, args.rounds))


if __name__ == "__main__":
    run()
