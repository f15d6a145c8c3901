"""The advisor over GraphQL: threads, messages, `askAdvisor`, and the `advisorAnswer`
subscription that streams an answer as it is written (domain/advisor/service.py)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import AsyncGenerator, Iterable
from typing import Any, cast

import strawberry
import structlog
from strawberry import relay
from strawberry.scalars import JSON

from domain.advisor import service
from domain.core.errors import NotFound
from domain.realtime.events import EventType
from schema.common import CanRead, IsAuthenticated
from schema.context import Info
from schema.ids import decode_id, encode_id
from schema.ledger.types import Transaction

log = structlog.get_logger(__name__)


@strawberry.enum
class AdvisorRole(enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"


@strawberry.enum
class AdvisorStatus(enum.Enum):
    PENDING = service.PENDING
    STREAMING = service.STREAMING
    DONE = service.DONE
    FAILED = service.FAILED


@strawberry.type(description="A tool the advisor ran for this answer, with what it returned.")
class AdvisorToolCall:
    id: str
    name: str
    input: JSON
    result: JSON | None
    is_error: bool

    @classmethod
    def of(cls, view: service.ToolCallView) -> AdvisorToolCall:
        return cls(
            id=view.id,
            name=view.name,
            input=cast(JSON, view.input),
            result=cast(JSON, view.result),
            is_error=view.is_error,
        )


@strawberry.type(description="A transaction an answer's figures came from.")
class AdvisorCitation:
    transaction_uuid: strawberry.Private[uuid.UUID]

    @strawberry.field
    def transaction_id(self) -> strawberry.ID:
        return strawberry.ID(encode_id("Transaction", self.transaction_uuid))

    @strawberry.field(description="The transaction as it is now; null once deleted.")
    async def transaction(self, info: Info) -> Transaction | None:
        (found,) = await Transaction.resolve_nodes(info=info, node_ids=[self.transaction_uuid.hex])
        return found


@strawberry.type(description="Something a reader should know about an answer.")
class AdvisorFlag:
    code: str = strawberry.field(
        description="UNVERIFIED_FIGURES: a number no tool result of this answer contains; "
        "INCOMPLETE: the answer stopped early."
    )
    detail: str


@strawberry.type
class AdvisorUsage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


@strawberry.type
class AdvisorMessage(relay.Node):
    id: relay.NodeID[str]
    role: AdvisorRole
    status: AdvisorStatus
    content: str
    tool_calls: list[AdvisorToolCall]
    citations: list[AdvisorCitation]
    flags: list[AdvisorFlag]
    provider: str | None
    model: str | None
    usage: AdvisorUsage
    error_code: str | None
    created_at: dt.datetime
    completed_at: dt.datetime | None

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AdvisorMessage | None]:
        tenant = await info.context.tenant()
        found: list[AdvisorMessage | None] = []
        async with info.context.db() as session:
            for node_id in node_ids:
                try:
                    view = await service.message(session, tenant, uuid.UUID(node_id))
                except ValueError:
                    view = None
                found.append(cls.of(view) if view is not None else None)
        return found

    @classmethod
    def of(cls, view: service.MessageView) -> AdvisorMessage:
        return cls(
            id=view.id.hex,
            role=AdvisorRole(view.role),
            status=AdvisorStatus(view.status),
            content=view.content,
            tool_calls=[AdvisorToolCall.of(call) for call in view.tool_calls],
            citations=[AdvisorCitation(transaction_uuid=c) for c in view.citations],
            flags=[AdvisorFlag(code=f.code, detail=f.detail) for f in view.flags],
            provider=view.provider,
            model=view.model,
            usage=AdvisorUsage(
                input_tokens=view.usage.input_tokens,
                output_tokens=view.usage.output_tokens,
                cache_read_tokens=view.usage.cache_read_tokens,
                cache_creation_tokens=view.usage.cache_creation_tokens,
            ),
            error_code=view.error_code,
            created_at=view.created_at,
            completed_at=view.completed_at,
        )


@strawberry.type
class AdvisorThread(relay.Node):
    id: relay.NodeID[str]
    title: str
    created_at: dt.datetime
    updated_at: dt.datetime
    thread_uuid: strawberry.Private[uuid.UUID]

    @classmethod
    def of(cls, view: service.ThreadView) -> AdvisorThread:
        return cls(
            id=view.id.hex,
            title=view.title,
            created_at=view.created_at,
            updated_at=view.updated_at,
            thread_uuid=view.id,
        )

    @strawberry.field(description="Questions and answers, oldest first.")
    async def messages(self, info: Info) -> list[AdvisorMessage]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            views = await service.messages(session, tenant, self.thread_uuid)
        return [AdvisorMessage.of(view) for view in views]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[AdvisorThread | None]:
        tenant = await info.context.tenant()
        found: list[AdvisorThread | None] = []
        async with info.context.db() as session:
            for node_id in node_ids:
                try:
                    found.append(cls.of(await service.thread(session, tenant, uuid.UUID(node_id))))
                except (ValueError, NotFound):
                    found.append(None)
        return found


@strawberry.type
class AskAdvisorResult:
    thread: AdvisorThread
    question: AdvisorMessage
    answer: AdvisorMessage = strawberry.field(
        description="Pending: follow it with `advisorAnswer(messageId: answer.id)`."
    )


@strawberry.enum
class AdvisorAnswerEventKind(enum.Enum):
    SNAPSHOT = "snapshot"  # always first: the message as written so far
    TEXT_DELTA = "text_delta"
    TOOL_CALL = "tool_call"
    CITATIONS = "citations"
    RESTARTED = "restarted"  # a worker crashed mid-answer and writes it again: drop the text
    DONE = "done"


@strawberry.type(description="One step of an answer being written.")
class AdvisorAnswerEvent:
    kind: AdvisorAnswerEventKind
    text: str | None = None
    tool_call: AdvisorToolCall | None = None
    citations: list[AdvisorCitation] = strawberry.field(default_factory=list)
    message: AdvisorMessage | None = strawberry.field(
        default=None, description="The whole message, with the SNAPSHOT and DONE events."
    )


@strawberry.type
class AdvisorQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated, CanRead],
        description="The workspace's advisor threads, most recently active first.",
    )
    async def advisor_threads(self, info: Info) -> list[AdvisorThread]:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            views = await service.threads(session, tenant)
        return [AdvisorThread.of(view) for view in views]

    @strawberry.field(permission_classes=[IsAuthenticated, CanRead])
    async def advisor_thread(self, info: Info, id: strawberry.ID) -> AdvisorThread | None:
        tenant = await info.context.tenant()
        thread_id = decode_id(id, "AdvisorThread")
        async with info.context.db() as session:
            try:
                view = await service.thread(session, tenant, thread_id)
            except NotFound:
                return None
        return AdvisorThread.of(view)


@strawberry.type
class AdvisorMutation:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated, CanRead],
        description=(
            "Ask the advisor (in a new thread when `threadId` is null). Returns at once; "
            "the answer streams through `advisorAnswer(messageId: answer.id)`. Any member, "
            "viewers too: the advisor only reads."
        ),
    )
    async def ask_advisor(
        self, info: Info, question: str, thread_id: strawberry.ID | None = None
    ) -> AskAdvisorResult:
        tenant = await info.context.tenant()
        thread_uuid = decode_id(thread_id, "AdvisorThread", field="threadId") if thread_id else None
        async with info.context.db() as session:
            asked = await service.ask(session, tenant, thread_uuid, question)
        jobs = getattr(info.context.request.state, "jobs", None)
        answer_id = asked.answer.id

        async def send(_session: Any) -> None:
            if jobs is None:
                log.warning("advisor_no_jobs", message=str(answer_id))
                return
            from workers.advisor import send_answer

            await send_answer(jobs, tenant.workspace_id, answer_id)

        info.context.after_commit(send)
        return AskAdvisorResult(
            thread=AdvisorThread.of(asked.thread),
            question=AdvisorMessage.of(asked.question),
            answer=AdvisorMessage.of(asked.answer),
        )


class _Progress:
    """What one subscriber has been sent of a message; `step` gives the rest."""

    def __init__(self) -> None:
        self.started = False
        self.text = ""
        self.calls = 0
        self.citations = 0

    def step(self, view: service.MessageView) -> list[AdvisorAnswerEvent]:
        events: list[AdvisorAnswerEvent] = []
        if not self.started:
            self.started = True
            self.text, self.calls, self.citations = (
                view.content,
                len(view.tool_calls),
                len(view.citations),
            )
            events.append(
                AdvisorAnswerEvent(
                    kind=AdvisorAnswerEventKind.SNAPSHOT, message=AdvisorMessage.of(view)
                )
            )
        elif not view.content.startswith(self.text) or len(view.tool_calls) < self.calls:
            events.append(AdvisorAnswerEvent(kind=AdvisorAnswerEventKind.RESTARTED))
            self.text, self.calls, self.citations = "", 0, 0
        for call in view.tool_calls[self.calls :]:
            events.append(
                AdvisorAnswerEvent(
                    kind=AdvisorAnswerEventKind.TOOL_CALL, tool_call=AdvisorToolCall.of(call)
                )
            )
        self.calls = len(view.tool_calls)
        if len(view.citations) > self.citations:
            events.append(
                AdvisorAnswerEvent(
                    kind=AdvisorAnswerEventKind.CITATIONS,
                    citations=[
                        AdvisorCitation(transaction_uuid=c)
                        for c in view.citations[self.citations :]
                    ],
                )
            )
            self.citations = len(view.citations)
        if len(view.content) > len(self.text):
            events.append(
                AdvisorAnswerEvent(
                    kind=AdvisorAnswerEventKind.TEXT_DELTA, text=view.content[len(self.text) :]
                )
            )
            self.text = view.content
        if view.finished:
            events.append(
                AdvisorAnswerEvent(
                    kind=AdvisorAnswerEventKind.DONE, message=AdvisorMessage.of(view)
                )
            )
        return events


@strawberry.type
class AdvisorSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated, CanRead],
        description=(
            "An answer as it is written: a SNAPSHOT of what was already written first, "
            "then the rest (text deltas, tool calls, citations), then DONE. Any number of "
            "connections may follow the same answer."
        ),
    )
    async def advisor_answer(
        self, info: Info, message_id: strawberry.ID
    ) -> AsyncGenerator[AdvisorAnswerEvent, None]:
        tenant = await info.context.tenant()
        wanted = decode_id(message_id, "AdvisorMessage", field="messageId")
        since = await info.context.event_position()  # before reading: nothing slips between

        async def read() -> service.MessageView:
            async with info.context.db() as session:
                view = await service.message(session, tenant, wanted)
            if view is None or view.role != "assistant":
                raise NotFound("Advisor message not found", field="messageId")
            return view

        progress = _Progress()
        view = await read()
        for event in progress.step(view):
            yield event
        if view.finished:
            return
        async for envelope in info.context.events(since):
            if envelope.type != EventType.ADVISOR_MESSAGE_UPDATED.value:
                continue
            if envelope.data.get("message") != str(wanted):
                continue
            view = await read()
            for event in progress.step(view):
                yield event
            if view.finished:
                return
