"""The offline analyst's latency on the demo household: time to first delta, to the first
delta of the answer itself, and question to done, against the tools alone.

    PYTHONPATH=. .venv/bin/python -m bench.advisor_offline [--rounds 30]

Builds the 36 demo months (tests.advisor.households, "today" 2026-03-14) in a temporary
SQLite database, builds the workspace's vocabulary once (timed apart: the service builds it
once per answer, before the question is read), then asks the issue's four questions
`--rounds` times each through `converse`, the real tools running in a workspace-bound
session per call exactly as the service's `execute` does. Per question it prints:

- first delta: question to the first TextDelta (the sentence saying what is being looked
  up, streamed before the tool calls); target <= 150 ms;
- first figure: question to the first delta of the answer (after the tools ran);
- done: question to the final Stop;
- tools alone: the same tool calls run directly, in the same run (the baseline);
  done / tools is what reading the question and writing the answer add.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domain.advisor.analyst import understand
from domain.advisor.analyst.provider import OfflineAnalyst, build_vocabulary
from domain.advisor.llm import (
    SENIOR_WEALTH_ADVISOR,
    Message,
    TextDelta,
    ToolCall,
    ToolResultEvent,
    ToolSpec,
    converse,
)
from domain.advisor.tools import run_tool, toolbox
from tests import services as test_services
from tests.advisor.households import ANCHOR, Household, demo_household

QUESTIONS = (
    "How much did we spend on groceries last month?",
    "Compare our dining spend this quarter with last quarter",
    "What subscriptions are we paying for?",
    "If we save 20,000 a month at 8% for 10 years, what do we have?",
)
TARGET_FIRST_DELTA = 0.150


def _specs() -> list[ToolSpec]:
    return [ToolSpec(t.name, t.description, t.input_schema) for t in toolbox().values()]


async def _ask(
    analyst: OfflineAnalyst, household: Household, question: str
) -> tuple[float, float, float]:
    """Seconds to the first delta, to the answer's first delta, and to done."""

    async def execute(call: ToolCall) -> dict[str, Any]:
        async with household.context() as ctx:
            result = await run_tool(ctx, call.name, call.input)
        return result.data

    started = time.perf_counter()
    first = figure = None
    tools_ran = False
    async for event in converse(
        analyst,
        system=SENIOR_WEALTH_ADVISOR,
        messages=[Message.user(question)],
        tools=_specs(),
        execute=execute,
        max_rounds=4,
    ):
        now = time.perf_counter() - started
        if isinstance(event, ToolResultEvent):
            tools_ran = True
        elif isinstance(event, TextDelta):
            first = now if first is None else first
            if tools_ran and figure is None:
                figure = now
    done = time.perf_counter() - started
    assert first is not None and figure is not None, question
    return first, figure, done


async def _tools_alone(analyst: OfflineAnalyst, household: Household, question: str) -> float:
    plan = understand(question, today=ANCHOR, vocabulary=analyst.vocabulary, currency="INR")
    started = time.perf_counter()
    for call in plan.calls:
        async with household.context() as ctx:
            await run_tool(ctx, call.name, call.arguments)
    return time.perf_counter() - started


def _ms(values: Sequence[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000:8.1f}"


async def _run(rounds: int, data_dir: Path) -> None:
    settings = test_services.settings_for(data_dir, None)
    await asyncio.to_thread(test_services.migrate, settings)  # alembic runs its own loop
    built = time.perf_counter()
    household = await demo_household(settings, name="Bench")
    print(f"demo household (36 months) built in {time.perf_counter() - built:.1f} s")
    started = time.perf_counter()
    async with household.context() as ctx:
        vocabulary = await build_vocabulary(ctx.session, ctx.tenant)
    print(
        f"vocabulary: {len(vocabulary.names)} names, built in "
        f"{(time.perf_counter() - started) * 1000:.1f} ms (once per answer, not timed below)"
    )
    analyst = OfflineAnalyst(vocabulary, today=ANCHOR, currency="INR")
    for question in QUESTIONS:  # warm up: imports, the engine's pool, first queries
        await _ask(analyst, household, question)
        await _tools_alone(analyst, household, question)

    header = f"{'question':<34}{'first delta':>20}{'first figure':>20}{'done':>20}{'tools':>20}"
    print(f"\n{rounds} rounds per question; ms p50 / p95")
    print(header + f"{'done/tools':>12}")
    every_first: list[float] = []
    for question in QUESTIONS:
        firsts, figures, dones, tools = [], [], [], []
        for _ in range(rounds):  # interleaved, so load from elsewhere hits both sides
            first, figure, done = await _ask(analyst, household, question)
            firsts.append(first)
            figures.append(figure)
            dones.append(done)
            tools.append(await _tools_alone(analyst, household, question))
        every_first += firsts
        ratio = statistics.median(dones) / max(statistics.median(tools), 1e-9)
        print(
            f"{question[:33]:<34}"
            + "".join(f"{_ms(v, 0.5)} /{_ms(v, 0.95)}" for v in (firsts, figures, dones, tools))
            + f"{ratio:12.2f}"
        )
    p95 = sorted(every_first)[int(len(every_first) * 0.95)]
    verdict = "met" if p95 <= TARGET_FIRST_DELTA else "missed"
    print(f"\nfirst delta p95 over all questions: {p95 * 1000:.1f} ms")
    print(f"first delta p95 / 150 ms target: {p95 / TARGET_FIRST_DELTA:.3f} ({verdict})")
    await household.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="advisor-offline-") as data_dir:
        asyncio.run(_run(rounds, Path(data_dir)))


if __name__ == "__main__":
    main()
