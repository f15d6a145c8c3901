"""`wealthwise advisor reindex` and the indexing task, against a real database."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from typer.testing import CliRunner

from api.cli import app as cli
from domain.advisor.retrieval.runtime import open_search
from domain.core.db import bind_scope, unit_of_work
from domain.ledger import transactions as tx
from schema.context import AppServices
from schema.ids import encode_id
from tests.advisor.test_search import DAY, HOUSEHOLD_A, _post
from tests.audit.helpers import cli_env
from tests.realtime.helpers import household
from workers.tasks import JobServices, index_transactions


async def test_the_cli_rebuilds_a_workspace_and_the_task_keeps_it_fresh(
    services: AppServices,
) -> None:
    collection = f"test_{uuid.uuid4().hex}"  # this test's own, in the shared data dir
    settings = services.settings.model_copy(update={"qdrant_collection": collection})
    home = await household(services.engine, services.keyring)
    swiggy, ola, bescom = await _post(services, home, HOUSEHOLD_A[:3])
    workspace_id = home.tenant.workspace_id

    env = {**cli_env(settings), "WEALTHWISE_QDRANT_COLLECTION": collection}
    args = ["advisor", "reindex", "--workspace", encode_id("Workspace", workspace_id)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert f"{workspace_id}: 3 indexed, 0 removed" in result.output
    assert "3 transactions indexed in 1 workspaces" in result.output

    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=workspace_id)
        draft = tx.TransactionDraft(
            account_id=home.account_id,
            date=DAY,
            amount=Decimal("-642.50"),
            category_id=home.category_ids["Food delivery"],
            payee="Zomato",
        )
        await tx.edit(session, home.tenant, swiggy, draft, idempotency_key=uuid.uuid4().hex)
        await tx.remove(session, home.tenant, bescom, idempotency_key=uuid.uuid4().hex)

    jobs = JobServices(settings, services.engine, services.keyring)
    try:
        written = await index_transactions(workspace_id, [swiggy, bescom], services=jobs)
        assert written == 2
        search = await jobs.retrieval.get(settings, services.engine, services.keyring)
        assert await search.vectors.ids(workspace_id) == {swiggy, ola}
        hits = await search.search(workspace_id, "zomato", mode="dense", limit=1)
        assert [hit.transaction_id for hit in hits] == [swiggy]
    finally:
        await jobs.retrieval.close()

    # A fresh process reads the collection back (and its BM25 side from the ledger).
    again = await open_search(settings, services.engine, services.keyring)
    try:
        hits = await again.search(workspace_id, "Zomato", mode="bm25")
        assert [hit.transaction_id for hit in hits] == [swiggy]
        assert await again.search(workspace_id, "electricity", mode="bm25") == []
        # While this process holds the embedded index, the CLI says so and changes nothing.
        busy = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert busy.exit_code == 1
        assert "only one process may hold it" in busy.output
    finally:
        await again.close()

    # Another embedding model is refused until the collection is recreated.
    openai = {**env, "WEALTHWISE_EMBEDDINGS": "openai", "WEALTHWISE_OPENAI_API_KEY": "sk-x"}
    refused = await asyncio.to_thread(CliRunner().invoke, cli, args, env=openai)
    assert refused.exit_code == 1
    assert "reindex --recreate" in refused.output
    rebuilt = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--recreate"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"{workspace_id}: 2 indexed, 0 removed" in rebuilt.output
