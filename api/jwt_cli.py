"""`wealthwise keys rotate-jwt`: rotate the access-token signing secret."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from domain.core.settings import get_settings
from domain.identity import tokens


def rotate_jwt() -> None:
    """Retire the JWT signing secret and start signing with a new one.

    Embedded (no WEALTHWISE_JWT_SECRET): rotates the key files in the data dir; restart
    the API. Otherwise prints the two environment values to deploy instead.
    """
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
