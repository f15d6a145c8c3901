"""Advisor threads and messages: asking, reading, and generating an answer.

`ask` stores the question and an empty assistant message ("pending") in the request's
transaction; the API then sends the `advisor.answer` task, which runs `generate_answer`:
the provider (Claude, or the offline analyst) streams text and calls tools over a bounded
number of rounds; the growing message is saved every `SAVE_INTERVAL` seconds and on every
tool call, each save in a short transaction of its own that also writes an
`advisor.message.updated` outbox event, so any number of subscribers (tabs) follow it, and
one that connects late reads what was saved so far. Every figure of the final text is
checked against the tool calls of this answer (domain/advisor/figures.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from domain.advisor.figures import unverified_figures
from domain.advisor.llm.converse import converse
from domain.advisor.llm.port import (
    LLMProvider,
    Message,
    ProviderError,
    Stop,
    TextDelta,
    ToolCall,
    ToolResultEvent,
    ToolSpec,
    Usage,
)
from domain.advisor.llm.prompt import SENIOR_WEALTH_ADVISOR
from domain.advisor.models import AdvisorMessage, AdvisorThread
from domain.advisor.tools import ToolContext, TransactionSearch, run_tool, toolbox
from domain.core.db import bind_scope, unit_of_work
from domain.core.errors import BadInput, NotFound
from domain.core.keys import Keyring
from domain.core.models import as_utc, utcnow
from domain.core.tenancy import Tenant
from domain.identity import service as identity
from domain.realtime import outbox
from domain.realtime.events import EventType

log = structlog.get_logger(__name__)

QUESTION_MAX = 2_000
TITLE_MAX = 80
HISTORY_TURNS = 6  # earlier question/answer pairs sent with a new question
SAVE_INTERVAL = 0.1  # seconds between saves of a growing answer
THREAD_PAGE = 100

PENDING, STREAMING, DONE, FAILED = "pending", "streaming", "done", "failed"
FLAG_UNVERIFIED = "UNVERIFIED_FIGURES"
FLAG_INCOMPLETE = "INCOMPLETE"


@dataclass(frozen=True)
class ToolCallView:
    id: str
    name: str
    input: dict[str, Any]
    result: dict[str, Any] | None
    is_error: bool = False


@dataclass(frozen=True)
class Flag:
    code: str
    detail: str


@dataclass(frozen=True)
class MessageView:
    id: uuid.UUID
    thread_id: uuid.UUID
    role: str
    status: str
    content: str
    tool_calls: list[ToolCallView]
    citations: list[uuid.UUID]
    flags: list[Flag]
    version: int
    provider: str | None
    model: str | None
    usage: Usage
    error_code: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)


@dataclass(frozen=True)
class ThreadView:
    id: uuid.UUID
    title: str
    created_by: uuid.UUID
    created_at: dt.datetime
    updated_at: dt.datetime


# --- sealing -----------------------------------------------------------------------------


def _seal_json(tenant: Tenant, value: Any, table: str, column: str, row_id: uuid.UUID) -> bytes:
    return tenant.cipher.seal_text(json.dumps(value, default=str), table, column, row_id)


def _open_json(tenant: Tenant, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> Any:
    return json.loads(tenant.cipher.open_text(blob, table, column, row_id))


def _seal_message(
    tenant: Tenant,
    row: AdvisorMessage,
    *,
    content: str,
    tool_calls: Sequence[ToolCallView],
    citations: Sequence[uuid.UUID],
    flags: Sequence[Flag],
) -> None:
    table = "advisor_messages"
    row.content_enc = tenant.cipher.seal_text(content, table, "content", row.id)
    row.tool_calls_enc = _seal_json(
        tenant, [call.__dict__ for call in tool_calls], table, "tool_calls", row.id
    )
    row.citations_enc = _seal_json(tenant, [str(c) for c in citations], table, "citations", row.id)
    row.flags_enc = _seal_json(tenant, [flag.__dict__ for flag in flags], table, "flags", row.id)


def message_view(tenant: Tenant, row: AdvisorMessage) -> MessageView:
    table = "advisor_messages"
    calls = _open_json(tenant, row.tool_calls_enc, table, "tool_calls", row.id)
    return MessageView(
        id=row.id,
        thread_id=row.thread_id,
        role=row.role,
        status=row.status,
        content=tenant.cipher.open_text(row.content_enc, table, "content", row.id),
        tool_calls=[ToolCallView(**call) for call in calls],
        citations=[
            uuid.UUID(c) for c in _open_json(tenant, row.citations_enc, table, "citations", row.id)
        ],
        flags=[Flag(**flag) for flag in _open_json(tenant, row.flags_enc, table, "flags", row.id)],
        version=row.version,
        provider=row.provider,
        model=row.model,
        usage=Usage(
            row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_creation_tokens
        ),
        error_code=row.error_code,
        created_at=as_utc(row.created_at),
        completed_at=as_utc(row.completed_at) if row.completed_at else None,
    )


def thread_view(tenant: Tenant, row: AdvisorThread) -> ThreadView:
    return ThreadView(
        id=row.id,
        title=tenant.cipher.open_text(row.title_enc, "advisor_threads", "title", row.id),
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


# --- reading -----------------------------------------------------------------------------


async def _thread_row(session: AsyncSession, tenant: Tenant, thread_id: uuid.UUID) -> AdvisorThread:
    row = await session.scalar(
        select(AdvisorThread).where(
            col(AdvisorThread.id) == thread_id,
            col(AdvisorThread.workspace_id) == tenant.workspace_id,
        )
    )
    if row is None:
        raise NotFound("Advisor thread not found", field="threadId")
    return row


async def threads(
    session: AsyncSession, tenant: Tenant, limit: int = THREAD_PAGE
) -> list[ThreadView]:
    """The workspace's threads, most recently active first."""
    rows = await session.scalars(
        select(AdvisorThread)
        .where(col(AdvisorThread.workspace_id) == tenant.workspace_id)
        .order_by(col(AdvisorThread.updated_at).desc(), col(AdvisorThread.id))
        .limit(max(1, min(limit, THREAD_PAGE)))
    )
    return [thread_view(tenant, row) for row in rows]


async def thread(session: AsyncSession, tenant: Tenant, thread_id: uuid.UUID) -> ThreadView:
    return thread_view(tenant, await _thread_row(session, tenant, thread_id))


async def messages(
    session: AsyncSession, tenant: Tenant, thread_id: uuid.UUID
) -> list[MessageView]:
    await _thread_row(session, tenant, thread_id)
    rows = await session.scalars(
        select(AdvisorMessage)
        .where(
            col(AdvisorMessage.workspace_id) == tenant.workspace_id,
            col(AdvisorMessage.thread_id) == thread_id,
        )
        .order_by(col(AdvisorMessage.created_at), col(AdvisorMessage.role).desc())
    )
    return [message_view(tenant, row) for row in rows]


async def message(
    session: AsyncSession, tenant: Tenant, message_id: uuid.UUID
) -> MessageView | None:
    row = await session.scalar(
        select(AdvisorMessage).where(
            col(AdvisorMessage.id) == message_id,
            col(AdvisorMessage.workspace_id) == tenant.workspace_id,
        )
    )
    return message_view(tenant, row) if row is not None else None


# --- asking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    thread: ThreadView
    question: MessageView
    answer: MessageView


def _new_message(
    tenant: Tenant, thread_id: uuid.UUID, role: str, status: str, content: str, at: dt.datetime
) -> AdvisorMessage:
    row = AdvisorMessage(
        workspace_id=tenant.workspace_id,
        thread_id=thread_id,
        role=role,
        status=status,
        content_enc=b"",
        tool_calls_enc=b"",
        citations_enc=b"",
        flags_enc=b"",
        asked_by=tenant.user_id,
        created_at=at,
    )
    _seal_message(tenant, row, content=content, tool_calls=(), citations=(), flags=())
    return row


async def _announce(session: AsyncSession, row: AdvisorMessage) -> None:
    await outbox.emit(
        session,
        row.workspace_id,
        EventType.ADVISOR_MESSAGE_UPDATED,
        {
            "message": str(row.id),
            "thread": str(row.thread_id),
            "version": row.version,
            "status": row.status,
        },
    )


async def ask(
    session: AsyncSession, tenant: Tenant, thread_id: uuid.UUID | None, question: str
) -> Asked:
    """Store the question and a pending answer (in the caller's transaction)."""
    question = question.strip()
    if not question or len(question) > QUESTION_MAX:
        raise BadInput(
            f"A question of 1 to {QUESTION_MAX} characters is required", field="question"
        )
    now = utcnow()
    if thread_id is None:
        title = " ".join(question.split())
        title = title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"
        thread_row = AdvisorThread(
            workspace_id=tenant.workspace_id,
            created_by=tenant.user_id,
            title_enc=b"",
            created_at=now,
            updated_at=now,
        )
        thread_row.title_enc = tenant.cipher.seal_text(
            title, "advisor_threads", "title", thread_row.id
        )
        session.add(thread_row)
    else:
        thread_row = await _thread_row(session, tenant, thread_id)
        thread_row.updated_at = now
        session.add(thread_row)
    await session.flush()  # the thread before its messages (no ORM relationship orders them)
    asked = _new_message(tenant, thread_row.id, "user", DONE, question, now)
    # The answer sorts after its question: same instant, ordered by role (user first).
    answer = _new_message(
        tenant, thread_row.id, "assistant", PENDING, "", now + dt.timedelta(microseconds=1)
    )
    session.add_all([asked, answer])
    await session.flush()
    await _announce(session, answer)
    return Asked(
        thread_view(tenant, thread_row), message_view(tenant, asked), message_view(tenant, answer)
    )


# --- generating --------------------------------------------------------------------------


@dataclass
class _Draft:
    text: str = ""
    calls: list[ToolCallView] = field(default_factory=list)
    citations: list[uuid.UUID] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    sources: list[Any] = field(default_factory=list)  # tool inputs and results


ProviderFor = Callable[[AsyncSession, Tenant], Any]  # -> Awaitable[LLMProvider]


def tool_specs() -> list[ToolSpec]:
    return [ToolSpec(t.name, t.description, t.input_schema) for t in toolbox().values()]


def system_prompt(today: dt.date, tenant: Tenant) -> str:
    return (
        f"{SENIOR_WEALTH_ADVISOR}\n\nToday is {today.isoformat()}. The workspace's base "
        f"currency is {tenant.base_currency}."
    )


def _history(views: Sequence[MessageView], until: uuid.UUID) -> tuple[list[Message], str]:
    """Earlier finished turns as plain text, then the question being answered."""
    turns: list[Message] = []
    question = ""
    for view in views:
        if view.id == until:
            break
        if view.role == "user":
            question = view.content
            turns.append(Message.user(view.content))
        elif view.finished and view.content:
            turns.append(Message.assistant(view.content))
        elif turns and turns[-1].role == "user":
            turns.pop()  # a question whose answer never came: leave it out of the context
    turns = turns[-(HISTORY_TURNS * 2) :]
    while turns and turns[0].role != "user":
        turns.pop(0)
    return turns, question


class _Writer:
    """Saves the growing answer: at most every SAVE_INTERVAL for text, at once otherwise."""

    def __init__(self, engine: AsyncEngine, tenant: Tenant, message_id: uuid.UUID) -> None:
        self.engine = engine
        self.tenant = tenant
        self.message_id = message_id
        self.saved_at = 0.0
        self.saved_text = -1

    async def save(self, draft: _Draft, status: str, *, force: bool = False, **extra: Any) -> None:
        now = time.monotonic()
        first_words = bool(draft.text) and self.saved_text <= 0  # the first delta: at once
        if not force and not first_words and now - self.saved_at < SAVE_INTERVAL:
            return
        self.saved_at = now
        self.saved_text = len(draft.text)
        async with unit_of_work(self.engine) as session:
            await bind_scope(session, workspace_id=self.tenant.workspace_id)
            row = await session.get(AdvisorMessage, self.message_id)
            assert row is not None and row.workspace_id == self.tenant.workspace_id
            _seal_message(
                self.tenant,
                row,
                content=draft.text,
                tool_calls=draft.calls,
                citations=draft.citations,
                flags=draft.flags,
            )
            row.status = status
            row.version += 1
            row.input_tokens = draft.usage.input_tokens
            row.output_tokens = draft.usage.output_tokens
            row.cache_read_tokens = draft.usage.cache_read_tokens
            row.cache_creation_tokens = draft.usage.cache_creation_tokens
            for name, value in extra.items():
                setattr(row, name, value)
            session.add(row)
            await session.flush()
            await _announce(session, row)


async def generate_answer(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    workspace_id: uuid.UUID,
    message_id: uuid.UUID,
    provider_for: Callable[[AsyncSession, Tenant], Any],
    max_rounds: int,
    search: TransactionSearch | None = None,
    today: dt.date | None = None,
) -> MessageView:
    """Generate (or finish) one pending answer; idempotent: a finished one is left alone,
    one left half-written by a crashed worker is written again from the start."""
    today = today or dt.date.today()
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        row = await session.get(AdvisorMessage, message_id)
        if row is None or row.workspace_id != workspace_id or row.role != "assistant":
            raise NotFound("Advisor message not found")
        if row.asked_by is None:
            raise NotFound("Advisor message has no asker")
        tenant = await identity.open_tenant(session, keyring, row.asked_by, workspace_id)
        current = message_view(tenant, row)
        if current.finished:
            return current
        history, question = _history(await messages(session, tenant, row.thread_id), message_id)
        provider: LLMProvider = await provider_for(session, tenant)
    writer = _Writer(engine, tenant, message_id)
    draft = _Draft(sources=[question])
    meta = {"provider": provider.name, "model": getattr(provider, "model", None)}
    await writer.save(draft, STREAMING, force=True, **meta)

    async def execute(call: ToolCall) -> dict[str, Any]:
        async with unit_of_work(engine, write=False) as tool_session:
            await bind_scope(tool_session, workspace_id=workspace_id, user_id=tenant.user_id)
            context = ToolContext(tool_session, tenant, today, search)
            result = await run_tool(context, call.name, call.input)
        for transaction_id in result.transaction_ids:
            if transaction_id not in draft.citations:
                draft.citations.append(transaction_id)
        return result.data

    try:
        return await _generate(
            engine, tenant, writer, draft, provider, history, execute, max_rounds, today
        )
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


async def _generate(
    engine: AsyncEngine,
    tenant: Tenant,
    writer: _Writer,
    draft: _Draft,
    provider: LLMProvider,
    history: list[Message],
    execute: Callable[[ToolCall], Awaitable[dict[str, Any]]],
    max_rounds: int,
    today: dt.date,
) -> MessageView:
    message_id = writer.message_id
    stop: Stop | None = None
    try:
        async for event in converse(
            provider,
            system=system_prompt(today, tenant),
            messages=history,
            tools=tool_specs(),
            execute=execute,
            max_rounds=max_rounds,
        ):
            if isinstance(event, TextDelta):
                draft.text += event.text
                await writer.save(draft, STREAMING)
            elif isinstance(event, ToolResultEvent):
                draft.calls.append(
                    ToolCallView(
                        event.call.id,
                        event.call.name,
                        dict(event.call.input),
                        dict(event.result),
                        event.is_error,
                    )
                )
                draft.sources += [event.call.input, event.result]
                await writer.save(draft, STREAMING, force=True)
            elif isinstance(event, Usage):
                draft.usage = draft.usage + event
            elif isinstance(event, Stop):
                stop = event
                draft.usage = event.usage
    except ProviderError as error:
        log.warning("advisor_provider_failed", code=error.code, message_id=str(message_id))
        if draft.text:
            draft.text += "\n\n"
        draft.text += (
            "I could not finish this answer: the advisor model is unavailable right now. "
            "Please ask again in a moment."
        )
        await writer.save(draft, FAILED, force=True, error_code=error.code, completed_at=utcnow())
        return await _read(engine, tenant, message_id)
    missing = unverified_figures(draft.text, draft.sources)
    if missing:
        draft.flags.append(
            Flag(FLAG_UNVERIFIED, "Not found in this answer's tool results: " + ", ".join(missing))
        )
    if stop is not None and stop.reason in ("max_rounds", "max_tokens"):
        draft.flags.append(Flag(FLAG_INCOMPLETE, f"The answer stopped early ({stop.reason})"))
    await writer.save(draft, DONE, force=True, completed_at=utcnow())
    return await _read(engine, tenant, message_id)


async def _read(engine: AsyncEngine, tenant: Tenant, message_id: uuid.UUID) -> MessageView:
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, workspace_id=tenant.workspace_id)
        found = await message(session, tenant, message_id)
    assert found is not None
    return found
