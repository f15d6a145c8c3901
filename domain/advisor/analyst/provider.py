"""The offline analyst as an `LLMProvider`: the advisor's default when no Anthropic key is set.

It plays the model's part in `domain.advisor.llm.converse`'s tool loop without a model:

- round 1 (the last message is the user's question): it reads the question with
  `understand`, says in one sentence what it is about to look up, and calls the plan's
  tools (Stop "tool_use"); a question it cannot answer gets a short reply with questions it
  can (Stop "end_turn"), and no tool call;
- round 2 (the last message holds the tool results): it writes the answer from them
  (`composer`), line by line, and stops with "end_turn".

It keeps no state between turns: round 2 reads the question and its calls back from the
conversation, so one instance serves any number of answers of its workspace. The system
prompt is not read: the persona is written into the composer's templates.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.advisor.analyst.composer import Answered, Composer, cannot_answer, checked, preamble
from domain.advisor.analyst.names import Name, Vocabulary
from domain.advisor.analyst.understanding import Plan, understand
from domain.advisor.llm.port import (
    LLMEvent,
    Message,
    Stop,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from domain.core.tenancy import Tenant
from domain.ledger import accounts as accounts_service
from domain.ledger.models import CategoryKind, Transaction
from domain.ledger.repository import LedgerRepository
from domain.ledger.transactions import TX_TABLE

CALL_ID_PREFIX = "offline-"


class OfflineAnalyst:
    """Answers from the tools with rules and templates; see the module docstring."""

    name = "offline-analyst"
    model = "offline-analyst-1"

    def __init__(self, vocabulary: Vocabulary, *, today: date, currency: str) -> None:
        self.vocabulary = vocabulary
        self.today = today
        self.currency = currency

    async def stream(
        self, *, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[LLMEvent]:
        last = messages[-1] if messages else None
        if last is not None and last.role == "user":
            results = [b for b in last.content if isinstance(b, ToolResultBlock)]
            if results:
                for line in self._answer(messages, results):
                    yield TextDelta(line)
                yield Usage()
                yield Stop("end_turn")
                return
            question = _text(last)
            if question.strip():
                plan = self._plan(question)
                offered = {tool.name for tool in tools}
                if plan.calls and all(call.name in offered for call in plan.calls):
                    sources = [question, *(call.arguments for call in plan.calls)]
                    for line in checked([preamble(plan)], sources):
                        yield TextDelta(line + "\n\n")
                    for number, call in enumerate(plan.calls, start=1):
                        yield ToolCall(f"{CALL_ID_PREFIX}{number}", call.name, dict(call.arguments))
                    yield Usage()
                    yield Stop("tool_use")
                    return
                for line in _lines(checked(cannot_answer(plan), [question])):
                    yield TextDelta(line)
                yield Usage()
                yield Stop("end_turn")
                return
        yield TextDelta("Ask me about your spending, budgets, balances or savings plans.")
        yield Usage()
        yield Stop("end_turn")

    def _plan(self, question: str) -> Plan:
        return understand(
            question, today=self.today, vocabulary=self.vocabulary, currency=self.currency
        )

    def _answer(self, messages: Sequence[Message], results: list[ToolResultBlock]) -> list[str]:
        """Round 2: the answer to the question before the assistant's tool calls."""
        calls: dict[str, ToolUseBlock] = {}
        question = ""
        if len(messages) >= 2 and messages[-2].role == "assistant":
            calls = {b.id: b for b in messages[-2].content if isinstance(b, ToolUseBlock)}
        if len(messages) >= 3 and messages[-3].role == "user":
            question = _text(messages[-3])
        answered = []
        for block in results:
            call = calls.get(block.tool_use_id)
            if call is None:
                continue  # a result for a call this conversation never made
            answered.append(
                Answered(call.name, dict(call.input), _parsed(block.content), block.is_error)
            )
        sources: list[Any] = [question]
        for item in answered:
            sources += [item.arguments, item.result]
        lines = Composer(question, self._plan(question)).answer(answered)
        kept = checked(lines, sources)
        if not kept:
            kept = ["I could not put the results of that question into an answer I can vouch for."]
        return _lines(kept)


def _text(message: Message) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def _parsed(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return {"error": content}


def _lines(lines: list[str]) -> list[str]:
    """One delta per line; a line and the bullets after it are one block, blocks are
    paragraphs."""
    deltas = []
    for index, line in enumerate(lines):
        if index == len(lines) - 1:
            deltas.append(line)
        else:
            deltas.append(line + ("\n" if lines[index + 1].startswith("- ") else "\n\n"))
    return deltas


# --- the workspace's vocabulary ---------------------------------------------------------


async def build_vocabulary(session: AsyncSession, tenant: Tenant) -> Vocabulary:
    """The workspace's expense and income categories, its accounts (names decrypted) and
    the distinct payees of its transactions (decrypted row by row: each ciphertext is bound
    to its row). `session` must be bound to the workspace (`VocabularyCache` keeps them)."""
    repository = LedgerRepository(session, tenant.workspace_id)
    kinds = {CategoryKind.EXPENSE.value, CategoryKind.INCOME.value}
    names = [
        Name(str(category.id), category.name, "category")
        for category in await repository.categories()
        if category.kind in kinds
    ]
    names += [
        Name(str(account.id), accounts_service.view(tenant, account).name, "account")
        for account in await repository.accounts()
    ]
    names += [Name(payee, payee, "payee") for payee in await distinct_payees(session, tenant)]
    return Vocabulary(names)


async def distinct_payees(session: AsyncSession, tenant: Tenant) -> list[str]:
    """Each payee once (case and surrounding spaces ignored; the first spelling in sort
    order kept), sorted."""
    rows = await session.execute(
        select(col(Transaction.id), col(Transaction.payee_enc)).where(
            col(Transaction.workspace_id) == tenant.workspace_id,
            col(Transaction.payee_enc).is_not(None),
        )
    )
    cipher = tenant.cipher
    spellings: dict[str, str] = {}
    for transaction_id, payee_enc in rows:
        payee = cipher.open_optional(payee_enc, TX_TABLE, "payee", _uuid(transaction_id))
        if payee and payee.strip():
            label = payee.strip()
            key = label.casefold()
            spellings[key] = min(spellings.get(key, label), label)
    return sorted(spellings.values(), key=lambda name: (name.casefold(), name))


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class VocabularyCache:
    """Each workspace's vocabulary for up to `ttl` seconds, in this process only, keyed by
    workspace (an entry is only ever handed to its own workspace). Building one decrypts
    every payee (120-250 ms on the demo household): too slow to repeat per question. A
    transaction event seen by this process's relay drops the workspace's entry at once
    (workers/indexing.py); a renamed category or account shows after at most `ttl`."""

    def __init__(self, ttl: float = 60.0, size: int = 256) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[uuid.UUID, tuple[float, Vocabulary]] = OrderedDict()

    def get(self, workspace_id: uuid.UUID) -> Vocabulary | None:
        found = self._entries.get(workspace_id)
        if found is None or time.monotonic() - found[0] > self.ttl:
            self._entries.pop(workspace_id, None)
            return None
        self._entries.move_to_end(workspace_id)
        return found[1]

    def put(self, workspace_id: uuid.UUID, vocabulary: Vocabulary) -> None:
        self._entries[workspace_id] = (time.monotonic(), vocabulary)
        self._entries.move_to_end(workspace_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, workspace_id: uuid.UUID) -> None:
        self._entries.pop(workspace_id, None)


VOCABULARIES = VocabularyCache()


async def offline_provider(session: AsyncSession, tenant: Tenant, today: date) -> OfflineAnalyst:
    """The offline analyst for one workspace (its vocabulary from the cache, or read now
    through `session`)."""
    vocabulary = VOCABULARIES.get(tenant.workspace_id)
    if vocabulary is None:
        vocabulary = await build_vocabulary(session, tenant)
        VOCABULARIES.put(tenant.workspace_id, vocabulary)
    return OfflineAnalyst(vocabulary, today=today, currency=tenant.base_currency)
