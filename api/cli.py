"""The `wealthwise` command line (Typer)."""

from __future__ import annotations

import asyncio

import typer
import uvicorn

from domain.core.settings import Settings, get_settings

app = typer.Typer(help="WealthWise: the personal-wealth GraphQL API.", no_args_is_help=True)


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    uvicorn.run(
        "api.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        proxy_headers=True,
        log_level="warning",
        ws_ping_interval=20,
        ws_ping_timeout=20,
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


keys_app = typer.Typer(help="Rotate keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate-jwt")
def rotate_jwt() -> None:
    """Retire the JWT signing secret and start signing with a new one.

    Embedded (no WEALTHWISE_JWT_SECRET): rotates the key files in the data dir; restart
    the API. Otherwise prints the two environment values to deploy instead.
    """
    from datetime import UTC, datetime

    from domain.identity import tokens

    settings = get_settings()
    if settings.jwt_secret is None:
        kid = tokens.rotate_key_file(settings)
        typer.echo(f"new JWT signing key {kid}; restart the API to sign with it")
        return
    retired = [
        tokens.RetiredSecret(old.secret.get_secret_value().encode(), old.retired_at)
        for old in settings.jwt_previous_secrets
    ]
    secret, kept = tokens.rotated(
        settings.jwt_secret.get_secret_value().encode(),
        retired,
        settings.access_token_minutes * 60,
        datetime.now(UTC),
    )
    typer.echo("Deploy these values (then restart every API process):")
    typer.echo(f"WEALTHWISE_JWT_SECRET={secret}")
    typer.echo(f"WEALTHWISE_JWT_PREVIOUS_SECRETS='{tokens.retired_json(kept)}'")


@app.command("export-schema")
def export_schema(path: str = "schema.graphql") -> None:
    """Write the GraphQL schema (SDL) to schema.graphql; a test fails when it drifts."""
    from pathlib import Path

    from schema import schema

    Path(path).write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {path}")


def main() -> None:
    app()
