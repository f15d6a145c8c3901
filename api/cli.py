"""The `wealthwise` command line (Typer)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import typer
import uvicorn

from api.jwt_cli import rotate_jwt
from api.keys_cli import keys_app
from domain.core.settings import Settings, get_settings
from workers.cli import worker

app = typer.Typer(help="WealthWise: the personal-wealth GraphQL API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
keys_app.command("rotate-jwt")(rotate_jwt)
app.command()(worker)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options besides the app, host, port and workers (bench/ws_memory.py serves
    with the same ones)."""
    return {
        "proxy_headers": True,
        "log_level": "warning",
        "ws_ping_interval": 20,
        "ws_ping_timeout": 20,
        # uvicorn's websockets-sansio protocol with lean per-connection containers.
        "ws": "api.websocket_protocol:WebSocketProtocol",
        # A WebSocket message is held whole: the same ceiling as a request body.
        "ws_max_size": settings.max_request_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
    }


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    uvicorn.run(
        "api.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        **uvicorn_options(settings),
    )


@app.command()
def migrate(revision: str = "head") -> None:
    """Apply the database migrations."""
    from domain.core.migrate import upgrade

    settings = get_settings()
    upgrade(settings, revision)
    typer.echo(f"migrated {settings.resolved_database_url.split('@')[-1]} to {revision}")


@app.command()
def demo() -> None:
    """Load the deterministic demo household (idempotent)."""
    from domain.demo import seed_demo

    settings = get_settings()
    created = asyncio.run(seed_demo(settings))
    typer.echo("demo data loaded" if created else "demo data already present")


@app.command()
def serve(
    host: str | None = None, port: int | None = None, workers: int = typer.Option(1, min=1)
) -> None:
    """Serve the API."""
    _serve(get_settings(), host, port, workers)


@app.command("demo-serve")
def demo_serve(host: str | None = None, port: int | None = None) -> None:
    """Migrate, load the demo data and serve: the Quickstart's first command."""
    from domain.core.migrate import upgrade
    from domain.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo

    settings = get_settings()
    upgrade(settings)
    asyncio.run(seed_demo(settings))
    base = f"http://{host or settings.host}:{port or settings.port}"
    typer.echo(f"\nWealthWise is running: {base}/  (GraphiQL: {base}/graphql)")
    typer.echo(f"Demo login: {DEMO_USERS[0][0]} / {DEMO_PASSWORD}  (also {DEMO_USERS[1][0]})\n")
    _serve(settings, host, port, 1)


@app.command("export-schema")
def export_schema(path: str = "schema.graphql") -> None:
    """Write the GraphQL schema (SDL) to schema.graphql; a test fails when it drifts."""
    from pathlib import Path

    from schema import schema

    Path(path).write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {path}")


audit = typer.Typer(help="The audit trail: verify chains, seal them, show the public key.")
app.add_typer(audit, name="audit")


@audit.command("verify")
def audit_verify(
    workspace: str | None = typer.Option(None, help="Only this workspace's chain (an id)."),
) -> None:
    """Check every chain and checkpoint; name the first bad event and exit 1."""
    from domain.audit.admin import verify

    report = asyncio.run(verify(get_settings(), _workspace_option(workspace)))
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Seal every chain whose head moved since its last checkpoint."""
    from domain.audit.admin import checkpoint

    sealed = asyncio.run(checkpoint(get_settings()))
    for row in sealed:
        typer.echo(f"sealed {row.workspace_id} at seq {row.seq} ({row.head_hash[:16]}...)")
    typer.echo(f"{len(sealed)} chains sealed")


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the checkpoint signing key (PEM) for offline verification."""
    from domain.audit.admin import public_key

    typer.echo(asyncio.run(public_key(get_settings())), nl=False)


advisor = typer.Typer(help="The advisor: its search index over transactions.")
app.add_typer(advisor, name="advisor")


@advisor.command("reindex")
def advisor_reindex(
    workspace: str | None = typer.Option(None, help="Only this workspace (an id)."),
    recreate: bool = typer.Option(
        False, help="Drop the vector collection first (after changing the embedding model)."
    ),
) -> None:
    """Rebuild the transaction search index (vectors in Qdrant, BM25 in memory)."""
    from domain.advisor.retrieval.admin import reindex
    from domain.advisor.retrieval.service import IndexReport
    from domain.advisor.retrieval.vectors import IndexMismatch, IndexUnavailable

    def show(workspace_id: uuid.UUID, report: IndexReport) -> None:
        typer.echo(f"{workspace_id}: {report.indexed} indexed, {report.removed} removed")

    try:
        reports = asyncio.run(
            reindex(get_settings(), _workspace_option(workspace), recreate=recreate, progress=show)
        )
    except (IndexMismatch, IndexUnavailable) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    total = sum(report.indexed for report in reports.values())
    typer.echo(f"{total} transactions indexed in {len(reports)} workspaces")


def _workspace_option(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    from schema.ids import decode_id

    try:
        return decode_id(value, "Workspace")
    except Exception:
        raise typer.BadParameter(f"not a workspace id: {value!r}") from None


def main() -> None:
    app()
