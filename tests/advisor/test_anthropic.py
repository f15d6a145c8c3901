"""The Anthropic provider and the tool loop, against a fake Messages API on 127.0.0.1.

The SDK (anthropic 2.x on httpx2) talks real HTTP to tests/advisor/fake_anthropic.py,
which streams the documented SSE events and records every request it receives.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from domain.advisor.llm import (
    SENIOR_WEALTH_ADVISOR,
    ConversationEvent,
    LLMEvent,
    Message,
    ProviderError,
    ProviderTimeout,
    Stop,
    TextDelta,
    ToolCall,
    ToolResultEvent,
    ToolSpec,
    ToolUseBlock,
    Usage,
    build_provider,
    converse,
)
from domain.advisor.llm.anthropic_provider import AnthropicProvider
from domain.core.errors import BadInput
from domain.core.settings import Settings
from tests.advisor.fake_anthropic import (
    API_KEY,
    MODEL,
    Answer,
    Failure,
    FakeAnthropic,
    Silence,
    Text,
    ToolUse,
)

SPENDING = ToolSpec(
    name="spending",
    description="Spending in a period, grouped by category, payee, account or month.",
    input_schema={
        "type": "object",
        "properties": {
            "start": {"type": "string", "format": "date"},
            "end": {"type": "string", "format": "date"},
            "group_by": {"enum": ["category", "payee", "account", "month"]},
        },
        "required": ["start", "end", "group_by"],
    },
)
SEARCH = ToolSpec(
    name="search_transactions",
    description="Find transactions by meaning or by name.",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}},
)
TOOLS = (SPENDING, SEARCH)
QUESTION = Message.user("How much did we spend on groceries last month? Today is 2026-11-30.")
OVERLOADED = Failure(529, "overloaded_error", "Overloaded")


def make_provider(fake: FakeAnthropic, **options: Any) -> AnthropicProvider:
    settings: dict[str, Any] = {"timeout_seconds": 5.0, "max_retries": 2, "max_tokens": 1024}
    return AnthropicProvider(
        api_key=API_KEY, model=MODEL, base_url=fake.base_url, **{**settings, **options}
    )


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    fake.reset()
    claude = make_provider(fake)
    yield claude
    await claude.aclose()


async def drain(events: AsyncIterator[ConversationEvent]) -> list[ConversationEvent]:
    return [event async for event in events]


def text_of(events: list[ConversationEvent] | list[LLMEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def final_stop(events: list[ConversationEvent]) -> Stop:
    stops = [event for event in events if isinstance(event, Stop)]
    assert len(stops) == 1 and stops[0] is events[-1]
    return stops[0]


class Ledger:
    """Stands in for the advisor's tools: answers `spending` and records every call."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def execute(self, call: ToolCall) -> Mapping[str, Any]:
        self.calls.append(call)
        if call.name == "search_transactions" and call.input.get("query") == "":
            raise BadInput("query must not be empty", field="query")
        if call.name == "search_transactions":
            raise RuntimeError("the index is down")
        return {"total": {"amount": "8412.50", "currency": "INR"}, "start": call.input["start"]}


async def test_a_plain_answer_streams_its_text_and_its_usage(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    answer = Answer(
        (Text("You spent INR 8,412.50 on groceries in October."),),
        input_tokens=1200,
        output_tokens=31,
        cache_read_tokens=1024,
        cache_creation_tokens=0,
    )
    fake.reset(answer)

    events = await drain(
        converse(
            provider,
            system=SENIOR_WEALTH_ADVISOR,
            messages=[QUESTION],
            tools=TOOLS,
            execute=Ledger().execute,
            max_rounds=4,
        )
    )

    assert text_of(events) == "You spent INR 8,412.50 on groceries in October."
    assert sum(isinstance(event, TextDelta) for event in events) > 1  # streamed, not at once
    usage = Usage(input_tokens=1200, output_tokens=31, cache_read_tokens=1024)
    assert [event for event in events if isinstance(event, Usage)] == [usage]
    assert final_stop(events) == Stop("end_turn", usage, rounds=1)
    [request] = fake.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["anthropic-version"]
    assert request.body["model"] == MODEL
    assert request.body["max_tokens"] == 1024
    assert request.body["stream"] is True
    assert request.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION.content[0].text}  # type: ignore[union-attr]
            ],
        }
    ]


async def test_the_system_prompt_and_the_tool_list_are_marked_for_prompt_caching(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reset(Answer((Text("Hello."),)))

    await drain(provider.stream(system=SENIOR_WEALTH_ADVISOR, messages=[QUESTION], tools=TOOLS))

    [request] = fake.requests
    assert request.body["system"] == [
        {"type": "text", "text": SENIOR_WEALTH_ADVISOR, "cache_control": {"type": "ephemeral"}}
    ]
    tools = request.body["tools"]
    assert [tool["name"] for tool in tools] == ["spending", "search_transactions"]
    assert tools[0]["input_schema"] == SPENDING.input_schema
    assert "cache_control" not in tools[0]
    assert tools[-1]["cache_control"] == {"type": "ephemeral"}


async def test_two_tool_rounds_send_each_result_back_under_its_tool_use_id(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    spending = ToolUse(
        "spending", {"start": "2026-10-01", "end": "2026-10-31", "group_by": "category"}
    )
    empty_search = ToolUse("search_transactions", {"query": ""})
    broken_search = ToolUse("search_transactions", {"query": "groceries"})
    fake.reset(
        Answer(
            (Text("Let me check."), spending),
            stop_reason="tool_use",
            input_tokens=900,
            output_tokens=40,
            cache_creation_tokens=800,
        ),
        Answer(
            (empty_search, broken_search),
            stop_reason="tool_use",
            input_tokens=1000,
            output_tokens=30,
            cache_read_tokens=800,
        ),
        Answer(
            (Text("INR 8412.50 [txn:abc]"),),
            input_tokens=1100,
            output_tokens=20,
            cache_read_tokens=800,
        ),
    )
    ledger = Ledger()

    events = await drain(
        converse(
            provider,
            system=SENIOR_WEALTH_ADVISOR,
            messages=[QUESTION],
            tools=TOOLS,
            execute=ledger.execute,
            max_rounds=4,
        )
    )

    # the streamed input_json_delta fragments became each call's parsed input
    assert [(call.id, call.name, call.input) for call in ledger.calls] == [
        (tool.id, tool.name, tool.input) for tool in (spending, empty_search, broken_search)
    ]
    kinds = [type(event).__name__ for event in events if not isinstance(event, TextDelta)]
    assert kinds == [
        "ToolCall",
        "Usage",
        "ToolResultEvent",
        "ToolCall",
        "ToolCall",
        "Usage",
        "ToolResultEvent",
        "ToolResultEvent",
        "Usage",
        "Stop",
    ]
    results = [event for event in events if isinstance(event, ToolResultEvent)]
    assert [(result.call.id, result.is_error) for result in results] == [
        (spending.id, False),
        (empty_search.id, True),
        (broken_search.id, True),
    ]
    assert results[1].result == {"error": "query must not be empty", "code": "BAD_USER_INPUT"}
    assert "index is down" not in json.dumps(results[2].result)  # internals stay here
    assert text_of(events) == "Let me check.INR 8412.50 [txn:abc]"
    total = Usage(
        input_tokens=3000, output_tokens=90, cache_read_tokens=1600, cache_creation_tokens=800
    )
    assert final_stop(events) == Stop("end_turn", total, rounds=3)

    assert fake.refusals == []
    first, second, third = (request.body["messages"] for request in fake.requests)
    assert len(first) == 1
    assert second[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": spending.id, "name": "spending", "input": spending.input},
        ],
    }
    [answer] = second[2]["content"]
    assert second[2]["role"] == "user" and answer["type"] == "tool_result"
    assert answer["tool_use_id"] == spending.id and "is_error" not in answer
    assert json.loads(answer["content"]) == results[0].result
    assert third[:3] == second
    assert [block["type"] for block in third[3]["content"]] == ["tool_use", "tool_use"]
    replies = third[4]["content"]
    assert [(r["tool_use_id"], r.get("is_error")) for r in replies] == [
        (empty_search.id, True),
        (broken_search.id, True),
    ]
    assert json.loads(replies[0]["content"])["error"] == "query must not be empty"
    # every request carries the same cached prefix
    assert len({json.dumps([r.body["system"], r.body["tools"]]) for r in fake.requests}) == 1


async def test_the_fake_refuses_tool_use_without_its_tool_result(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    """The server-side check the tool-round test relies on can fail."""
    fake.reset(Answer((Text("unreachable"),)))
    dangling = Message("assistant", (ToolUseBlock("toolu_1", "spending", {}),))
    with pytest.raises(ProviderError, match=r"400 \(invalid_request_error\).*toolu_1"):
        await drain(provider.stream(system="s", messages=[QUESTION, dangling], tools=TOOLS))


async def test_an_overloaded_529_is_retried_by_the_sdk_and_then_answers(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reset(OVERLOADED, Answer((Text("Here it is."),)))

    events = await drain(provider.stream(system="s", messages=[QUESTION], tools=TOOLS))

    assert text_of(events) == "Here it is."
    assert events[-1] == Stop("end_turn")
    first, second = fake.requests
    assert [
        first.headers["x-stainless-retry-count"],
        second.headers["x-stainless-retry-count"],
    ] == ["0", "1"]
    assert first.body == second.body


async def test_overloaded_past_max_retries_is_a_clear_error(fake: FakeAnthropic) -> None:
    fake.reset(OVERLOADED, OVERLOADED)
    claude = make_provider(fake, max_retries=1)
    try:
        with pytest.raises(ProviderError, match=r"529 \(overloaded_error\): Overloaded") as error:
            await drain(claude.stream(system="s", messages=[QUESTION], tools=TOOLS))
    finally:
        await claude.aclose()
    assert error.value.code == "ADVISOR_UNAVAILABLE"
    assert len(fake.requests) == 2


async def test_a_server_slower_than_the_timeout_fails_clearly_without_hanging(
    fake: FakeAnthropic,
) -> None:
    fake.reset(Silence(2.0, then=Answer((Text("too late"),))), default=Silence(2.0))
    claude = make_provider(fake, timeout_seconds=0.5, max_retries=1)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout, match="did not answer in time") as error:
            await drain(claude.stream(system="s", messages=[QUESTION], tools=TOOLS))
    finally:
        await claude.aclose()
    assert time.monotonic() - started < 4
    assert error.value.code == "ADVISOR_TIMEOUT"
    assert len(fake.requests) == 2  # the timed-out request was retried once


async def test_a_stream_that_stalls_midway_fails_with_a_timeout(fake: FakeAnthropic) -> None:
    fake.reset(Answer((Text("The answer is coming"),), stall_after_first_delta=2.0))
    claude = make_provider(fake, timeout_seconds=0.5, max_retries=2)
    seen: list[LLMEvent] = []
    started = time.monotonic()
    try:
        with pytest.raises(ProviderTimeout, match="stalled"):
            async for event in claude.stream(system="s", messages=[QUESTION], tools=TOOLS):
                seen.append(event)
    finally:
        await claude.aclose()
    assert time.monotonic() - started < 4
    assert text_of(seen) == "The ans"  # what arrived before the stall
    assert len(fake.requests) == 1  # a started answer is not replayed


async def test_an_error_event_inside_the_stream_is_a_clear_error(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reset(Answer((Text("never sent"),), error_event="overloaded_error"))

    with pytest.raises(ProviderError, match=r"mid-answer \(overloaded_error\)"):
        await drain(provider.stream(system="s", messages=[QUESTION], tools=TOOLS))


async def test_a_model_that_keeps_calling_tools_stops_at_max_rounds(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    again = Answer(
        (ToolUse("spending", {"start": "2026-10-01", "end": "2026-10-31", "group_by": "month"}),),
        stop_reason="tool_use",
        input_tokens=10,
        output_tokens=5,
    )
    fake.reset(default=again)
    ledger = Ledger()

    events = await drain(
        converse(
            provider,
            system="s",
            messages=[QUESTION],
            tools=TOOLS,
            execute=ledger.execute,
            max_rounds=3,
        )
    )

    assert len(fake.requests) == 3
    assert final_stop(events) == Stop("max_rounds", Usage(30, 15), rounds=3)
    calls = [event for event in events if isinstance(event, ToolCall)]
    results = [event for event in events if isinstance(event, ToolResultEvent)]
    assert len(calls) == 3 and [result.call for result in results] == calls
    assert fake.refusals == []


async def test_build_provider_uses_claude_only_when_a_key_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Offline:
        name = "offline"

        def stream(self, **_: Any) -> AsyncIterator[LLMEvent]:
            raise NotImplementedError

    offline = Offline()
    monkeypatch.setenv("WEALTHWISE_ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("WEALTHWISE_ADVISOR_MAX_ROUNDS", "6")
    settings = Settings()
    claude = build_provider(settings, offline=offline)
    assert isinstance(claude, AnthropicProvider) and claude.model == settings.advisor_model
    await claude.aclose()
    assert settings.advisor_max_rounds == 6

    assert build_provider(Settings(anthropic_api_key=None), offline=offline) is offline
    assert build_provider(Settings(anthropic_api_key=SecretStr("")), offline=offline) is offline


async def test_tool_calls_of_a_turn_cut_off_by_max_tokens_are_not_run(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    cut = ToolUse("spending", {"start": "2026-10-01", "end": "2026-10-31", "group_by": "payee"})
    fake.reset(Answer((Text("Checking"), cut), stop_reason="max_tokens"))
    ledger = Ledger()

    events = await drain(
        converse(
            provider,
            system="s",
            messages=[QUESTION],
            tools=TOOLS,
            execute=ledger.execute,
            max_rounds=4,
        )
    )

    assert ledger.calls == [] and not any(isinstance(event, ToolCall) for event in events)
    assert final_stop(events).reason == "max_tokens"


async def test_a_listener_that_stops_early_releases_the_stream(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.reset(
        Answer((Text("A long answer that nobody reads to the end."),)),
        default=Answer((Text("Next."),)),
    )
    events = converse(
        provider,
        system="s",
        messages=[QUESTION],
        tools=TOOLS,
        execute=Ledger().execute,
        max_rounds=4,
    )
    async for event in events:
        assert isinstance(event, TextDelta)
        break
    await events.aclose()

    again = await drain(provider.stream(system="s", messages=[QUESTION], tools=TOOLS))
    assert text_of(again) == "Next."
