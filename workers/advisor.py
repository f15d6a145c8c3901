"""The advisor's task: generate one answer (domain/advisor/service.py) with the provider the
settings choose: Claude when an Anthropic key is set, else the offline analyst."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, TaskiqDepends

from domain.advisor import service
from domain.advisor.llm.factory import anthropic_configured
from domain.advisor.llm.port import LLMProvider
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from workers.tasks import JobServices, job, job_services, name_of

log = structlog.get_logger(__name__)


def provider_for(settings: Settings, today: dt.date) -> service.ProviderFor:
    async def build(session: AsyncSession, tenant: Tenant) -> LLMProvider:
        if anthropic_configured(settings):
            from domain.advisor.llm.anthropic_provider import AnthropicProvider

            return AnthropicProvider.from_settings(settings)
        from domain.advisor.analyst.provider import offline_provider

        return await offline_provider(session, tenant, today)

    return build


@job("advisor.answer")
async def answer_question(
    workspace_id: str,
    message_id: str,
    services: Annotated[JobServices, TaskiqDepends(job_services)],
) -> str:
    """Idempotent: an answer already finished is left as it is; one a crashed worker left
    half-written is written again from the start."""
    today = dt.date.today()
    try:
        search = await services.retrieval.get(services.settings, services.engine, services.keyring)
    except Exception:  # e.g. the embedded index is held by another process
        log.exception("advisor_search_unavailable")
        search = None
    view = await service.generate_answer(
        services.engine,
        services.keyring,
        workspace_id=uuid.UUID(workspace_id),
        message_id=uuid.UUID(message_id),
        provider_for=provider_for(services.settings, today),
        max_rounds=services.settings.advisor_max_rounds,
        search=search,
        today=today,
    )
    return view.status


async def send_answer(broker: AsyncBroker, workspace_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """Queue the answer of `message_id` (after the asking request has committed)."""
    task = broker.find_task(name_of(answer_question))
    if task is None:
        raise LookupError("advisor.answer is not registered on this broker")
    sent = await task.kiq(str(workspace_id), str(message_id))
    return sent.task_id
